package grafana_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/grafana"
)

// selfDashboardFile is the dashboard of ecs-sd's own metrics, next to this file.
const selfDashboardFile = "ecs-sd-self-dashboard.json"

// selfVars selects every job and instance, as the dashboard's "All" does, and gives Grafana's
// $__rate_interval a value.
var selfVars = map[string]string{"job": ".*", "instance": ".*", "__rate_interval": "1m"}

// alertRef matches the names of ecs-sd's alerts in panel descriptions.
var alertRef = regexp.MustCompile(`\bEcsSd[A-Za-z]+\b`)

// TestSelfDashboardModel: the dashboard imports into any Grafana with a Prometheus data source,
// every query is filtered by the job and instance variables and reads only series ecs-sd exports
// (found in its code), and the alerts the panels name exist.
func TestSelfDashboardModel(t *testing.T) {
	t.Parallel()
	d, vars, panels := checkDashboard(t, selfDashboardFile, selfVars)
	require.Equal(t, "ecs-sd-self", d.UID)
	for name, query := range map[string]string{"job": `label_values(ecs_sd_build_info, job)`, "instance": `label_values(ecs_sd_build_info{job=~"$job"}, instance)`} {
		v, ok := vars[name]
		require.True(t, ok, "no %s variable", name)
		require.Equal(t, "query", v.Type, name)
		require.Equal(t, promDatasource, *v.Datasource, name)
		require.Equal(t, query, queryString(t, v.Query), name)
		require.True(t, v.IncludeAll && v.Multi, name)
		require.Equal(t, ".*", v.AllValue, name)
	}

	exported, err := grafana.ExportedMetrics("../..")
	require.NoError(t, err)
	alerts := alertNames(t)
	used := map[string]bool{}
	for _, p := range panels {
		require.Contains(t, []string{"timeseries", "stat"}, p.Type, p.Title)
		require.NotEmpty(t, p.Description, p.Title)
		for _, a := range alertRef.FindAllString(p.Description, -1) {
			require.True(t, alerts[a], "panel %q names %s, which is no alert of deploy/prometheus/ecs-sd-alerts.yml", p.Title, a)
		}
		for _, tg := range p.Targets {
			where := p.Title + " " + tg.RefID
			selectors := strings.Count(tg.Expr, "{")
			require.Positive(t, selectors, where)
			require.Equal(t, selectors, strings.Count(tg.Expr, `job=~"$job", instance=~"$instance"`), "every selector of %s is filtered: %s", where, tg.Expr)
			names := grafana.MetricNames(tg.Expr)
			require.NotEmpty(t, names, where)
			for _, n := range names {
				require.True(t, exported[n], "%s: %s is no series of ecs-sd", where, n)
				used[n] = true
			}
		}
	}
	for _, n := range []string{
		"up", "ecs_sd_targets", "ecs_sd_last_success_timestamp_seconds", "ecs_sd_refresh_failures_total",
		"ecs_sd_refresh_consecutive_failures", "ecs_sd_refresh_duration_seconds_bucket", "ecs_sd_targets_skipped",
		"ecs_sd_aws_api_calls_total", "ecs_sd_aws_api_retries_total", "ecs_sd_events_received_total",
		"ecs_sd_event_latency_seconds_bucket", "ecs_sd_events_receive_errors_total", "ecs_sd_output_failures_total",
	} {
		require.True(t, used[n], "no panel shows %s", n)
	}
}

// alertNames returns the names of the alerts of deploy/prometheus/ecs-sd-alerts.yml.
func alertNames(t *testing.T) map[string]bool {
	t.Helper()
	rules, err := grafana.AlertRules("../prometheus/ecs-sd-alerts.yml")
	require.NoError(t, err)
	require.NotEmpty(t, rules)
	out := map[string]bool{}
	for _, r := range rules {
		out[r.Alert] = true
	}
	return out
}

func TestSelfDashboardQueriesSubstituteVariables(t *testing.T) {
	t.Parallel()
	queries, err := grafana.Queries(selfDashboardFile, selfVars)
	require.NoError(t, err)
	require.Greater(t, len(queries), 15)
	for _, q := range queries {
		require.NotContains(t, q.Expr, "$", q.Title)
	}
	require.True(t, slices.ContainsFunc(queries, func(q grafana.Query) bool {
		return q.Expr == `up{job=~".*", instance=~".*"}`
	}), "the up panel")
}
