//go:build integration

package test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

const failures = `ecs_sd_refresh_failures_total{source="cloudmap"}`

// waitCycles waits until the daemon has finished n more cycles that failed.
func waitFailures(t *testing.T, d *daemon, n float64) {
	t.Helper()
	start := d.metric(t, failures)
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		v := d.metric(t, failures)
		return v >= start+n, fmt.Sprintf("failures %v, want %v", v, start+n)
	})
}

func waitTargets(t *testing.T, d *daemon, want ...string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		got := addresses(t, d.file(t))
		return strings.Join(got, " ") == strings.Join(want, " "), fmt.Sprintf("targets %v, want %v", got, want)
	})
}

// TestFaultsLoseNothing runs the daemon through a fault-injecting proxy: a failing service, a
// failing namespace, a failing SSM parameter and a namespace deleted between cycles all keep
// their last good targets while every other target keeps being updated; bad data skips only
// its own targets.
func TestFaultsLoseNothing(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	proxy := testenv.NewProxy(t, m.URL)
	one := m.CreateHTTPNamespace(t, "one")
	two := m.CreateHTTPNamespace(t, "two")
	web, _ := m.CreateService(t, one, "web", map[string]string{"METRICS_PORT": "3000"})
	api, _ := m.CreateService(t, one, "api", map[string]string{"METRICS_PORT": "4000"})
	db, _ := m.CreateService(t, two, "db", map[string]string{"METRICS_PORT": "5000"})
	m.RegisterTasks(t, web, []testenv.Task{{ID: "w1", IPv4: "10.0.0.1"}, {ID: "w2", IPv4: "10.0.0.2"}})
	m.RegisterTask(t, api, testenv.Task{ID: "a1", IPv4: "10.0.1.1"})
	m.RegisterTask(t, db, testenv.Task{ID: "d1", IPv4: "10.0.2.1"})
	m.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "one,two", ssmtypes.ParameterTypeString)

	d := startDaemon(t, testenv.AWSEnv(proxy.URL), "--refresh.interval=300ms", "--no-prometheus.config-sync")
	all := []string{"10.0.0.1:3000", "10.0.0.2:3000", "10.0.1.1:4000", "10.0.2.1:5000"}
	waitTargets(t, d, all...)
	d.waitReady(t)

	// One service fails: its targets stay, and a new task of another service still shows up.
	proxy.FailWhen(func(op string, body []byte) bool {
		return op == "DiscoverInstances" && strings.Contains(string(body), `"ServiceName":"api"`)
	}, "AccessDeniedException")
	waitFailures(t, d, 2)
	require.Equal(t, all, addresses(t, d.file(t)))
	m.RegisterTask(t, web, testenv.Task{ID: "w3", IPv4: "10.0.0.3"})
	all = []string{"10.0.0.1:3000", "10.0.0.2:3000", "10.0.0.3:3000", "10.0.1.1:4000", "10.0.2.1:5000"}
	waitTargets(t, d, all...)
	proxy.ClearFaults()

	// A namespace whose services cannot be listed keeps its targets.
	proxy.FailWhen(func(op string, body []byte) bool {
		return op == "ListServices" && strings.Contains(string(body), two)
	}, "AccessDeniedException")
	waitFailures(t, d, 2)
	require.Equal(t, all, addresses(t, d.file(t)))
	proxy.ClearFaults()

	// The namespace list cannot be read: the last one is used.
	proxy.FailWhen(func(op string, _ []byte) bool { return op == "GetParameter" }, "AccessDeniedException")
	waitFailures(t, d, 2)
	require.Equal(t, all, addresses(t, d.file(t)))
	proxy.ClearFaults()

	// A namespace deleted between cycles: its services' calls fail, its targets stay.
	m.DeleteNamespace(t, two)
	waitFailures(t, d, 2)
	require.Equal(t, all, addresses(t, d.file(t)))

	// Bad data skips only its own targets, with a reason.
	bad, _ := m.CreateService(t, one, "bad", map[string]string{"METRICS_PORT": "abc"})
	m.RegisterTask(t, bad, testenv.Task{ID: "b1", IPv4: "10.0.3.1"})
	m.RegisterTask(t, web, testenv.Task{ID: "no-ip", Cluster: "c"})
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		return d.metric(t, `ecs_sd_targets_skipped_total{reason="bad_port",source="cloudmap"}`) > 0 &&
			d.metric(t, `ecs_sd_targets_skipped_total{reason="no_ip",source="cloudmap"}`) > 0, "skips not counted"
	})
	require.Equal(t, all, addresses(t, d.file(t)))

	// http_sd serves exactly the file's content.
	code, body, err := d.get("/prometheus-targets")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, d.file(t), body)
	require.Greater(t, d.metric(t, `ecs_sd_aws_api_calls_total{operation="DiscoverInstances",outcome="error",service="ServiceDiscovery"}`), 0.0)
	require.Greater(t, d.metric(t, `ecs_sd_aws_api_calls_total{operation="DiscoverInstances",outcome="success",service="ServiceDiscovery"}`), 0.0)
}

// TestOnceReportsFailure: --once exits non-zero with the reason, writes "[]" when there was no
// file, and never shrinks a good file.
func TestOnceReportsFailure(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	dir := t.TempDir()
	env := withEnv(m.Env(), "CONFIG_FILE_DIR="+dir)
	code, _, stderr := run(t, env, "--once")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `ssm parameter \"ECS-ServiceDiscovery-Namespaces\": parameter not found`)
	data, err := os.ReadFile(filepath.Join(dir, "ecs-services.json"))
	require.NoError(t, err)
	require.Equal(t, "[]\n", string(data))

	ns := m.CreateHTTPNamespace(t, "apps")
	svc, _ := m.CreateService(t, ns, "web", map[string]string{"METRICS_PORT": "3000"})
	m.RegisterTasks(t, svc, []testenv.Task{{ID: "t1", IPv4: "10.0.0.1"}, {ID: "t2", IPv4: "10.0.0.2"}})
	m.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "apps", ssmtypes.ParameterTypeString)
	code, _, stderr = run(t, env, "--once")
	require.Equal(t, 0, code, stderr)
	good, err := os.ReadFile(filepath.Join(dir, "ecs-services.json"))
	require.NoError(t, err)
	require.Len(t, addresses(t, string(good)), 2)

	// Every Cloud Map call fails: exit 1, the good file stays as it was.
	proxy := testenv.NewProxy(t, m.URL)
	proxy.FailWhen(func(op string, _ []byte) bool { return op == "DiscoverInstances" }, "AccessDeniedException")
	code, _, stderr = run(t, withEnv(testenv.AWSEnv(proxy.URL), "CONFIG_FILE_DIR="+dir), "--once")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "DiscoverInstances")
	require.Contains(t, stderr, "AccessDeniedException")
	after, err := os.ReadFile(filepath.Join(dir, "ecs-services.json"))
	require.NoError(t, err)
	require.Equal(t, string(good), string(after))
}
