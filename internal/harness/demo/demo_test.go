//go:build integration

package demo_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/demo"
	"github.com/ecs-sd/ecs-sd/internal/harness/promclient"
	"github.com/ecs-sd/ecs-sd/internal/harness/supervise"
	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// wantTarget is an active target the pipeline must have in Prometheus.
type wantTarget struct {
	job, service string
}

// startPipeline starts the demo's pipeline with opts, in a temporary directory, with the binaries
// built from this checkout, 1 s scrape intervals and its messages in the test's output.
func startPipeline(t *testing.T, opts demo.Options) (*demo.Pipeline, error) {
	opts.Dir = t.TempDir()
	opts.RepoRoot = filepath.Join("..", "..", "..")
	opts.EcsSDBinary = testenv.BuildBinary(t, "cmd/ecs-sd")
	opts.WebappBinary = testenv.BuildBinary(t, "cmd/webapp")
	opts.ScrapeInterval = time.Second
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	return demo.Start(t.Context(), opts)
}

// TestPipeline runs the demo's pipeline with short scrape intervals: moto with the deploy scripts'
// resources (event mode's queue and rules included), two web app tasks and a node exporter
// registered in Cloud Map as ECS would, ecs-sd in event mode with the deploy kit's 5-minute
// resync, Prometheus on the configuration ecs-sd wrote from SSM, remote-writing to the sink. It
// checks that Prometheus scrapes every task with the seed's labels, that every query of the
// Grafana dashboard (the seed's queries) runs on the sink without error and returns data, that a
// task registered mid-run and announced by its CloudTrail event appears in ecs-sd's outputs
// through the event (an event applied, no discovery run since: the resync could not have found
// it), then in the targets and in the sink, and disappears when deregistered and announced, and
// that nothing is left running at the end.
func TestPipeline(t *testing.T) {
	ctx := t.Context()
	p, err := startPipeline(t, demo.Options{LoadRPS: 20})
	require.NoError(t, err)
	procs := p.Processes()
	stopped := false
	t.Cleanup(func() {
		if t.Failed() {
			for _, proc := range p.Processes() {
				t.Logf("log of %s: %s", proc.Name, proc.LogPath)
			}
		}
		if !stopped {
			p.Stop()
		}
	})

	tasks := p.WebTasks()
	require.Len(t, tasks, 2)
	want := map[string]wantTarget{
		tasks[0].Addr:     {"ecs_services", demo.WebappService},
		tasks[1].Addr:     {"ecs_services", demo.WebappService},
		"127.0.0.21:9100": {"node_exporter", demo.NodeExporterService},
	}
	ecsSDAddr := strings.TrimPrefix(p.EcsSDURL, "http://")
	waitTargets(t, p, func(targets map[string]promclient.Target) string {
		for addr, w := range want {
			if msg := checkTarget(targets, addr, w); msg != "" {
				return msg
			}
		}
		if tg, ok := targets[ecsSDAddr]; !ok || tg.ScrapePool != "ecs_sd" || tg.Health != "up" {
			return fmt.Sprintf("ecs-sd itself (%s) is not an up target of job ecs_sd: %+v", ecsSDAddr, tg)
		}
		if len(targets) != len(want)+1 {
			return fmt.Sprintf("%d active targets, want %d: %v", len(targets), len(want)+1, keys(targets))
		}
		return ""
	})

	// Every seed query runs on the sink without error and, once a few samples arrived, has data.
	queries, err := p.Queries()
	require.NoError(t, err)
	require.Len(t, queries, 8, "request rate, average latency, 4 latency shares, network, CPU")
	testenv.Eventually(t, 45*time.Second, 500*time.Millisecond, func() (bool, string) {
		results, err := p.SeedQueries(ctx)
		require.NoError(t, err)
		var empty []string
		for _, r := range results {
			require.NoError(t, r.Err, "query %q of panel %q", r.Expr, r.Title)
			if !r.HasData() {
				empty = append(empty, r.Name)
			}
		}
		return len(empty) == 0, fmt.Sprintf("no data in the sink for %s", strings.Join(empty, "; "))
	})
	results, err := p.SeedQueries(ctx)
	require.NoError(t, err)
	for _, r := range results {
		for _, s := range r.Samples {
			t.Logf("%s %s = %g", r.Name, r.SeriesName(s), s.Value)
		}
	}

	// A task registered mid-run and announced is in ecs-sd's outputs by the event: one more event
	// applied, and no discovery since (the first, at start, is the only one before the 5-minute
	// resync). Then it is scraped, and its series reach the sink.
	require.Equal(t, demo.DefaultRefreshInterval, p.RefreshInterval())
	discoveries, applied := ecsSDMetric(t, p, cloudMapDiscoveries), ecsSDMetric(t, p, eventsApplied)
	added, err := p.AddWebTask(ctx)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.13:3000", added.Addr)
	waitEcsSD(t, p, added, true)
	assert.Equal(t, discoveries, ecsSDMetric(t, p, cloudMapDiscoveries), "a discovery ran: the target did not come from the event")
	assert.Greater(t, ecsSDMetric(t, p, eventsApplied), applied, "no event applied")
	waitTargets(t, p, func(targets map[string]promclient.Target) string {
		return checkTarget(targets, added.Addr, wantTarget{"ecs_services", demo.WebappService})
	})
	testenv.Eventually(t, 30*time.Second, 500*time.Millisecond, func() (bool, string) {
		samples, err := p.QuerySink(ctx, fmt.Sprintf(`http_requests_total{instance=%q, task_id=%q}`, added.Addr, added.ID))
		require.NoError(t, err)
		return len(samples) > 0, "the new task's http_requests_total has not reached the sink"
	})

	// Deregistered (and stopped) and announced, it leaves ecs-sd's outputs by the event, and
	// Prometheus's active targets; the others stay.
	require.NoError(t, p.RemoveWebTask(ctx, added.ID))
	waitEcsSD(t, p, added, false)
	assert.Equal(t, discoveries, ecsSDMetric(t, p, cloudMapDiscoveries), "a discovery ran: the removal did not come from the event")
	waitTargets(t, p, func(targets map[string]promclient.Target) string {
		if _, ok := targets[added.Addr]; ok {
			return added.Addr + " is still an active target"
		}
		if len(targets) != len(want)+1 {
			return fmt.Sprintf("%d active targets, want %d: %v", len(targets), len(want)+1, keys(targets))
		}
		return ""
	})

	p.Stop()
	stopped = true
	for _, proc := range procs {
		assert.Eventually(t, func() bool { return len(supervise.GroupMembers(proc.PID)) == 0 }, 5*time.Second,
			50*time.Millisecond, "%s (process group %d) still runs", proc.Name, proc.PID)
	}
}

// TestPipelineShards runs the demo's sharded pipeline: three Prometheus agents on the deploy kit's
// agent template, agent I on http_sd shard I of 3 of ecs-sd's list, remote-writing to the sink,
// with six web app tasks (in every shard), the node exporter and ecs-sd itself as targets. Every target is
// scraped by the agent of its shard only and has its up series in the sink exactly once, sent by
// that agent; the seed's queries have data in the sink; a task added mid-run joins its shard's
// agent and the sink once too; nothing is left running at the end.
func TestPipelineShards(t *testing.T) {
	ctx := t.Context()
	const shards, webTasks = 3, 6
	p, err := startPipeline(t, demo.Options{WebTasks: webTasks, Shards: shards})
	require.NoError(t, err)
	procs := p.Processes()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			p.Stop()
		}
	})
	require.Len(t, p.Agents, shards)
	require.Empty(t, p.PrometheusURL, "no Prometheus on file_sd")

	// waitCoverage waits until the agents scrape want targets, each from its shard's agent, and
	// the sink has every one's up series once.
	waitCoverage := func(want int) demo.Coverage {
		var c demo.Coverage
		testenv.Eventually(t, 60*time.Second, 500*time.Millisecond, func() (bool, string) {
			c, err = p.Coverage(ctx)
			if err != nil {
				return false, err.Error()
			}
			return c.Complete() && len(c.Once) == want, fmt.Sprintf("%+v, want %d targets once", c, want)
		})
		perAgent, err := p.AgentTargets(ctx)
		require.NoError(t, err)
		for shard, active := range perAgent {
			for _, tg := range active {
				assert.Equal(t, shard, p.ShardOf(tg.Labels["instance"]), "agent %d scrapes %s", shard, tg.Labels["instance"])
			}
		}
		t.Logf("targets per agent: %v; in the sink once: %d", c.Scraped, len(c.Once))
		for shard, n := range c.Scraped {
			assert.NotZero(t, n, "agent %d scrapes nothing (127.0.0.11-16:3000 fall in every shard)", shard)
		}
		return c
	}
	waitCoverage(webTasks + 2) // and the node exporter and ecs-sd

	testenv.Eventually(t, 45*time.Second, 500*time.Millisecond, func() (bool, string) {
		results, err := p.SeedQueries(ctx)
		require.NoError(t, err)
		var empty []string
		for _, r := range results {
			if !r.HasData() {
				empty = append(empty, r.Name)
			}
		}
		return len(empty) == 0, fmt.Sprintf("no data in the sink for %s", strings.Join(empty, "; "))
	})

	added, err := p.AddWebTask(ctx)
	require.NoError(t, err)
	waitEcsSD(t, p, added, true)
	c := waitCoverage(webTasks + 3)
	assert.Contains(t, c.Once, added.Addr)

	p.Stop()
	stopped = true
	for _, proc := range procs {
		assert.Eventually(t, func() bool { return len(supervise.GroupMembers(proc.PID)) == 0 }, 5*time.Second,
			50*time.Millisecond, "%s (process group %d) still runs", proc.Name, proc.PID)
	}
}

// Series of ecs-sd's /metrics: the Cloud Map source's discoveries (at start and at each resync,
// not when an event is applied) and the events applied.
const (
	cloudMapDiscoveries = `ecs_sd_refresh_duration_seconds_count{source="cloudmap"}`
	eventsApplied       = `ecs_sd_events_applied_total`
)

// ecsSDMetric returns one series of ecs-sd's /metrics.
func ecsSDMetric(t *testing.T, p *demo.Pipeline, series string) float64 {
	t.Helper()
	v, err := p.EcsSDMetric(t.Context(), series)
	require.NoError(t, err)
	return v
}

// waitEcsSD waits until task is (present) or is not a target in ecs-sd's http_sd list and
// file_sd file, and logs how long after its registration (the measure the demo shows).
func waitEcsSD(t *testing.T, p *demo.Pipeline, task *demo.Task, present bool) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	at, err := p.WaitEcsSD(ctx, task.Addr, present)
	require.NoError(t, err)
	if present {
		t.Logf("%s was in ecs-sd's outputs %v after its registration", task.Addr, at.Sub(task.Registered).Round(time.Millisecond))
	} else {
		t.Logf("%s was gone from ecs-sd's outputs %v after its deregistration was announced", task.Addr, at.Sub(start).Round(time.Millisecond))
	}
}

// waitTargets waits until check, given Prometheus's active targets by address, returns "".
func waitTargets(t *testing.T, p *demo.Pipeline, check func(map[string]promclient.Target) string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, 250*time.Millisecond, func() (bool, string) {
		all, err := p.ActiveTargets(t.Context())
		if err != nil {
			return false, err.Error()
		}
		targets := map[string]promclient.Target{}
		for _, tg := range all {
			targets[tg.Labels["instance"]] = tg
		}
		msg := check(targets)
		return msg == "", msg
	})
}

// checkTarget returns why the target at addr is not an up target of w with the seed's labels, or "".
func checkTarget(targets map[string]promclient.Target, addr string, w wantTarget) string {
	tg, ok := targets[addr]
	if !ok {
		return fmt.Sprintf("%s is not an active target (have %v)", addr, keys(targets))
	}
	wantLabels := map[string]string{
		"job": w.job, "cluster": demo.ClusterName, "service": w.service, "taskdefinition": w.service,
	}
	for k, v := range wantLabels {
		if tg.Labels[k] != v {
			return fmt.Sprintf("target %s has %s=%q, want %q (labels %v)", addr, k, tg.Labels[k], v, tg.Labels)
		}
	}
	if tg.Health != "up" {
		return fmt.Sprintf("target %s is %s: %s", addr, tg.Health, tg.LastError)
	}
	return ""
}

func keys(m map[string]promclient.Target) []string { return slices.Sorted(maps.Keys(m)) }
