package testenv

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// DefaultAccount is the account of moto's requests signed with the static test credentials.
const DefaultAccount = "123456789012"

// In returns a view of m whose fixtures (Cloud Map, SSM, EC2) are made and read in the account
// of roleARN, whose credentials it gets from moto with sts:AssumeRole (empty roleARN: moto's
// default account), and in region: moto keeps the resources of each account and region apart,
// by the signature of the request.
func (m *Moto) In(tb testing.TB, roleARN, region string) *Moto {
	tb.Helper()
	cfg := m.Config(tb)
	cfg.Region = region
	if roleARN != "" {
		ctx, cancel := callContext(tb)
		defer cancel()
		out, err := sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("fixtures")})
		check(tb, err)
		c := out.Credentials
		cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	}
	clients := &awsClients{cloudMap: NewCloudMapClient(cfg), ssm: ssm.NewFromConfig(cfg), ec2: ec2.NewFromConfig(cfg)}
	return &Moto{URL: m.URL, proc: m.proc, clients: func() (*awsClients, error) { return clients, nil }}
}
