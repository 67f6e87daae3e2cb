package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAccountsAndRegionsFromYAML(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ecs-sd.yml")
	require.NoError(t, os.WriteFile(path, []byte(`
aws:
  regions: [us-east-1, eu-west-1]
  accounts:
    - role_arn: arn:aws:iam::111111111111:role/ecs-sd-reader
      external_id: my-external-id
    - role_arn: arn:aws-us-gov:iam::222222222222:role/team/path/ecs-sd-reader
  own_account: false
`), 0o600))
	c := Default()
	require.True(t, c.AWS.OwnAccount, "the own account by default")
	require.NoError(t, c.LoadFile(path))
	require.NoError(t, c.Validate())
	require.Equal(t, []string{"us-east-1", "eu-west-1"}, c.AWS.DiscoveryRegions("ap-south-1"))
	require.Equal(t, []Account{
		{RoleARN: "arn:aws:iam::111111111111:role/ecs-sd-reader", ExternalID: "my-external-id"},
		{RoleARN: "arn:aws-us-gov:iam::222222222222:role/team/path/ecs-sd-reader"},
	}, c.AWS.Accounts)
	require.False(t, c.AWS.OwnAccount)
	require.Equal(t, "222222222222", RoleAccount(c.AWS.Accounts[1].RoleARN))

	d := Default()
	require.Equal(t, []string{"ap-south-1"}, d.AWS.DiscoveryRegions("ap-south-1"), "default: the one region")
}

func TestBadAccountsAndRegionsAreNamed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		aws  func(*AWS)
		want string
	}{
		{"region", func(a *AWS) { a.Regions = []string{"us-east-1", "US-EAST-1"} }, `aws regions: "US-EAST-1" is not a region name (like us-east-1)`},
		{"region twice", func(a *AWS) { a.Regions = []string{"eu-west-1", "eu-west-1"} }, `aws regions: "eu-west-1" is given twice`},
		{"not a role", func(a *AWS) {
			a.Accounts = []Account{{RoleARN: "arn:aws:iam::111111111111:user/bob"}}
		}, `aws accounts[0]: role arn "arn:aws:iam::111111111111:user/bob": must be an IAM role ARN, arn:aws:iam::ACCOUNT_ID:role/NAME`},
		{"short account", func(a *AWS) {
			a.Accounts = []Account{{RoleARN: "arn:aws:iam::11111111111:role/r"}}
		}, `aws accounts[0]: role arn "arn:aws:iam::11111111111:role/r": must be an IAM role ARN, arn:aws:iam::ACCOUNT_ID:role/NAME`},
		{"role name too long", func(a *AWS) {
			a.Accounts = []Account{{RoleARN: "arn:aws:iam::111111111111:role/" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}
		}, `must be an IAM role ARN`},
		{"two roles in an account", func(a *AWS) {
			a.Accounts = []Account{{RoleARN: "arn:aws:iam::111111111111:role/a"}, {RoleARN: "arn:aws:iam::111111111111:role/b"}}
		}, `aws accounts[1]: role arn "arn:aws:iam::111111111111:role/b": account 111111111111 has a role already (arn:aws:iam::111111111111:role/a): one role per account`},
		{"external id", func(a *AWS) {
			a.Accounts = []Account{{RoleARN: "arn:aws:iam::111111111111:role/a", ExternalID: "has space"}}
		}, `aws accounts[0]: external id of "arn:aws:iam::111111111111:role/a": must be 2 to 1224 letters, digits or +=,.@:/-_`},
		{"nothing", func(a *AWS) { a.OwnAccount = false }, `aws: own_account is false and no accounts are given: nothing to discover in`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tc.aws(&c.AWS)
			err := c.Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}
