//go:build integration

package test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// fleet registers, in a new HTTP namespace "fleet" (its SSM parameter set), three Cloud Map
// services of tasks at 10.x addresses, which no test scrapes: web (METRICS_PORT 8080), api
// (METRICS_PORT 8080 and ECS_METRICS_PORT 9100: two targets per task) and worker (the tasks'
// AWS_INSTANCE_PORT). Service tags and instance attributes collide once sanitized (team.name and
// team-name, zone.id and zone-id). It registers the first `from` to `to` tasks of each service
// (of 12) and returns the register function for the others.
func fleet(t *testing.T, m *testenv.Moto) (register func(from, to int), wantTargets int) {
	t.Helper()
	m.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "fleet", ssmtypes.ParameterTypeString)
	ns := m.CreateHTTPNamespace(t, "fleet")
	type svc struct {
		id   string
		name string
	}
	var services []svc
	for _, s := range []struct {
		name string
		tags map[string]string
	}{
		{"web", map[string]string{"METRICS_PORT": "8080", "team.name": "web", "team-name": "frontend"}},
		{"api", map[string]string{"METRICS_PORT": "8080", "ECS_METRICS_PORT": "9100", "team-name": "api", "team_name": "backend"}},
		{"worker", nil},
	} {
		id, _ := m.CreateService(t, ns, s.name, s.tags)
		services = append(services, svc{id, s.name})
	}
	register = func(from, to int) {
		for si, s := range services {
			var tasks []testenv.Task
			for i := from; i < to; i++ {
				tasks = append(tasks, testenv.Task{
					ID: fmt.Sprintf("%s-%02d", s.name, i), IPv4: fmt.Sprintf("10.%d.%d.%d", si, i/8, 10+i), Port: 7000 + i,
					Cluster: "fleet", Service: s.name, Family: s.name + "-task", AZ: "us-east-1" + string(rune('a'+i%3)),
					Extra: map[string]string{"zone.id": fmt.Sprint("z", i%2), "zone-id": "other"},
				})
			}
			m.RegisterTasks(t, s.id, tasks)
		}
	}
	return register, 12 * 4 // web, worker: one target per task; api: two
}

// instances returns the sorted instance labels of the active targets of a job.
func instances(t *testing.T, p *testenv.Prometheus, job string) []string {
	t.Helper()
	all, err := p.ActiveTargets(t.Context())
	require.NoError(t, err)
	var out []string
	for _, tg := range all {
		if tg.ScrapePool == job {
			out = append(out, tg.Labels["instance"])
		}
	}
	sort.Strings(out)
	return out
}

// toLoopback is the relabelling every job of these tests ends with: the discovered address is
// kept in instance, and the target scraped is a loopback port where nothing listens, never the
// registered 10.x address.
func toLoopback(closedPort int) string {
	return fmt.Sprintf(`      - source_labels: [__address__]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:%d
`, closedPort)
}

// TestShardsMatchPrometheusHashmod: for shard I of 3, the targets a real Prometheus gets from
// http_sd with ?shard=I&of=3 are those it keeps from the whole file_sd list with a hashmod
// relabel rule on __address__ (modulus 3) and keep of I: the same instances, none lacking, none
// in two shards, every target in one.
func TestShardsMatchPrometheusHashmod(t *testing.T) {
	t.Parallel()
	const shards = 3
	m := testenv.StartMoto(t)
	register, want := fleet(t, m)
	register(0, 12)
	d := startDaemon(t, m.Env(), "--refresh.interval=500ms", "--no-prometheus.config-sync")
	d.waitReady(t)
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		n := len(addresses(t, d.file(t)))
		return n == want, fmt.Sprintf("%d targets in the file, want %d", n, want)
	})
	all := addresses(t, d.file(t))
	sort.Strings(all)

	closed := testenv.FreePort(t)
	var config strings.Builder
	config.WriteString("global:\n  scrape_interval: 10s\nscrape_configs:\n")
	for i := range shards {
		fmt.Fprintf(&config, `  - job_name: file_%[1]d
    file_sd_configs:
      - files: [%[2]q]
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__address__]
        modulus: %[3]d
        target_label: __tmp_shard
        action: hashmod
      - source_labels: [__tmp_shard]
        regex: "%[1]d"
        action: keep
%[4]s  - job_name: http_%[1]d
    http_sd_configs:
      - url: "%[5]s/prometheus-targets?shard=%[1]d&of=%[3]d"
        refresh_interval: 1s
    relabel_configs:
%[4]s`, i, d.Dir+"/ecs-services.json", shards, toLoopback(closed), d.URL)
	}
	p := testenv.StartPrometheus(t, config.String())

	var union []string
	for i := range shards {
		var fromFile, fromHTTP []string
		testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
			fromFile, fromHTTP = instances(t, p, fmt.Sprint("file_", i)), instances(t, p, fmt.Sprint("http_", i))
			return len(fromFile) > 0 && slices.Equal(fromFile, fromHTTP),
				fmt.Sprintf("shard %d: hashmod of the file keeps %v, http_sd gives %v", i, fromFile, fromHTTP)
		})
		for _, a := range fromHTTP {
			require.Equal(t, uint64(i), targets.HashMod(a, shards), a)
		}
		union = append(union, fromHTTP...)
	}
	sort.Strings(union)
	require.Equal(t, all, union, "the shards together are the list, each target once")
	require.Zero(t, d.metric(t, `ecs_sd_http_sd_responses_total{code="400",encoding="identity"}`))
}

// rawAnswer is one http_sd answer as sent.
type rawAnswer struct {
	body []byte
	etag string
}

// getRaw GETs url with the headers given as they are (no transparent gzip).
func getRaw(t *testing.T, url string, header ...string) rawAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, http.NoBody)
	require.NoError(t, err)
	for i := 0; i < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", url, body)
	return rawAnswer{body, resp.Header.Get("ETag")}
}

// TestReplicasAgree: two ecs-sd with the same configuration against the same AWS state, started
// at different moments of its history, write byte-identical file_sd files and serve byte-identical
// http_sd answers (plain, gzip, shards) with the same entity tags. A real Prometheus job with
// both http_sd URLs scrapes each target once.
func TestReplicasAgree(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	register, want := fleet(t, m)
	args := []string{"--refresh.interval=500ms", "--no-prometheus.config-sync"}
	register(0, 5)
	a := startDaemon(t, m.Env(), args...)
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		n := len(addresses(t, a.file(t)))
		return n == want*5/12, fmt.Sprintf("replica a: %d targets, want %d", n, want*5/12)
	})
	register(5, 9)
	b := startDaemon(t, m.Env(), args...)
	register(9, 12)
	for _, d := range []*daemon{a, b} {
		d.waitReady(t)
		testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
			n := len(addresses(t, d.file(t)))
			return n == want, fmt.Sprintf("%s: %d targets, want %d", d.URL, n, want)
		})
	}

	fileA, fileB := a.file(t), b.file(t)
	require.Equal(t, fileA, fileB, "file_sd files")
	require.Contains(t, fileA, `"__meta_cloudmap_service_tag_team_name": "frontend"`, "the tag whose key sorts first: team-name")
	require.Contains(t, fileA, `"__meta_cloudmap_attribute_zone_id": "other"`, "the attribute whose key sorts first: zone-id")
	for _, path := range []string{"/prometheus-targets", "/prometheus-targets?shard=0&of=3", "/prometheus-targets?shard=2&of=3"} {
		for _, enc := range []string{"identity", "gzip"} {
			ra, rb := getRaw(t, a.URL+path, "Accept-Encoding", enc), getRaw(t, b.URL+path, "Accept-Encoding", enc)
			require.True(t, bytes.Equal(ra.body, rb.body), "%s (%s): bodies differ", path, enc)
			require.NotEmpty(t, ra.etag)
			require.Equal(t, ra.etag, rb.etag, "%s (%s)", path, enc)
			if path == "/prometheus-targets" && enc == "identity" {
				require.Equal(t, fileA, string(ra.body), "http_sd serves the file's list")
			}
		}
	}

	// Both replicas in one job: Prometheus scrapes each target once.
	closed := testenv.FreePort(t)
	p := testenv.StartPrometheus(t, fmt.Sprintf(`global:
  scrape_interval: 10s
scrape_configs:
  - job_name: replicas
    http_sd_configs:
      - url: %s/prometheus-targets
        refresh_interval: 1s
      - url: %s/prometheus-targets
        refresh_interval: 1s
    relabel_configs:
%s`, a.URL, b.URL, toLoopback(closed)))
	all := addresses(t, fileA)
	sort.Strings(all)
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		got := instances(t, p, "replicas")
		return slices.Equal(got, all), fmt.Sprintf("%d active targets, want the %d of the list once each", len(got), len(all))
	})
}
