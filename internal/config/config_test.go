package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaultsAreTheSeeds(t *testing.T) {
	t.Parallel()
	c := Default()
	require.NoError(t, c.ApplyEnv(env(nil)))
	require.NoError(t, c.Validate())
	require.Equal(t, "/etc/config", c.Output.Dir)
	require.Equal(t, "ecs-services.json", c.Output.FileName)
	require.Equal(t, model.Duration(30*time.Second), c.RefreshInterval)
	require.Equal(t, "ECS-ServiceDiscovery-Namespaces", c.CloudMap.NamespacesParameter)
	require.Equal(t, "ECS-Prometheus-Configuration", c.PrometheusConfig.Parameter)
	require.Equal(t, []string{":9001"}, c.Web.ListenAddresses)
	require.Equal(t, "/prometheus-targets", c.Web.TargetsPath)
}

func TestEnvOverridesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ecs-sd.yml")
	require.NoError(t, os.WriteFile(path, []byte(`
refresh_interval: 10s
output:
  dir: /from/file
cloudmap:
  namespaces: [a, b]
prometheus_config:
  enabled: false
`), 0o600))
	c := Default()
	require.NoError(t, c.LoadFile(path))
	require.NoError(t, c.ApplyEnv(env(map[string]string{"CONFIG_FILE_DIR": "/from/env", "AWS_REGION": "eu-west-1"})))
	require.NoError(t, c.Validate())
	require.Equal(t, "/from/env", c.Output.Dir)
	require.Equal(t, model.Duration(10*time.Second), c.RefreshInterval)
	require.Equal(t, []string{"a", "b"}, c.CloudMap.Namespaces)
	require.False(t, c.PrometheusConfig.Enabled)
	require.True(t, c.Output.FileSD, "keys the file does not name keep their defaults")
	require.Equal(t, "eu-west-1", c.AWS.Region)
}

func TestBadValuesAreNamed(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"abc", "0", "-5", "1.5"} {
		c := Default()
		err := c.ApplyEnv(env(map[string]string{"CONFIG_RELOAD_FREQUENCY": v}))
		require.ErrorContains(t, err, "CONFIG_RELOAD_FREQUENCY", v)
	}

	path := filepath.Join(t.TempDir(), "bad.yml")
	require.NoError(t, os.WriteFile(path, []byte("cloudmap:\n  namespace: [x]\n"), 0o600))
	c := Default()
	require.ErrorContains(t, c.LoadFile(path), "namespace")

	c = Default()
	c.PrometheusConfig.ReloadURL = "localhost:9090"
	c.Output.FileName = "a/b.json"
	err := c.Validate()
	require.ErrorContains(t, err, "reload url")
	require.ErrorContains(t, err, "a/b.json")
}

func TestEveryBadSettingNamedInAFixedOrder(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.yml")
	require.NoError(t, os.WriteFile(path, []byte(`
output: {file_name: a/b.json}
prometheus_config: {reload_url: "localhost:9090"}
ecs:
  clusters: [prod]
  api: {burst: 0}
  port_names: {pattern: "metrics("}
  matchers:
    - {service: web, path: prom}
`), 0o600))
	c := Default()
	require.NoError(t, c.LoadFile(path))
	err := c.Validate()
	require.EqualError(t, err, `output file name "a/b.json": must be a plain file name
prometheus reload url "localhost:9090": must be an http(s) URL
ecs api burst 0: must be at least 1
ecs port name pattern "metrics(": error parsing regexp: missing closing ): `+"`^(?:metrics()$`"+`
ecs matcher 1: no ports
ecs matcher 1: path "prom" does not start with /`)
	for range 20 {
		require.EqualError(t, c.Validate(), err.Error())
	}
}

// TestDurationsAreBounded: every duration setting is bounded by one rule and named when out of
// bounds; CONFIG_RELOAD_FREQUENCY is bounded before it becomes a duration, so that a value that
// would overflow is an error, not 0.29 s or 246 years.
func TestDurationsAreBounded(t *testing.T) {
	t.Parallel()
	for v, ok := range map[string]bool{
		"1": true, "86400": true, "30": true,
		"86401": false, "18446744074": false, "99999999999": false, "9223372037": false,
		"99999999999999999999999": false, "-1": false,
	} {
		c := Default()
		err := c.ApplyEnv(env(map[string]string{"CONFIG_RELOAD_FREQUENCY": v}))
		if ok {
			require.NoError(t, err, v)
			require.NoError(t, c.Validate(), v)
			continue
		}
		require.EqualError(t, err, `CONFIG_RELOAD_FREQUENCY="`+v+`": want a whole number of seconds from 1 to 86400 (1d)`)
	}

	c := Default()
	c.RefreshInterval = model.Duration(25 * time.Hour)
	c.CloudMap.TagsRefreshInterval = model.Duration(-time.Second)
	c.ECS.TaskRefreshInterval = model.Duration(48 * time.Hour)
	c.ECS.InstanceRefreshInterval = model.Duration(-time.Minute)
	c.ECS.MetadataRefreshInterval = model.Duration(30 * 24 * time.Hour)
	require.EqualError(t, c.Validate(), `refresh interval 1d1h: must be from 100ms to 1d
cloudmap tags refresh interval -1s: must be from 0s to 1d (0s: read every cycle)
ecs task refresh interval 2d: must be from 0s to 1d (0s: never again)
ecs instance refresh interval -1m: must be from 0s to 1d (0s: for its life)
ecs metadata refresh interval 30d: must be from 0s to 1d (0s: for its life)`)

	c = Default()
	c.RefreshInterval = model.Duration(50 * time.Millisecond)
	require.EqualError(t, c.Validate(), "refresh interval 50ms: must be from 100ms to 1d")

	c = Default()
	c.RefreshInterval = model.Duration(MaxDuration)
	c.CloudMap.TagsRefreshInterval, c.ECS.TaskRefreshInterval = 0, model.Duration(MaxDuration)
	require.NoError(t, c.Validate(), "the bounds themselves are allowed")

	// The YAML file's durations are parsed by Prometheus's model, which refuses an overflow.
	path := filepath.Join(t.TempDir(), "big.yml")
	require.NoError(t, os.WriteFile(path, []byte("refresh_interval: 18446744074s\n"), 0o600))
	c = Default()
	require.ErrorContains(t, c.LoadFile(path), "out of range")
}

// TestEventsSettings: event mode is off by default, with a coalescing window of 150ms; the file's
// events section sets the queue and the window.
func TestEventsSettings(t *testing.T) {
	t.Parallel()
	c := Default()
	require.NoError(t, c.Validate())
	require.Empty(t, c.Events.QueueURL)
	require.Equal(t, model.Duration(150*time.Millisecond), c.Events.Coalesce)

	path := filepath.Join(t.TempDir(), "ecs-sd.yml")
	require.NoError(t, os.WriteFile(path, []byte(`
aws: {region: eu-west-1}
events:
  queue_url: https://sqs.eu-west-1.amazonaws.com/111122223333/ecs-sd-events
  coalesce: 300ms
`), 0o600))
	c = Default()
	require.NoError(t, c.LoadFile(path))
	require.NoError(t, c.Validate())
	require.Equal(t, "https://sqs.eu-west-1.amazonaws.com/111122223333/ecs-sd-events", c.Events.QueueURL)
	require.Equal(t, model.Duration(300*time.Millisecond), c.Events.Coalesce)
}

// TestEventsQueueURLMustBeAQueue: the queue URL is an SQS queue's (any host: an emulator or a
// VPC endpoint), in ecs-sd's region when its host names one; anything else is named.
func TestEventsQueueURLMustBeAQueue(t *testing.T) {
	t.Parallel()
	for u, want := range map[string]string{
		"https://sqs.us-east-1.amazonaws.com/123456789012/ecs-sd-events":      "",
		"https://sqs.us-east-1.amazonaws.com/123456789012/ecs-sd-events.fifo": "",
		"https://queue.amazonaws.com/123456789012/a_b-C9":                     "",
		"https://us-east-1.queue.amazonaws.com/123456789012/q":                "",
		"https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q":              `the queue is in region cn-north-1, ecs-sd's AWS region is us-east-1`,
		"http://127.0.0.1:4566/000000000000/events":                           "",
		"https://vpce-0a1b.sqs.us-east-1.vpce.amazonaws.com/123456789012/q":   "",
		"https://sqs.eu-west-1.amazonaws.com/123456789012/ecs-sd-events":      `the queue is in region eu-west-1, ecs-sd's AWS region is us-east-1`,
		"https://eu-west-1.queue.amazonaws.com/123456789012/q":                `the queue is in region eu-west-1, ecs-sd's AWS region is us-east-1`,
		"ecs-sd-events": "must be an SQS queue URL, http(s)://HOST/ACCOUNT_ID/QUEUE_NAME",
		"arn:aws:sqs:us-east-1:123456789012:ecs-sd-events":                            "must be an SQS queue URL, http(s)://HOST/ACCOUNT_ID/QUEUE_NAME",
		"ftp://sqs.us-east-1.amazonaws.com/123456789012/q":                            "must be an SQS queue URL, http(s)://HOST/ACCOUNT_ID/QUEUE_NAME",
		"https://sqs.us-east-1.amazonaws.com/123456789012/q?Action=ReceiveMessage":    "must be an SQS queue URL, http(s)://HOST/ACCOUNT_ID/QUEUE_NAME",
		"https://sqs.us-east-1.amazonaws.com/":                                        "the path must be /ACCOUNT_ID/QUEUE_NAME, as in http(s)://HOST/ACCOUNT_ID/QUEUE_NAME",
		"https://sqs.us-east-1.amazonaws.com/123456789012/q/x":                        "the path must be /ACCOUNT_ID/QUEUE_NAME, as in http(s)://HOST/ACCOUNT_ID/QUEUE_NAME",
		"https://sqs.us-east-1.amazonaws.com/12345/q":                                 `account id "12345": must be 12 digits`,
		"https://sqs.us-east-1.amazonaws.com/123456789012/":                           `queue name "": must be 1 to 80 letters, digits, hyphens or underscores (a FIFO queue's ending in .fifo)`,
		"https://sqs.us-east-1.amazonaws.com/123456789012/my.queue":                   `queue name "my.queue": must be 1 to 80 letters, digits, hyphens or underscores (a FIFO queue's ending in .fifo)`,
		"https://sqs.us-east-1.amazonaws.com/123456789012/" + strings.Repeat("q", 81): `queue name "` + strings.Repeat("q", 81) + `": must be 1 to 80 letters, digits, hyphens or underscores (a FIFO queue's ending in .fifo)`,
	} {
		c := Default()
		c.AWS.Region = "us-east-1"
		c.Events.QueueURL = u
		err := c.Validate()
		if want == "" {
			require.NoError(t, err, u)
			continue
		}
		require.EqualError(t, err, `events queue url "`+u+`": `+want)
	}

	// Without a configured region (the SDK's chain decides) any region's queue is accepted.
	c := Default()
	c.Events.QueueURL = "https://sqs.eu-west-1.amazonaws.com/123456789012/ecs-sd-events"
	require.NoError(t, c.Validate())
}

func TestEventsCoalesceIsBounded(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                              "",
		MaxCoalesce:                    "",
		time.Millisecond:               "",
		MaxCoalesce + time.Millisecond: "events coalesce 5s1ms: must be from 0s to 5s (0s: each receive on its own)",
		time.Minute:                    "events coalesce 1m: must be from 0s to 5s (0s: each receive on its own)",
		-time.Millisecond:              "events coalesce -1ms: must be from 0s to 5s (0s: each receive on its own)",
	} {
		c := Default()
		c.Events.Coalesce = model.Duration(d)
		if want == "" {
			require.NoError(t, c.Validate(), d)
			continue
		}
		require.EqualError(t, c.Validate(), want)
	}
}

func TestAWSTimeouts(t *testing.T) {
	t.Parallel()
	c := Default()
	require.NoError(t, c.Validate())
	require.Equal(t, model.Duration(5*time.Second), c.AWS.AttemptTimeout)
	require.Equal(t, model.Duration(10*time.Second), c.AWS.CallTimeout)
	require.Equal(t, 8, c.CloudMap.Concurrency)

	cases := []struct {
		attempt, call time.Duration
		concurrency   int
		want          string
	}{
		{attempt: 0, call: time.Second, concurrency: 1, want: "aws attempt timeout 0s: must be between 100ms and 10m"},
		{attempt: time.Second, call: time.Hour, concurrency: 1, want: "aws call timeout 1h: must be between 100ms and 10m"},
		{attempt: 3 * time.Second, call: 2 * time.Second, concurrency: 1, want: "aws attempt timeout 3s: must not exceed the call timeout 2s"},
		{attempt: time.Second, call: 2 * time.Second, concurrency: 0, want: "cloudmap concurrency 0: must be at least 1"},
	}
	for _, tc := range cases {
		c := Default()
		c.AWS.AttemptTimeout, c.AWS.CallTimeout = model.Duration(tc.attempt), model.Duration(tc.call)
		c.CloudMap.Concurrency = tc.concurrency
		require.EqualError(t, c.Validate(), tc.want)
	}

	path := filepath.Join(t.TempDir(), "ecs-sd.yml")
	require.NoError(t, os.WriteFile(path, []byte("aws: {attempt_timeout: 2s, call_timeout: 3s}\ncloudmap: {concurrency: 16}\n"), 0o600))
	c = Default()
	require.NoError(t, c.LoadFile(path))
	require.NoError(t, c.Validate())
	require.Equal(t, AWS{OwnAccount: true, AttemptTimeout: model.Duration(2 * time.Second), CallTimeout: model.Duration(3 * time.Second)}, c.AWS)
	require.Equal(t, 16, c.CloudMap.Concurrency)
}

// TestEndpointVariablesAreTheSDKs: AWS_ENDPOINT_URL is left to the AWS SDK, which also honours
// AWS_ENDPOINT_URL_<SERVICE> over it; taking it as ecs-sd's own endpoint would override those.
func TestEndpointVariablesAreTheSDKs(t *testing.T) {
	c := Default()
	require.NoError(t, c.ApplyEnv(env(map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:5001"})))
	require.Empty(t, c.AWS.EndpointURL)
}
