// Package awsclient is the one place where ecs-sd builds its AWS configuration: region, endpoint
// override, retries, and the API-call metrics that every client reports.
package awsclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Options selects the AWS account region and endpoint. Empty fields fall back to the SDK's
// default chain (AWS_REGION, AWS_ENDPOINT_URL, shared config files, the ECS task role).
type Options struct {
	Region      string
	EndpointURL string
	// MaxAttempts bounds the SDK's retries with back-off (throttling included); 0 means 5.
	MaxAttempts int
}

// Load builds an aws.Config from the default chain, with opts applied and every call counted in m
// (which may be nil).
func Load(ctx context.Context, opts Options, m *Metrics) (aws.Config, error) {
	maxAttempts := opts.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 5
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				// No retry quota: under sustained throttling the SDK's quota runs out and fails
				// calls at once; ecs-sd paces its own calls and would rather back off and retry.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.EndpointURL != "" {
		loadOpts = append(loadOpts, config.WithBaseEndpoint(opts.EndpointURL))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("no aws region: set AWS_REGION or --aws.region")
	}
	if m != nil {
		cfg.APIOptions = append(cfg.APIOptions, m.addMiddleware)
	}
	return cfg, nil
}

// DisableHostPrefix is a client API option that stops the SDK from prefixing the endpoint host
// (Cloud Map's DiscoverInstances goes to "data-" + host). ecs-sd adds it only when a custom
// endpoint is configured: a local emulator or proxy listens on one host for every operation.
func DisableHostPrefix(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ecsSDDisableHostPrefix",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			return next.HandleInitialize(smithyhttp.DisableEndpointHostPrefix(ctx, true), in)
		}), middleware.Before)
}

// CloudMap returns a Cloud Map client for cfg. With a custom endpoint the "data-" host prefix of
// DiscoverInstances is turned off, so that every call reaches that endpoint.
func CloudMap(cfg aws.Config) *servicediscovery.Client {
	return servicediscovery.NewFromConfig(cfg, func(o *servicediscovery.Options) {
		if o.BaseEndpoint != nil {
			o.APIOptions = append(o.APIOptions, DisableHostPrefix)
		}
	})
}

// SSM returns an SSM client for cfg.
func SSM(cfg aws.Config) *ssm.Client { return ssm.NewFromConfig(cfg) }

// ECS returns an ECS client for cfg.
func ECS(cfg aws.Config) *ecs.Client { return ecs.NewFromConfig(cfg) }

// EC2 returns an EC2 client for cfg.
func EC2(cfg aws.Config) *ec2.Client { return ec2.NewFromConfig(cfg) }

// SQS returns an SQS client for cfg (the events queue).
func SQS(cfg aws.Config) *sqs.Client { return sqs.NewFromConfig(cfg) }
