package awsclient

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"
)

// SessionName is the role session name of every role ecs-sd assumes: CloudTrail in the member
// account shows it.
const SessionName = "ecs-sd"

// Role is a role to assume in another account.
type Role struct {
	ARN        string
	ExternalID string // sent as ExternalId when not empty
}

// ForPair returns the configuration of one (account, region) pair: base's (from Load), in
// region, with role's credentials when role is not nil. A role is assumed with base's
// credentials, through STS in that region, when the first call needs credentials; its
// credentials are cached and assumed again before they expire (aws.CredentialsCache refreshes
// them 5 minutes early), so a role that cannot be assumed fails that pair's calls only, each
// time they are made. Every call is bounded by callTimeout (above 0) and counted in m (not nil),
// instead of base's bound and metrics: each pair has its own clients, credentials and counts.
func ForPair(base aws.Config, region string, role *Role, callTimeout time.Duration, m *Metrics) aws.Config {
	cfg := base.Copy()
	cfg.Region = region
	if role != nil {
		stsCfg := base.Copy()
		stsCfg.Region = region
		provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(stsCfg), role.ARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = SessionName
			if role.ExternalID != "" {
				o.ExternalID = aws.String(role.ExternalID)
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(provider)
	}
	cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
		_, _ = stack.Initialize.Remove(callMiddlewareID) // base's: replaced
		return callMiddleware(callTimeout, m)(stack)
	})
	return cfg
}

// Identity returns the id of the account whose credentials cfg holds (sts:GetCallerIdentity,
// which needs no permission).
func Identity(ctx context.Context, cfg aws.Config) (string, error) {
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("sts GetCallerIdentity: %w", err)
	}
	return aws.ToString(out.Account), nil
}
