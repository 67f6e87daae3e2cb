package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ecs-sd/ecs-sd/internal/harness/rig"
	"github.com/ecs-sd/ecs-sd/internal/harness/supervise"
)

// Region is the AWS region every harness client and child process uses.
const Region = rig.Region

const (
	motoStartTimeout = rig.MotoStartTimeout
	motoGrace        = rig.MotoGrace
)

// Moto is a moto_server (AWS emulator) running on 127.0.0.1. Its methods that take a testing.TB
// build Cloud Map, SSM and EC2 fixtures (see fixtures.go).
type Moto struct {
	// URL is the server's base URL, http://127.0.0.1:PORT, usable as an AWS endpoint URL.
	URL string

	proc    *process
	clients func() (*awsClients, error) // built once, on first use
}

// awsClients are the SDK clients the fixtures use.
type awsClients struct {
	cloudMap *servicediscovery.Client
	ssm      *ssm.Client
	ec2      *ec2.Client
}

// StartMoto starts a fresh moto_server for tb and stops it when tb ends. It fails tb when
// moto_server is not on PATH or does not answer within 30 s.
func StartMoto(tb testing.TB) *Moto {
	tb.Helper()
	return startForTest(tb, startMoto)
}

// StartMotoMain starts a moto_server to be shared by all tests of a package, from TestMain (where
// no testing.TB exists). Call stop after m.Run. Tests sharing it should call Reset first.
func StartMotoMain() (m *Moto, stop func(), err error) {
	return startForMain("ecs-sd-moto-", startMoto)
}

// startForTest starts a moto with start, its log in tb's temporary directory, for tb.
func startForTest(tb testing.TB, start func(dir string) (*Moto, error)) *Moto {
	tb.Helper()
	m, err := start(tb.TempDir())
	check(tb, err)
	m.proc.stopAtCleanup(tb, motoGrace)
	return m
}

// startForMain starts a moto with start, its log in a new temporary directory, for TestMain.
func startForMain(prefix string, start func(dir string) (*Moto, error)) (*Moto, func(), error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, nil, fmt.Errorf("create moto log directory: %w", err)
	}
	m, err := start(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	return m, func() { m.proc.stop(motoGrace); _ = os.RemoveAll(dir) }, nil
}

// startMoto starts moto_server with its log in dir.
func startMoto(dir string) (*Moto, error) {
	spec, err := rig.MotoServer(filepath.Join(dir, "moto.log"))
	if err != nil {
		return nil, fmt.Errorf("%w; integration tests need it", err)
	}
	return newMoto(spec)
}

// newMoto starts the moto server spec describes.
func newMoto(spec supervise.ServerSpec) (*Moto, error) {
	proc, port, err := supervise.StartServer(context.Background(), spec)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	m := &Moto{URL: rig.MotoURL(port), proc: &process{proc}}
	m.clients = sync.OnceValues(func() (*awsClients, error) {
		cfg, err := fixtureConfig(context.Background(), m.URL)
		if err != nil {
			return nil, err
		}
		return &awsClients{
			cloudMap: NewCloudMapClient(cfg),
			ssm:      ssm.NewFromConfig(cfg),
			ec2:      ec2.NewFromConfig(cfg),
		}, nil
	})
	return m, nil
}

// LogTail returns the last lines of moto_server's output.
func (m *Moto) LogTail(lines int) string { return m.proc.logTail(lines) }

// Reset wipes all of moto's state (POST /moto-api/reset).
func (m *Moto) Reset(tb testing.TB) {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	check(tb, postEmpty(ctx, m.URL+"/moto-api/reset"))
}

// Config returns an SDK configuration for clients that build fixtures on this moto, or read it:
// AWSConfig, except that a call that changes state is not retried (see rig.FixtureConfig).
func (m *Moto) Config(tb testing.TB) aws.Config {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	cfg, err := fixtureConfig(ctx, m.URL)
	check(tb, err)
	return cfg
}

// Env returns the environment a child process needs to talk to this moto: see AWSEnv.
func (m *Moto) Env() []string { return AWSEnv(m.URL) }

// CloudMapClient returns a Cloud Map client for this moto whose DiscoverInstances works (see
// NewCloudMapClient).
func (m *Moto) CloudMapClient(tb testing.TB) *servicediscovery.Client {
	tb.Helper()
	return NewCloudMapClient(m.Config(tb))
}

// fixtureClients returns the shared SDK clients, failing tb when they cannot be built.
func (m *Moto) fixtureClients(tb testing.TB) *awsClients {
	tb.Helper()
	c, err := m.clients()
	check(tb, err)
	return c
}

// AWSConfig returns an SDK configuration that sends every call to endpointURL (moto or a Proxy),
// in region us-east-1 with static credentials test/test. It is built by config.LoadDefaultConfig,
// so the SDK's own HTTP client (which honours AWS_CA_BUNDLE) is kept.
func AWSConfig(tb testing.TB, endpointURL string) aws.Config {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	cfg, err := awsConfig(ctx, endpointURL)
	check(tb, err)
	return cfg
}

// awsConfig is rig.AWSConfig with every SDK retry logged to standard error, which go test shows
// when a test fails.
func awsConfig(ctx context.Context, endpointURL string) (aws.Config, error) {
	return logRetries(rig.AWSConfig(ctx, endpointURL))
}

// fixtureConfig is rig.FixtureConfig, whose writes are never retried (a write retried after moto
// carried it out fails in a puzzling way, or leaves a duplicate), with every SDK retry (of a
// read) logged to standard error.
func fixtureConfig(ctx context.Context, endpointURL string) (aws.Config, error) {
	return logRetries(rig.FixtureConfig(ctx, endpointURL))
}

func logRetries(cfg aws.Config, err error) (aws.Config, error) {
	if err != nil {
		return cfg, err
	}
	cfg.ClientLogMode |= aws.LogRetries
	cfg.Logger = logging.NewStandardLogger(os.Stderr)
	return cfg, nil
}

// AWSEnv returns os.Environ() set up for a child process (such as the ecs-sd binary) to send every
// AWS call to endpointURL: AWS_ACCESS_KEY_ID=test, AWS_SECRET_ACCESS_KEY=test, AWS_REGION=us-east-1
// and AWS_ENDPOINT_URL=endpointURL, with AWS_PROFILE, AWS_SESSION_TOKEN, AWS_DEFAULT_REGION and
// every AWS_ENDPOINT_URL_<SERVICE> removed. AWS_CA_BUNDLE and the like are kept.
func AWSEnv(endpointURL string) []string { return rig.AWSEnv(endpointURL) }

// NewCloudMapClient returns a Cloud Map client for cfg whose DiscoverInstances and
// DiscoverInstancesRevision go to cfg's endpoint as is: the SDK otherwise prefixes the host with
// "data-" even for a custom endpoint, which breaks 127.0.0.1.
func NewCloudMapClient(cfg aws.Config) *servicediscovery.Client {
	return servicediscovery.NewFromConfig(cfg, func(o *servicediscovery.Options) {
		o.APIOptions = append(o.APIOptions, addDisableHostPrefix)
	})
}

// addDisableHostPrefix adds an Initialize step that turns off the endpoint host prefix.
func addDisableHostPrefix(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("testenvDisableHostPrefix",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (
			middleware.InitializeOutput, middleware.Metadata, error,
		) {
			return next.HandleInitialize(smithyhttp.DisableEndpointHostPrefix(ctx, true), in)
		}), middleware.Before)
}

// postEmpty sends an empty POST to url and expects a 2xx answer.
func postEmpty(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, http.NoBody)
	if err != nil {
		return fmt.Errorf("build request for %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post %s: status %s", url, resp.Status)
	}
	return nil
}
