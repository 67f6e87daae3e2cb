// Package awsclient is the one place where ecs-sd builds its AWS configuration: region, endpoint
// override, retries, deadlines, and the API-call metrics that every client reports.
//
// Every call has two deadlines. An attempt (connect, send, read the answer) is bounded by the HTTP
// client's timeout: an attempt that gets no answer in time is abandoned and retried like a
// connection error. The whole call (every attempt and the back-off between them) is bounded by
// a context deadline set by a middleware that runs before the retries. So a hung endpoint costs a
// call at most its call timeout, never more.
package awsclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
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
	// AttemptTimeout bounds one attempt of a call: connecting, sending the request and reading
	// the answer. An attempt that runs out of time is retried. 0: no bound.
	AttemptTimeout time.Duration
	// CallTimeout bounds a whole call: every attempt and the back-off between them. A call that
	// runs out of time fails with a *TimeoutError. 0: no bound.
	CallTimeout time.Duration
}

// Load builds an aws.Config from the default chain, with opts applied and every call counted in m
// (which may be nil).
func Load(ctx context.Context, opts Options, m *Metrics) (aws.Config, error) {
	maxAttempts := opts.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 5
	}
	// The SDK's own buildable client, not a plain http.Client: the SDK adds AWS_CA_BUNDLE's
	// certificates to it, which it cannot do to a client it did not build.
	httpClient := awshttp.NewBuildableClient()
	if opts.AttemptTimeout > 0 {
		httpClient = httpClient.WithTimeout(opts.AttemptTimeout)
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
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
	cfg.APIOptions = append(cfg.APIOptions, callMiddleware(opts.CallTimeout, m))
	return cfg, nil
}

// TimeoutError is a call that ran out of its call timeout, retries included.
type TimeoutError struct {
	Limit time.Duration // the call timeout
	Err   error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("no answer within the call timeout of %s: %v", e.Limit, e.Err)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// Timeout reports true: the error is a timeout, as net.Error has it.
func (e *TimeoutError) Timeout() bool { return true }

// callMiddlewareID names callMiddleware in the stack.
const callMiddlewareID = "ecsSDCall"

// callMiddleware wraps every call once, after the SDK has named its service and operation and
// before the request is built, signed and sent (with retries): it bounds the call, retries
// included, by timeout (when above 0) plus the call's long poll, and counts it, with its
// retries, in m (when not nil).
func callMiddleware(timeout time.Duration, m *Metrics) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc(callMiddlewareID,
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				callCtx, limit := ctx, timeout
				if limit > 0 {
					limit += longPoll(in.Parameters)
					var cancel context.CancelFunc
					callCtx, cancel = context.WithTimeout(ctx, limit)
					defer cancel()
				}
				out, md, err := next.HandleInitialize(callCtx, in)
				if err != nil && ctx.Err() == nil && errors.Is(callCtx.Err(), context.DeadlineExceeded) {
					err = &TimeoutError{Limit: limit, Err: err}
				}
				if m != nil {
					m.observe(ctx, md, err)
				}
				return out, md, err
			}), middleware.After)
	}
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

// maxLongPoll is the longest an SQS ReceiveMessage may wait for a message (WaitTimeSeconds 20).
const maxLongPoll = 20 * time.Second

// SQS returns an SQS client for cfg (the events queue). A long poll is an answer that comes late
// on purpose, so this client's attempt timeout is maxLongPoll longer than the other clients',
// and a ReceiveMessage call's call timeout is its WaitTimeSeconds longer (see callMiddleware):
// with the default 5 s and 10 s, a 20 s poll would be cut, retried and counted as failed on
// every quiet queue, and a message SQS hands to a poll the client gave up on would stay hidden
// for the queue's visibility timeout.
func SQS(cfg aws.Config) *sqs.Client {
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if c, ok := o.HTTPClient.(*awshttp.BuildableClient); ok && c.GetTimeout() > 0 {
			o.HTTPClient = c.WithTimeout(c.GetTimeout() + maxLongPoll)
		}
	})
}

// longPoll returns how long the call with input params may wait on purpose before it answers:
// an SQS ReceiveMessage's WaitTimeSeconds, else 0.
func longPoll(params any) time.Duration {
	if in, ok := params.(*sqs.ReceiveMessageInput); ok {
		return time.Duration(in.WaitTimeSeconds) * time.Second
	}
	return 0
}
