//go:build integration

package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/grafana"
	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// TestPrometheusWatchesEcsSd runs the kit's self-monitoring against a real ecs-sd: a Prometheus
// scrapes it in the job ecs_sd and evaluates deploy/prometheus/ecs-sd-alerts.yml. Every rule
// evaluates without error on ecs-sd's real series; the rule on skipped targets matches the
// service with a bad METRICS_PORT tag (and its alert is pending) while the rules on a healthy
// ecs-sd match nothing; every query of deploy/grafana/ecs-sd-self-dashboard.json runs, and the
// core panels have data.
func TestPrometheusWatchesEcsSd(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	m.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "ecs-services", ssmtypes.ParameterTypeString)
	ns := m.CreateHTTPNamespace(t, "ecs-services")
	good, _ := m.CreateService(t, ns, "good", map[string]string{"METRICS_PORT": "9100"})
	bad, _ := m.CreateService(t, ns, "bad", map[string]string{"METRICS_PORT": "abc"})
	m.RegisterTask(t, good, testenv.Task{ID: "good-1", IPv4: "10.0.0.1", Cluster: seedCluster, Service: "good", Family: "good"})
	m.RegisterTask(t, bad, testenv.Task{ID: "bad-1", IPv4: "10.0.0.2", Cluster: seedCluster, Service: "bad", Family: "bad"})

	d := startDaemon(t, m.Env(), "--refresh.interval=500ms", "--no-prometheus.config-sync")
	rules, err := filepath.Abs("../deploy/prometheus/ecs-sd-alerts.yml")
	require.NoError(t, err)
	p := testenv.StartPrometheus(t, fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: ecs_sd
    static_configs:
      - targets: [%q]
`, rules, strings.TrimPrefix(d.URL, "http://")))

	query := func(expr string) []testenv.Sample {
		t.Helper()
		samples, err := p.Query(t.Context(), expr)
		require.NoError(t, err, expr)
		return samples
	}
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		return len(query(`ecs_sd_targets{job="ecs_sd", source="cloudmap"} == 1`)) == 1 &&
			len(query(`ALERTS{alertname="EcsSdTargetsSkipped", alertstate="pending"}`)) == 1, "ecs-sd not scraped, or no pending alert yet\n" + p.LogTail(10)
	})

	// Every rule has been evaluated on ecs-sd's series, without error; only the skipped-targets
	// alert is on its way.
	got, err := p.Rules(t.Context())
	require.NoError(t, err)
	require.Len(t, got, len(alertExprs(t, rules)))
	for _, r := range got {
		require.Equal(t, "ok", r.Health, "%s: %s", r.Name, r.LastError)
		if r.Name == "EcsSdTargetsSkipped" {
			require.Equal(t, "pending", r.State)
		} else {
			require.Equal(t, "inactive", r.State, r.Name)
		}
	}
	skipped := query(alertExprs(t, rules)["EcsSdTargetsSkipped"])
	require.Len(t, skipped, 1)
	require.Equal(t, map[string]string{"__name__": "ecs_sd_targets_skipped", "job": "ecs_sd", "instance": strings.TrimPrefix(d.URL, "http://"), "source": "cloudmap", "reason": "bad_port"}, skipped[0].Metric)

	// The dashboard's queries run on ecs-sd's real series; the core panels have data.
	queries, err := grafana.Queries("../deploy/grafana/ecs-sd-self-dashboard.json", map[string]string{"job": "ecs_sd", "instance": ".*", "__rate_interval": "10s"})
	require.NoError(t, err)
	core := []string{"ecs-sd up", "Targets by source", "Time since the last successful discovery", "Failed discoveries",
		"Discovery duration", "Skipped items by reason", "AWS calls by outcome", "Memory", "CPU"}
	// The rates need two scrapes within their range.
	testenv.Eventually(t, 30*time.Second, time.Second, func() (bool, string) {
		withData := map[string]bool{}
		for _, q := range queries {
			if len(query(q.Expr)) > 0 {
				withData[q.Title] = true
			}
		}
		for _, title := range core {
			if !withData[title] {
				return false, fmt.Sprintf("panel %q shows nothing", title)
			}
		}
		return true, ""
	})
}

// alertExprs returns the expression of every alert of a rule file, by alert name.
func alertExprs(t *testing.T, path string) map[string]string {
	t.Helper()
	rules, err := grafana.AlertRules(path)
	require.NoError(t, err)
	out := map[string]string{}
	for _, r := range rules {
		out[r.Alert] = r.Expr
	}
	return out
}
