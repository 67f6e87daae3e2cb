//go:build integration

package test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// TestPrometheusHonoursScrapeSettings: the Cloud Map service tags METRICS_SCHEME,
// METRICS_SCRAPE_INTERVAL and METRICS_SCRAPE_TIMEOUT reach a real Prometheus as the target's own
// scheme, interval and timeout (it scrapes an HTTPS-only server, at the tagged interval); a service
// whose tag is not a duration gives no target and is counted as skipped; and a timeout set alone,
// longer than the job's interval, passes ecs-sd but is dropped by Prometheus, as the README says.
func TestPrometheusHonoursScrapeSettings(t *testing.T) {
	t.Parallel()
	metrics := func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE app_up gauge\napp_up 1")
	}
	plain := httptest.NewServer(http.HandlerFunc(metrics))
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(http.HandlerFunc(metrics))
	t.Cleanup(secure.Close)
	port := func(s *httptest.Server) string {
		u, err := url.Parse(s.URL)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1", u.Hostname(), "test servers listen on loopback")
		return u.Port()
	}

	m := testenv.StartMoto(t)
	m.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "ecs-services", ssmtypes.ParameterTypeString)
	ns := m.CreateHTTPNamespace(t, "ecs-services")
	// One address each (targets of one endpoint would be merged into one); 127.0.0.2 is never
	// scraped: one service is skipped, the other dropped by Prometheus.
	for name, svc := range map[string]struct {
		ip   string
		tags map[string]string
	}{
		"slow":         {"127.0.0.1", map[string]string{"METRICS_PORT": port(plain), "METRICS_SCRAPE_INTERVAL": "3s", "METRICS_SCRAPE_TIMEOUT": "1500ms"}},
		"secure":       {"127.0.0.1", map[string]string{"METRICS_PORT": port(secure), "METRICS_SCHEME": "HTTPS"}},
		"bad-timeout":  {"127.0.0.2", map[string]string{"METRICS_PORT": "9100", "METRICS_SCRAPE_TIMEOUT": "abc"}},
		"long-timeout": {"127.0.0.2", map[string]string{"METRICS_PORT": "9101", "METRICS_SCRAPE_TIMEOUT": "5s"}},
	} {
		id, _ := m.CreateService(t, ns, name, svc.tags)
		m.RegisterTask(t, id, testenv.Task{ID: name + "-1", IPv4: svc.ip, Cluster: seedCluster, Service: name, Family: name})
	}

	d := startDaemon(t, m.Env(), "--refresh.interval=500ms", "--no-prometheus.config-sync")
	p := testenv.StartPrometheus(t, fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: ecs_services
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
    tls_config:
      insecure_skip_verify: true
    relabel_configs:
      - source_labels: [__meta_cloudmap_service_name]
        target_label: cloudmap_service
`, filepath.Join(d.Dir, "ecs-services.json")))

	byService := func() map[string]testenv.Target {
		all, err := p.ActiveTargets(t.Context())
		require.NoError(t, err)
		out := map[string]testenv.Target{}
		for _, tg := range all {
			out[tg.Labels["cloudmap_service"]] = tg
		}
		return out
	}
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		got := byService()
		return got["slow"].Health == "up" && got["secure"].Health == "up",
			fmt.Sprintf("targets %+v\n%s", got, p.LogTail(20))
	})
	got := byService()
	require.Len(t, got, 2, "the bad and the too-long timeout give no active target: %+v", got)

	slow := got["slow"]
	require.Equal(t, "3s", slow.ScrapeInterval)
	require.Equal(t, "1s500ms", slow.ScrapeTimeout)
	require.Equal(t, "http://127.0.0.1:"+port(plain)+"/metrics", slow.ScrapeURL)
	sec := got["secure"]
	require.Equal(t, "1s", sec.ScrapeInterval, "the job's")
	require.Equal(t, "https://127.0.0.1:"+port(secure)+"/metrics", sec.ScrapeURL)

	// The tagged interval is the one Prometheus keeps: 3 s between scrapes of "slow", 1 s
	// between those of "secure".
	testenv.Eventually(t, 30*time.Second, 500*time.Millisecond, func() (bool, string) {
		samples, err := p.Query(t.Context(), `count_over_time(up{job="ecs_services"}[12s])`)
		require.NoError(t, err)
		counts := map[string]float64{}
		for _, s := range samples {
			counts[s.Metric["cloudmap_service"]] = s.Value
		}
		return counts["secure"] >= 10 && counts["slow"] >= 3 && counts["slow"] <= 5,
			fmt.Sprintf("scrapes in 12 s: %v", counts)
	})

	require.Equal(t, 1.0, d.metric(t, `ecs_sd_targets_skipped{reason="bad_scrape_timeout",source="cloudmap"}`))
	require.Contains(t, d.logs.String(), `service tag METRICS_SCRAPE_TIMEOUT=\"abc\" is not a duration`)
	// ecs-sd wrote the long timeout, which only Prometheus can compare with the job's interval.
	require.Contains(t, d.file(t), `"__scrape_timeout__": "5s"`)
	testenv.Eventually(t, 10*time.Second, 250*time.Millisecond, func() (bool, string) {
		return strings.Contains(p.LogTail(200), `scrape timeout cannot be greater than scrape interval (\"5s\" > \"1s\")`), p.LogTail(20)
	})
}
