//go:build integration

package test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// activeTargets returns the address of every active target of a job, with its labels.
func activeTargets(t *testing.T, p *testenv.Prometheus, job string) map[string]testenv.Target {
	t.Helper()
	all, err := p.ActiveTargets(t.Context())
	require.NoError(t, err)
	out := map[string]testenv.Target{}
	for _, tg := range all {
		if tg.ScrapePool == job {
			out[tg.DiscoveredLabels["__address__"]] = tg
		}
	}
	return out
}

func keys(m map[string]testenv.Target) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestPrometheusReadsFileSDAndHTTPSD runs the seed's layout: ecs-sd writes the file_sd file
// Prometheus reads and serves the same list for http_sd. A real Prometheus shows every target in
// both jobs with the seed's labels, follows a task registered and deregistered mid-run, scrapes
// a live target, and takes its whole configuration from the SSM parameter (reloaded on change).
func TestPrometheusReadsFileSDAndHTTPSD(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	m.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "ecs-services", ssmtypes.ParameterTypeString)

	d := startDaemon(t, m.Env(), "--refresh.interval=500ms", "--no-prometheus.config-sync")
	daemonPort := strings.TrimPrefix(d.URL, "http://127.0.0.1:")
	fileSD := filepath.Join(d.Dir, "ecs-services.json")
	config := func(extraJob string) string {
		return fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: ecs_services
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
  - job_name: ecs_services_http
    http_sd_configs:
      - url: %s/prometheus-targets
        refresh_interval: 1s
%s`, fileSD, d.URL, extraJob)
	}
	p := testenv.StartPrometheus(t, config(""))

	vpc := m.CreateVPC(t)
	ns := m.CreatePrivateDNSNamespace(t, "ecs-services", vpc)
	// The web app "tasks" are ecs-sd itself on loopback, so one target is really up.
	web, _ := m.CreateService(t, ns, "webapp-svc", map[string]string{"METRICS_PATH": "/metrics", "METRICS_PORT": daemonPort})
	node, _ := m.CreateService(t, ns, "node-exporter-svc", map[string]string{"METRICS_PORT": "9100"})
	m.RegisterTasks(t, web, []testenv.Task{
		{ID: "web-1", IPv4: "127.0.0.1", Cluster: seedCluster, Service: "WebAppService", Family: "WebAppTask"},
		{ID: "web-2", IPv4: "127.0.0.2", Cluster: seedCluster, Service: "WebAppService", Family: "WebAppTask"},
	})
	m.RegisterTask(t, node, testenv.Task{ID: "node-1", IPv4: "127.0.0.3", Cluster: seedCluster, Service: "NodeExporterService", Family: "NodeExporterTask"})

	want := []string{"127.0.0.1:" + daemonPort, "127.0.0.2:" + daemonPort, "127.0.0.3:9100"}
	for _, job := range []string{"ecs_services", "ecs_services_http"} {
		testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
			got := keys(activeTargets(t, p, job))
			return strings.Join(got, " ") == strings.Join(want, " "), fmt.Sprintf("%s: targets %v, want %v", job, got, want)
		})
		got := activeTargets(t, p, job)
		for addr, tg := range got {
			require.Equal(t, seedCluster, tg.Labels["cluster"], addr)
			require.Equal(t, "/metrics", tg.DiscoveredLabels["__metrics_path__"], addr)
			require.Equal(t, "ecs-services", tg.DiscoveredLabels["__meta_cloudmap_namespace_name"], addr)
			require.Equal(t, addr, tg.Labels["instance"], "instance comes from the address")
		}
		require.Equal(t, "WebAppService", got[want[0]].Labels["service"])
		require.Equal(t, "WebAppTask", got[want[0]].Labels["taskdefinition"])
		require.Equal(t, "NodeExporterService", got[want[2]].Labels["service"])
		require.Equal(t, "NodeExporterTask", got[want[2]].Labels["taskdefinition"])
	}
	// Prometheus's http_sd client asks for no compression (its HTTP client turns Go's off, and
	// it sends no Accept-Encoding): it reads the plain list, which the README says.
	require.Positive(t, d.metric(t, `ecs_sd_http_sd_responses_total{code="200",encoding="identity"}`))
	require.Zero(t, d.metric(t, `ecs_sd_http_sd_responses_total{code="200",encoding="gzip"}`))
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		tg := activeTargets(t, p, "ecs_services")[want[0]]
		return tg.Health == "up", "health of ecs-sd's own target: " + tg.Health + " " + tg.LastError
	})

	// A task registered mid-run appears; a deregistered one disappears.
	m.RegisterTask(t, node, testenv.Task{ID: "node-2", IPv4: "127.0.0.4", Cluster: seedCluster, Service: "NodeExporterService", Family: "NodeExporterTask"})
	m.DeregisterTask(t, web, "web-2")
	want = []string{"127.0.0.1:" + daemonPort, "127.0.0.3:9100", "127.0.0.4:9100"}
	for _, job := range []string{"ecs_services", "ecs_services_http"} {
		testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
			got := keys(activeTargets(t, p, job))
			return strings.Join(got, " ") == strings.Join(want, " "), fmt.Sprintf("%s: targets %v, want %v", job, got, want)
		})
	}

	// The seed's config reloader: the whole Prometheus configuration comes from SSM.
	synced := config(fmt.Sprintf(`  - job_name: from_ssm
    static_configs:
      - targets: ["127.0.0.1:%d"]
`, p.Port))
	m.PutParameter(t, "ECS-Prometheus-Configuration", synced, ssmtypes.ParameterTypeString)
	reloadURL := (&url.URL{Scheme: "http", Host: strings.TrimPrefix(p.URL, "http://"), Path: "/-/reload"}).String()
	sync := startDaemonIn(t, p.Dir, m.Env(), "--refresh.interval=500ms", "--no-output.file-sd",
		"--prometheus.config-file-name=prometheus.yml", "--prometheus.reload-url="+reloadURL)
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		return len(activeTargets(t, p, "from_ssm")) == 1, "job from the SSM configuration not loaded"
	})
	written, err := os.ReadFile(filepath.Join(p.Dir, "prometheus.yml"))
	require.NoError(t, err)
	require.Equal(t, synced, string(written))
	require.Equal(t, 1.0, sync.metric(t, `ecs_sd_prometheus_reloads_total{outcome="success"}`))
}
