package awsclient

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"
)

// SessionName is the role session name of every role ecs-sd assumes: CloudTrail in the member
// account shows it.
const SessionName = "ecs-sd"

// CredentialsExpiryWindow is how long before an assumed role's credentials expire (an hour after
// AssumeRole by default) the role is assumed again: a call never goes out with credentials that
// expire on its way.
const CredentialsExpiryWindow = 5 * time.Minute

// Role is a role to assume in another account.
type Role struct {
	ARN        string
	ExternalID string // sent as ExternalId when not empty
}

// ForPair returns the configuration of one (account, region) pair: base's (from Load), in
// region, with role's credentials when role is not nil. A role is assumed with base's
// credentials, through STS in that region, when the first call needs credentials; its
// credentials are cached and assumed again CredentialsExpiryWindow before they expire, so a role
// that cannot be assumed fails that pair's calls only, each time they are made. Every call, AssumeRole included, is bounded by callTimeout (above 0) and
// counted in m (not nil), instead of base's bound and metrics: each pair has its own clients,
// credentials and counts.
func ForPair(base aws.Config, region string, role *Role, callTimeout time.Duration, m *Metrics) aws.Config {
	cfg := base.Copy()
	cfg.Region = region
	// Copy is shallow: the options are appended to a copy, never to base's array, which every
	// pair shares.
	cfg.APIOptions = append(slices.Clip(cfg.APIOptions), func(stack *middleware.Stack) error {
		_, _ = stack.Initialize.Remove(callMiddlewareID) // base's: replaced
		return callMiddleware(callTimeout, m)(stack)
	})
	if role != nil {
		// AssumeRole is made with base's credentials, and bounded and counted as the pair's calls.
		stsCfg := cfg.Copy()
		provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(stsCfg), role.ARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = SessionName
			if role.ExternalID != "" {
				o.ExternalID = aws.String(role.ExternalID)
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(provider, func(o *aws.CredentialsCacheOptions) {
			o.ExpiryWindow = CredentialsExpiryWindow
		})
	}
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
