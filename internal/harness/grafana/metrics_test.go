package grafana

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`up{job="ecs_sd"} == 0`: {"up"},
		`sum without (outcome) (rate(ecs_sd_aws_api_calls_total{outcome="throttled"}[10m])) > 0`:                   {"ecs_sd_aws_api_calls_total"},
		`histogram_quantile(0.9, sum by (le, source) (rate(ecs_sd_refresh_duration_seconds_bucket[5m])))`:          {"ecs_sd_refresh_duration_seconds_bucket"},
		`ecs_sd_targets < 0.5 * max_over_time(ecs_sd_targets[10m]) and on (job) ecs_sd_x offset 5m`:                {"ecs_sd_targets", "ecs_sd_x"},
		`time() - ecs_sd_last_success_timestamp_seconds > 1e3`:                                                     {"ecs_sd_last_success_timestamp_seconds"},
		`label_replace(a, "dst", "$1", "src", "(.*)") or b{x="}"} unless ignoring (y) c * on (z) group_left (w) d`: {"a", "b", "c", "d"},
	} {
		require.Equal(t, want, MetricNames(expr), expr)
	}
}

func TestExportedMetrics(t *testing.T) {
	t.Parallel()
	names, err := ExportedMetrics(filepath.Join("..", "..", ".."))
	require.NoError(t, err)
	for _, n := range []string{
		"up", "ecs_sd_targets", "ecs_sd_refresh_duration_seconds_bucket", "ecs_sd_refresh_duration_seconds_count",
		"ecs_sd_event_latency_seconds_bucket", "ecs_sd_aws_api_calls_total", "ecs_sd_http_sd_responses_total",
		"ecs_sd_file_writes_total", "ecs_sd_build_info", "process_resident_memory_bytes", "go_goroutines",
	} {
		require.True(t, names[n], n)
	}
	for _, n := range []string{"ecs_sd_targets_bucket", "ecs_sd_refresh_duration_seconds", "http_requests_total"} {
		require.False(t, names[n], "%s is no series of ecs-sd", n)
	}
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	rules, err := AlertRules(filepath.Join("..", "..", "..", "deploy", "prometheus", "ecs-sd-alerts.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, rules)
	require.Equal(t, "EcsSdDown", rules[0].Alert)
	require.Equal(t, `up{job="ecs_sd"} == 0`, rules[0].Expr)
	require.Equal(t, "critical", rules[0].Labels["severity"])
	require.NotEmpty(t, rules[0].Annotations["runbook"])
	_, err = AlertRules("missing.yml")
	require.ErrorContains(t, err, "read rules")
}
