package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/config"
)

func parse(t *testing.T, args []string, env map[string]string) (config.Config, error) {
	t.Helper()
	app := kingpin.New("ecs-sd", "")
	fl := registerFlags(app)
	_, err := app.Parse(args)
	require.NoError(t, err)
	return fl.resolve(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "ecs-sd.yml")
	require.NoError(t, os.WriteFile(file, []byte(`
refresh_interval: 7s
output: {dir: /file, file_name: from-file.json}
cloudmap: {namespaces_parameter: file-param}
web: {listen_addresses: ["127.0.0.1:7000"]}
`), 0o600))

	cfg, err := parse(t, []string{"--config.file", file, "--output.dir", "/flag", "--web.listen-address", "127.0.0.1:8000", "--web.listen-address", "127.0.0.1:8001"},
		map[string]string{"CONFIG_FILE_DIR": "/env", "CONFIG_RELOAD_FREQUENCY": "12", "DISCOVERY_NAMESPACES_PARAMETER_NAME": "env-param"})
	require.NoError(t, err)
	require.Equal(t, "/flag", cfg.Output.Dir, "flag beats env and file")
	require.Equal(t, model.Duration(12*time.Second), cfg.RefreshInterval, "env beats file")
	require.Equal(t, "env-param", cfg.CloudMap.NamespacesParameter)
	require.Equal(t, "from-file.json", cfg.Output.FileName, "file beats default")
	require.Equal(t, "ECS-Prometheus-Configuration", cfg.PrometheusConfig.Parameter, "default")
	require.Equal(t, []string{"127.0.0.1:8000", "127.0.0.1:8001"}, cfg.Web.ListenAddresses, "repeated flags replace the list")

	cfg, err = parse(t, []string{"--config.file", file, "--no-output.http-sd", "--cloudmap.namespace", "a", "--refresh.interval", "1m"}, nil)
	require.NoError(t, err)
	require.False(t, cfg.Output.HTTPSD)
	require.Equal(t, []string{"a"}, cfg.CloudMap.Namespaces)
	require.Equal(t, model.Duration(time.Minute), cfg.RefreshInterval)
	require.Equal(t, []string{"127.0.0.1:7000"}, cfg.Web.ListenAddresses)
}

func TestBadConfigurationIsRejected(t *testing.T) {
	t.Parallel()
	_, err := parse(t, nil, map[string]string{"CONFIG_RELOAD_FREQUENCY": "abc"})
	require.ErrorContains(t, err, "CONFIG_RELOAD_FREQUENCY")
	_, err = parse(t, []string{"--refresh.interval", "0s"}, nil)
	require.ErrorContains(t, err, "refresh interval")
	_, err = parse(t, []string{"--refresh.interval", "25h"}, nil)
	require.EqualError(t, err, "refresh interval 1d1h: must be from 100ms to 1d")
	_, err = parse(t, []string{"--refresh.interval", "18446744074s"}, nil)
	require.EqualError(t, err, `--refresh.interval="18446744074s": duration out of range`)
	_, err = parse(t, []string{"--ecs.cluster", "a", "--ecs.task-refresh-interval", "30d"}, nil)
	require.EqualError(t, err, "ecs task refresh interval 30d: must be from 0s to 1d (0s: never again)")
	_, err = parse(t, nil, map[string]string{"CONFIG_RELOAD_FREQUENCY": "18446744074"})
	require.ErrorContains(t, err, `CONFIG_RELOAD_FREQUENCY="18446744074": want a whole number of seconds from 1 to 86400`)
	_, err = parse(t, []string{"--config.file", "/does/not/exist.yml"}, nil)
	require.ErrorContains(t, err, "/does/not/exist.yml")
	_, err = parse(t, []string{"--no-output.file-sd", "--no-output.http-sd"}, nil)
	require.ErrorContains(t, err, "no output")
}

// TestEventsFlags: event mode's flags and YAML keys, and their checks.
func TestEventsFlags(t *testing.T) {
	t.Parallel()
	const queue = "https://sqs.us-east-1.amazonaws.com/123456789012/ecs-sd-events"
	cfg, err := parse(t, []string{"--events.queue-url", queue, "--events.coalesce", "250ms", "--aws.region", "us-east-1"}, nil)
	require.NoError(t, err)
	require.Equal(t, queue, cfg.Events.QueueURL)
	require.Equal(t, model.Duration(250*time.Millisecond), cfg.Events.Coalesce)

	cfg, err = parse(t, nil, nil)
	require.NoError(t, err)
	require.Empty(t, cfg.Events.QueueURL, "no event mode by default")
	require.Equal(t, model.Duration(150*time.Millisecond), cfg.Events.Coalesce)

	file := filepath.Join(t.TempDir(), "ecs-sd.yml")
	require.NoError(t, os.WriteFile(file, []byte("events: {queue_url: \"http://127.0.0.1:5000/123456789012/q\", coalesce: 1s}\n"), 0o600))
	cfg, err = parse(t, []string{"--config.file", file, "--events.coalesce", "0s"}, nil)
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:5000/123456789012/q", cfg.Events.QueueURL)
	require.Zero(t, cfg.Events.Coalesce, "the flag beats the file")

	_, err = parse(t, []string{"--events.queue-url", "ecs-sd-events"}, nil)
	require.EqualError(t, err, `events queue url "ecs-sd-events": must be an SQS queue URL, http(s)://HOST/ACCOUNT_ID/QUEUE_NAME`)
	_, err = parse(t, []string{"--events.queue-url", queue, "--aws.region", "eu-west-1"}, nil)
	require.EqualError(t, err, `events queue url "`+queue+`": the queue is in region us-east-1, ecs-sd's AWS region is eu-west-1`)
	_, err = parse(t, []string{"--events.coalesce", "10s"}, nil)
	require.EqualError(t, err, "events coalesce 10s: must be from 0s to 5s (0s: each receive on its own)")
	_, err = parse(t, []string{"--events.coalesce", "soon"}, nil)
	require.ErrorContains(t, err, `--events.coalesce="soon"`)
}

func TestAWSTimeoutAndConcurrencyFlags(t *testing.T) {
	t.Parallel()
	cfg, err := parse(t, []string{"--aws.attempt-timeout", "1s", "--aws.call-timeout", "2s", "--cloudmap.concurrency", "3"}, nil)
	require.NoError(t, err)
	require.Equal(t, config.AWS{OwnAccount: true, AttemptTimeout: model.Duration(time.Second), CallTimeout: model.Duration(2 * time.Second)}, cfg.AWS)
	require.Equal(t, 3, cfg.CloudMap.Concurrency)

	_, err = parse(t, []string{"--aws.call-timeout", "1s"}, nil)
	require.EqualError(t, err, "aws attempt timeout 5s: must not exceed the call timeout 1s")
}

func TestAccountFlags(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "ecs-sd.yml")
	require.NoError(t, os.WriteFile(file, []byte(`
aws:
  accounts: [{role_arn: "arn:aws:iam::333333333333:role/from-file", external_id: file-id}]
`), 0o600))

	cfg, err := parse(t, []string{"--config.file", file}, nil)
	require.NoError(t, err)
	require.Equal(t, []config.Account{{RoleARN: "arn:aws:iam::333333333333:role/from-file", ExternalID: "file-id"}}, cfg.AWS.Accounts)
	require.True(t, cfg.AWS.OwnAccount)

	cfg, err = parse(t, []string{"--config.file", file,
		"--aws.discovery-region", "us-east-1", "--aws.discovery-region", "eu-west-1",
		"--aws.account-role-arn", "arn:aws:iam::111111111111:role/a", "--aws.account-role-arn", "arn:aws:iam::222222222222:role/b",
		"--aws.account-external-id", "flag-id", "--no-aws.own-account"}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"us-east-1", "eu-west-1"}, cfg.AWS.Regions)
	require.Equal(t, []config.Account{
		{RoleARN: "arn:aws:iam::111111111111:role/a", ExternalID: "flag-id"},
		{RoleARN: "arn:aws:iam::222222222222:role/b", ExternalID: "flag-id"},
	}, cfg.AWS.Accounts, "the flags replace the file's accounts")
	require.False(t, cfg.AWS.OwnAccount)

	_, err = parse(t, []string{"--aws.account-external-id", "x1"}, nil)
	require.EqualError(t, err, "--aws.account-external-id: applies to the roles of --aws.account-role-arn, and none is given")
	_, err = parse(t, []string{"--aws.account-role-arn", "arn:aws:iam::111111111111:root"}, nil)
	require.EqualError(t, err, `aws accounts[0]: role arn "arn:aws:iam::111111111111:root": must be an IAM role ARN, arn:aws:iam::ACCOUNT_ID:role/NAME`)
	_, err = parse(t, []string{"--aws.discovery-region", "mars-1"}, nil)
	require.EqualError(t, err, `aws regions: "mars-1" is not a region name (like us-east-1)`)
}
