//go:build integration

package test

import (
	"fmt"
	"net"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/demo"
	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// shardTarget is a task of TestAgentsShareTargets: a small HTTP server on a loopback address of
// its own, exposing one series of its own, target_info{target=ID} 1.
type shardTarget struct {
	id, addr, job string
}

// serveTarget starts the metrics server of task id on ip (a free port) until t ends.
func serveTarget(t *testing.T, ip, id string) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "target_info", Help: "The task's identity.", ConstLabels: prometheus.Labels{"target": id}})
	info.Set(1)
	reg.MustRegister(info)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	require.NoError(t, srv.Listener.Close())
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().String()
}

// TestAgentsShareTargets runs a fleet of three real Prometheus agents on one ecs-sd: each agent
// runs the deploy kit's agent template (deploy/prometheus/prometheus-agent-shard.yml, rendered
// by deploy/scripts/lib.sh for its shard, then made local: remote write to the sink without
// sigv4, short intervals, the external label agent=<shard>), reads its http_sd shard of ecs-sd
// and remote-writes to one sink (a Prometheus with the remote-write receiver). The 24 tasks (20
// of webapp, 4 of node-exporter) are real metrics servers on 127.0.0.100-123, each with a series
// of its own. At the sink, every task's series and every target's up series are there exactly
// once, from the agent whose shard hashmod puts the target in, with the template's job and
// relabelling; ecs-sd's own metrics are scraped by one agent; every agent scrapes some targets,
// all of its shard.
func TestAgentsShareTargets(t *testing.T) {
	t.Parallel()
	const shards, tasks = 3, 24
	m := testenv.StartMoto(t)
	m.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "agents", ssmtypes.ParameterTypeString)
	ns := m.CreateHTTPNamespace(t, "agents")
	// No METRICS_PORT tag: the target is the task's own AWS_INSTANCE_PORT, the server's port.
	webapp, _ := m.CreateService(t, ns, "webapp", nil)
	nodeExporter, _ := m.CreateService(t, ns, "node-exporter", nil)

	byAddr := map[string]shardTarget{}
	for i := range tasks {
		id := fmt.Sprintf("task-%02d", i)
		service, serviceID, job := "webapp", webapp, "ecs_services"
		if i%6 == 5 {
			service, serviceID, job = "node-exporter", nodeExporter, "node_exporter"
		}
		ip := fmt.Sprintf("127.0.0.%d", 100+i)
		addr := serveTarget(t, ip, id)
		_, port, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(port)
		m.RegisterTask(t, serviceID, testenv.Task{ID: id, IPv4: ip, Port: n, Cluster: "agents", Service: service,
			Family: service + "-task", AZ: "us-east-1a"})
		byAddr[addr] = shardTarget{id, addr, job}
	}

	d := startDaemon(t, m.Env(), "--refresh.interval=500ms", "--no-prometheus.config-sync")
	d.waitReady(t)
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		n := len(addresses(t, d.file(t)))
		return n == tasks, fmt.Sprintf("%d targets in ecs-sd's list, want %d", n, tasks)
	})
	ecsSDAddr := strings.TrimPrefix(d.URL, "http://")
	byAddr[ecsSDAddr] = shardTarget{addr: ecsSDAddr, job: "ecs_sd"}

	// The sink starts first, so that the agents (cleaned up first) stop before it.
	sink := testenv.StartPrometheus(t, "global:\n  evaluation_interval: 1m\n", "--web.enable-remote-write-receiver")
	agents := make([]*testenv.Prometheus, shards)
	for shard := range shards {
		config, err := demo.AgentConfig(t.Context(), "..", demo.AgentSettings{
			Shard: shard, Shards: shards, EcsSDAddr: ecsSDAddr,
			RemoteWriteURL: sink.URL + "/api/v1/write", ScrapeInterval: time.Second,
		})
		require.NoError(t, err)
		require.Contains(t, string(config), fmt.Sprintf("%s/prometheus-targets?shard=%d&of=%d", ecsSDAddr, shard, shards))
		agents[shard] = testenv.StartPrometheusAgent(t, string(config), "--storage.remote.flush-deadline=5s")
	}

	shardOf := func(addr string) string { return strconv.FormatUint(targets.HashMod(addr, shards), 10) }
	// check returns why the sink's series of a metric are not one per target of want, sent by
	// the agent of the target's shard with the template's labels, or "".
	check := func(metric string, want map[string]shardTarget) string {
		samples, err := sink.Query(t.Context(), metric)
		require.NoError(t, err)
		seen := map[string]int{}
		for _, s := range samples {
			instance := s.Metric["instance"]
			seen[instance]++
			w, ok := want[instance]
			switch {
			case !ok:
				return fmt.Sprintf("%s: a series of instance %s, not a target: %v", metric, instance, s.Metric)
			case s.Value != 1:
				return fmt.Sprintf("%s: %v = %g, want 1", metric, s.Metric, s.Value)
			case s.Metric[demo.AgentLabel] != shardOf(instance):
				return fmt.Sprintf("%s: %s sent by agent %q, its shard is %s", metric, instance, s.Metric[demo.AgentLabel], shardOf(instance))
			case s.Metric["job"] != w.job:
				return fmt.Sprintf("%s: %s in job %q, want %q", metric, instance, s.Metric["job"], w.job)
			case w.job == "ecs_services" && s.Metric["task_id"] != w.id:
				return fmt.Sprintf("%s: %s has task_id %q, want %q (the template's relabelling)", metric, instance, s.Metric["task_id"], w.id)
			case metric == "target_info" && s.Metric["target"] != w.id:
				return fmt.Sprintf("%s: %s exposes target %q, want %q", metric, instance, s.Metric["target"], w.id)
			}
		}
		for instance := range want {
			if seen[instance] != 1 {
				return fmt.Sprintf("%s: %d series of %s in the sink, want 1 (%d series of %d targets)", metric, seen[instance], instance, len(samples), len(want))
			}
		}
		return ""
	}
	tasksOnly := map[string]shardTarget{}
	for addr, w := range byAddr {
		if w.job != "ecs_sd" {
			tasksOnly[addr] = w
		}
	}
	testenv.Eventually(t, 60*time.Second, 500*time.Millisecond, func() (bool, string) {
		msg := check("up", byAddr)
		if msg == "" {
			msg = check("target_info", tasksOnly)
		}
		return msg == "", msg
	})
	// No target ever had a second series (from another agent): counted over the whole run.
	counts, err := sink.Query(t.Context(), "count by (instance) (last_over_time(up[1h]))")
	require.NoError(t, err)
	require.Len(t, counts, len(byAddr))
	for _, c := range counts {
		require.Equal(t, 1.0, c.Value, "up series of %s over the run", c.Metric["instance"])
	}

	// Each agent scrapes targets of its shard only, and some; together, every target once.
	var all []string
	for shard, a := range agents {
		active, err := a.ActiveTargets(t.Context())
		require.NoError(t, err)
		var mine []string
		for _, tg := range active {
			instance := tg.Labels["instance"]
			require.Equal(t, strconv.Itoa(shard), shardOf(instance), "agent %d scrapes %s", shard, instance)
			mine = append(mine, instance)
		}
		require.NotEmpty(t, mine, "agent %d scrapes nothing", shard)
		t.Logf("agent %d (shard %d of %d) scrapes %d targets", shard, shard, shards, len(mine))
		all = append(all, mine...)
	}
	sort.Strings(all)
	want := make([]string, 0, len(byAddr))
	for addr := range byAddr {
		want = append(want, addr)
	}
	sort.Strings(want)
	require.Equal(t, want, all, "the agents' targets together: every target once")
	require.False(t, slices.ContainsFunc(want, func(a string) bool { return !strings.HasPrefix(a, "127.") }), "every scrape is to loopback")
}
