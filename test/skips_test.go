//go:build integration

package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// logCount returns how many lines of the daemon's log carry msg="msg" and every given attribute.
func logCount(d *daemon, msg string, attrs ...string) int {
	n := 0
	for _, line := range strings.Split(d.logs.String(), "\n") {
		if !strings.Contains(line, fmt.Sprintf("msg=%q", msg)) && !strings.Contains(line, "msg="+msg+" ") {
			continue
		}
		ok := true
		for _, a := range attrs {
			ok = ok && strings.Contains(line, a)
		}
		if ok {
			n++
		}
	}
	return n
}

// waitCycles waits until the daemon has finished n more Cloud Map discoveries.
func waitCycles(t *testing.T, d *daemon, n float64) {
	t.Helper()
	const cycles = `ecs_sd_refresh_duration_seconds_count{source="cloudmap"}`
	start := d.metric(t, cycles)
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		v := d.metric(t, cycles)
		return v >= start+n, fmt.Sprintf("%v cycles, want %v", v, start+n)
	})
}

// TestSkipsAndCollisionsLoggedOnce runs the daemon at a 300 ms interval over a service whose port
// tag is not a number, an instance without an address, and an instance whose attributes a.b and
// a-b give one label name. Over many cycles: each skip reason is logged once, the gauge holds
// what is skipped now and the counter the events; the collision is logged once and the file never
// changes (the attribute a-b, which sorts first, always gives the label). When the instance
// without an address is deregistered, that is logged once too.
func TestSkipsAndCollisionsLoggedOnce(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	ns := m.CreateHTTPNamespace(t, "apps")
	web, _ := m.CreateService(t, ns, "web", map[string]string{"METRICS_PORT": "3000"})
	bad, _ := m.CreateService(t, ns, "bad", map[string]string{"METRICS_PORT": "abc"})
	m.RegisterTasks(t, web, []testenv.Task{
		{ID: "w1", IPv4: "10.0.0.1", Extra: map[string]string{"a.b": "dot", "a-b": "dash", "a_b": "underscore"}},
		{ID: "no-ip", Cluster: "c"},
	})
	m.RegisterTask(t, bad, testenv.Task{ID: "b1", IPv4: "10.0.1.1"})

	d := startDaemon(t, m.Env(), "--cloudmap.namespace", "apps", "--no-prometheus.config-sync", "--refresh.interval=300ms")
	waitTargets(t, d, "10.0.0.1:3000")
	file := d.file(t)
	require.Contains(t, file, `"__meta_cloudmap_attribute_a_b": "dash"`)
	writes := d.metric(t, `ecs_sd_file_writes_total{outcome="written"}`)
	waitCycles(t, d, 15)

	require.Equal(t, file, d.file(t), "the same AWS state, the same file")
	require.Equal(t, writes, d.metric(t, `ecs_sd_file_writes_total{outcome="written"}`), "not written again")
	require.Equal(t, 1, logCount(d, "Targets skipped", "reason=bad_port", "service=bad", "count=1"), d.logs.String())
	require.Equal(t, 1, logCount(d, "Targets skipped", "reason=no_ip", "service=web", "count=1"), d.logs.String())
	require.Equal(t, 2, logCount(d, "Keys give the same label name; the key that sorts first gives the label", "label=__meta_cloudmap_attribute_a_b", "kept=a-b"), d.logs.String())
	for _, reason := range []string{"bad_port", "no_ip"} {
		require.Equal(t, 1.0, d.metric(t, `ecs_sd_targets_skipped{reason="`+reason+`",source="cloudmap"}`), reason)
		require.Equal(t, 1.0, d.metric(t, `ecs_sd_targets_skipped_total{reason="`+reason+`",source="cloudmap"}`), reason)
	}

	m.DeregisterTask(t, web, "no-ip")
	testenv.Eventually(t, 20*time.Second, 50*time.Millisecond, func() (bool, string) {
		return d.metric(t, `ecs_sd_targets_skipped{reason="no_ip",source="cloudmap"}`) == 0, "no_ip still skipped"
	})
	waitCycles(t, d, 5)
	require.Equal(t, 1, logCount(d, "Targets no longer skipped", "reason=no_ip", "service=web", "count=1"), d.logs.String())
	require.Equal(t, 1, logCount(d, "Targets skipped", "reason=no_ip"), "not logged again")
	require.Equal(t, 1.0, d.metric(t, `ecs_sd_targets_skipped_total{reason="no_ip",source="cloudmap"}`), "an event, counted once")
	require.Equal(t, 1.0, d.metric(t, `ecs_sd_targets_skipped{reason="bad_port",source="cloudmap"}`))
}
