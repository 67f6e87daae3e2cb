package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/ecs"
)

func TestECSSettings(t *testing.T) {
	t.Parallel()
	// With no setting at all ecs-sd is the seed: Cloud Map only.
	cfg, err := parse(t, nil, nil)
	require.NoError(t, err)
	require.False(t, cfg.ECS.Enabled())
	require.True(t, cfg.CloudMap.Enabled)

	file := filepath.Join(t.TempDir(), "ecs-sd.yml")
	require.NoError(t, os.WriteFile(file, []byte(`
cloudmap: {enabled: false}
ecs:
  clusters: [from-file]
  docker_labels: {port_label: ECS_PROMETHEUS_EXPORTER_PORT}
  port_names: {enabled: false}
  matchers:
    - {service: "web-.*", ports: [9090, 9091], path: /prom, job: web}
  task_refresh_interval: 0s
  api: {requests_per_second: 2.5}
`), 0o600))
	cfg, err = parse(t, []string{"--config.file", file, "--ecs.cluster", "prod", "--ecs.cluster", "arn:aws:ecs:us-east-1:123456789012:cluster/stage",
		"--ecs.path-label", "METRICS_PATH", "--ecs.api.burst", "7", "--ecs.metadata-refresh-interval", "1m", "--ecs.scrape-timeout-label", "TIMEOUT"}, nil)
	require.NoError(t, err, "ECS alone is a valid configuration")
	e := cfg.ECS
	require.Equal(t, []string{"prod", "arn:aws:ecs:us-east-1:123456789012:cluster/stage"}, e.Clusters)
	require.False(t, e.AllClusters)
	require.Equal(t, ecs.DockerLabels{Enabled: true, PortLabel: "ECS_PROMETHEUS_EXPORTER_PORT", PathLabel: "METRICS_PATH",
		SchemeLabel: "PROMETHEUS_EXPORTER_SCHEME", JobLabel: "PROMETHEUS_EXPORTER_JOB_NAME",
		ScrapeIntervalLabel: "PROMETHEUS_EXPORTER_SCRAPE_INTERVAL", ScrapeTimeoutLabel: "TIMEOUT"}, e.DockerLabels)
	require.Equal(t, ecs.PortNames{Enabled: false, Pattern: "metrics(-.+)?", Path: "/metrics"}, e.PortNames)
	require.Equal(t, []ecs.Matcher{{Service: "web-.*", Ports: []int{9090, 9091}, Path: "/prom", Job: "web"}}, e.Matchers)
	require.Equal(t, model.Duration(0), e.TaskRefreshInterval)
	require.Equal(t, model.Duration(time.Hour), e.InstanceRefreshInterval)
	require.Equal(t, model.Duration(time.Minute), e.MetadataRefreshInterval)
	require.Equal(t, ecs.APILimits{RequestsPerSecond: 2.5, Burst: 7, Concurrency: 5}, e.API)
	_, err = ecs.New(nil, nil, e, ecs.Options{})
	require.NoError(t, err, "the resolved configuration is validated, ready for the source")

	cfg, err = parse(t, []string{"--no-cloudmap.enable", "--ecs.all-clusters", "--no-ecs.docker-labels"}, nil)
	require.NoError(t, err)
	require.True(t, cfg.ECS.AllClusters)
	require.False(t, cfg.ECS.DockerLabels.Enabled)
}

func TestBadECSSettingsAreRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-cloudmap.enable"}, "no source enabled"},
		{[]string{"--ecs.cluster", "a", "--ecs.all-clusters"}, "exclude each other"},
		{[]string{"--ecs.cluster", ""}, "ecs cluster: empty name"},
		{[]string{"--ecs.cluster", "a", "--ecs.port-name-pattern", "metrics("}, "port name pattern"},
		{[]string{"--ecs.cluster", "a", "--ecs.port-name-path", "metrics"}, `path "metrics"`},
		{[]string{"--ecs.cluster", "a", "--ecs.api.concurrency", "0"}, "concurrency"},
		{[]string{"--ecs.cluster", "a", "--ecs.task-refresh-interval", "soon"}, "--ecs.task-refresh-interval"},
	} {
		_, err := parse(t, tc.args, nil)
		require.ErrorContains(t, err, tc.want, tc.args)
	}
}
