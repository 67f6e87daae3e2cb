package config

import (
	"errors"
	"fmt"
	"regexp"
)

// Account is another AWS account to discover in, by assuming a role there.
type Account struct {
	RoleARN    string `yaml:"role_arn"`
	ExternalID string `yaml:"external_id"` // optional; sent as ExternalId on AssumeRole
}

// Shapes of the account settings: a region name (us-east-1, us-gov-west-1, cn-north-1), an IAM
// role ARN (partition, 12-digit account id, optional path, role name of 1 to 64 characters), an
// external id (of the characters STS accepts; 2 to 1224 of them).
var (
	regionPattern     = regexp.MustCompile(`^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$`)
	roleARNPattern    = regexp.MustCompile(`^arn:aws(?:-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f)?:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$`)
	externalIDPattern = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
)

// RoleAccount returns the account id of a role ARN that Validate accepts.
func RoleAccount(roleARN string) string {
	if m := roleARNPattern.FindStringSubmatch(roleARN); m != nil {
		return m[1]
	}
	return ""
}

// DiscoveryRegions returns the regions to discover in: Regions, or else the one region of
// ecs-sd's own configuration (defaultRegion: Region, or the SDK's chain).
func (a AWS) DiscoveryRegions(defaultRegion string) []string {
	if len(a.Regions) > 0 {
		return a.Regions
	}
	return []string{defaultRegion}
}

// validateAccounts checks the regions and accounts to discover in, each bad value named.
func (a AWS) validateAccounts() error {
	var errs []error
	seenRegion := map[string]bool{}
	for _, r := range a.Regions {
		switch {
		case !regionPattern.MatchString(r):
			errs = append(errs, fmt.Errorf("aws regions: %q is not a region name (like us-east-1)", r))
		case seenRegion[r]:
			errs = append(errs, fmt.Errorf("aws regions: %q is given twice", r))
		}
		seenRegion[r] = true
	}
	seenAccount := map[string]string{}
	for i, acc := range a.Accounts {
		account := RoleAccount(acc.RoleARN)
		switch {
		case account == "":
			errs = append(errs, fmt.Errorf("aws accounts[%d]: role arn %q: must be an IAM role ARN, arn:aws:iam::ACCOUNT_ID:role/NAME", i, acc.RoleARN))
		case seenAccount[account] != "":
			errs = append(errs, fmt.Errorf("aws accounts[%d]: role arn %q: account %s has a role already (%s): one role per account", i, acc.RoleARN, account, seenAccount[account]))
		default:
			seenAccount[account] = acc.RoleARN
		}
		if n := len(acc.ExternalID); n > 0 && (n < 2 || n > 1224 || !externalIDPattern.MatchString(acc.ExternalID)) {
			errs = append(errs, fmt.Errorf("aws accounts[%d]: external id of %q: must be 2 to 1224 letters, digits or +=,.@:/-_", i, acc.RoleARN))
		}
	}
	if !a.OwnAccount && len(a.Accounts) == 0 {
		errs = append(errs, errors.New("aws: own_account is false and no accounts are given: nothing to discover in"))
	}
	return errors.Join(errs...)
}
