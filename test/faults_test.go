//go:build integration

package test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// The fault suite's timing: a short cycle and short AWS deadlines, so that a case takes seconds.
const (
	faultInterval       = time.Second
	faultAttemptTimeout = 500 * time.Millisecond
	faultCallTimeout    = 1500 * time.Millisecond
	// arrival is the most a change may take to reach both outputs, fault or not: the next cycle
	// (one interval), a hung call's timeout, and slack for the cycle's own work on a busy machine.
	arrival = faultInterval + faultCallTimeout + 4*time.Second
)

// faultFlags are the daemon's flags in the fault suite.
var faultFlags = []string{
	"--refresh.interval=" + model.Duration(faultInterval).String(),
	"--aws.attempt-timeout=" + model.Duration(faultAttemptTimeout).String(),
	"--aws.call-timeout=" + model.Duration(faultCallTimeout).String(),
	"--no-prometheus.config-sync",
}

const (
	namespacesParameter = "ECS-ServiceDiscovery-Namespaces"
	cloudMapFailures    = `ecs_sd_refresh_failures_total{source="cloudmap"}`
	cloudMapLastSuccess = `ecs_sd_last_success_timestamp_seconds{source="cloudmap"}`
)

// faultEnv is a daemon discovering two Cloud Map namespaces on moto through a fault-injecting
// proxy: "one" with the services web (port 3000) and api (4000), "two" with db (5000). Fixtures
// go to moto directly, so faults touch only the daemon's calls. A watcher reads the file and the
// http_sd answer every 50 ms for the whole test and fails it when either ever lacks a target
// that both had (or does not parse).
type faultEnv struct {
	m          *testenv.Moto
	proxy      *testenv.Proxy
	d          *daemon
	one, two   string            // namespace ids
	services   map[string]string // name -> id
	ports      map[string]int
	registered int

	mu   sync.Mutex
	want []string // targets both outputs must hold from now on
}

// newFaultEnv starts the fixtures and the daemon, with args (faultFlags in the suite), and waits
// until both outputs hold every target.
func newFaultEnv(t testing.TB, args ...string) *faultEnv {
	t.Helper()
	m := testenv.StartMoto(t)
	e := &faultEnv{m: m, proxy: testenv.NewProxy(t, m.URL), services: map[string]string{},
		ports: map[string]int{"web": 3000, "api": 4000, "db": 5000}}
	e.one = m.CreateHTTPNamespace(t, "one")
	e.two = m.CreateHTTPNamespace(t, "two")
	for _, s := range []struct{ ns, name string }{{e.one, "web"}, {e.one, "api"}, {e.two, "db"}} {
		e.services[s.name], _ = m.CreateService(t, s.ns, s.name, map[string]string{"METRICS_PORT": fmt.Sprint(e.ports[s.name])})
	}
	m.PutParameter(t, namespacesParameter, "one,two", ssmtypes.ParameterTypeString)
	var first []string
	for _, svc := range []string{"web", "web", "api", "db"} {
		first = append(first, e.register(t, svc))
	}
	e.d = startDaemon(t, testenv.AWSEnv(e.proxy.URL), args...)
	for _, addr := range first {
		e.waitArrival(t, addr, 20*time.Second)
	}
	e.d.waitReady(t)
	e.watch(t)
	return e
}

// register registers a new task in svc and returns its target address (which waitArrival then
// waits for).
func (e *faultEnv) register(t testing.TB, svc string) string {
	t.Helper()
	e.registered++
	ip := fmt.Sprintf("10.0.%d.%d", e.registered/250, e.registered%250+1)
	e.m.RegisterTask(t, e.services[svc], testenv.Task{ID: fmt.Sprintf("%s-%d", svc, e.registered), IPv4: ip, Cluster: "c", Service: svc, Family: svc})
	return fmt.Sprintf("%s:%d", ip, e.ports[svc])
}

// outputs returns the targets of the file and of the http_sd answer; an error when either cannot
// be read or parsed.
func (e *faultEnv) outputs() (file, httpSD []string, err error) {
	data, err := os.ReadFile(filepath.Join(e.d.Dir, "ecs-services.json"))
	if err != nil {
		return nil, nil, err
	}
	if file, err = parseAddresses(data); err != nil {
		return nil, nil, fmt.Errorf("file: %w", err)
	}
	code, body, err := e.d.get("/prometheus-targets")
	if err != nil || code != http.StatusOK {
		return nil, nil, fmt.Errorf("http_sd: %d %w", code, err)
	}
	if httpSD, err = parseAddresses([]byte(body)); err != nil {
		return nil, nil, fmt.Errorf("http_sd: %w", err)
	}
	return file, httpSD, nil
}

func parseAddresses(doc []byte) ([]string, error) {
	groups, err := targets.Unmarshal(doc)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range groups {
		out = append(out, g.Targets...)
	}
	return out, nil
}

// missing returns the targets of want that got lacks.
func missing(want, got []string) []string {
	var out []string
	for _, a := range want {
		if !slices.Contains(got, a) {
			out = append(out, a)
		}
	}
	return out
}

// waitArrival waits until addr is in both outputs, fails the test after within, and from then on
// counts addr among the targets that must never be lost. It returns how long addr took.
func (e *faultEnv) waitArrival(t testing.TB, addr string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	testenv.Eventually(t, within, 20*time.Millisecond, func() (bool, string) {
		file, httpSD, err := e.outputs()
		if err != nil {
			return false, err.Error()
		}
		return slices.Contains(file, addr) && slices.Contains(httpSD, addr), fmt.Sprintf("%s not in both outputs: file %v, http_sd %v", addr, file, httpSD)
	})
	took := time.Since(start)
	e.mu.Lock()
	if !slices.Contains(e.want, addr) {
		e.want = append(e.want, addr)
	}
	e.mu.Unlock()
	return took
}

// watch checks both outputs every 50 ms until the test ends.
func (e *faultEnv) watch(t testing.TB) {
	stop, stopped := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-stopped })
	go func() {
		defer close(stopped)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			e.mu.Lock()
			want := slices.Clone(e.want)
			e.mu.Unlock()
			file, httpSD, err := e.outputs()
			if err != nil {
				t.Errorf("outputs unreadable: %v", err)
				return
			}
			if lost := missing(want, file); lost != nil {
				t.Errorf("file lost %v", lost)
				return
			}
			if lost := missing(want, httpSD); lost != nil {
				t.Errorf("http_sd lost %v", lost)
				return
			}
		}
	}()
}

// waitMetric waits until series has grown by at least n since from, and fails the test after
// within.
func (e *faultEnv) waitMetric(t testing.TB, series string, from, n float64, within time.Duration) {
	t.Helper()
	testenv.Eventually(t, within, 50*time.Millisecond, func() (bool, string) {
		v := max(e.d.metric(t, series), 0)
		return v >= from+n, fmt.Sprintf("%s = %v, want at least %v", series, v, from+n)
	})
}

// aboutNamespaceOne matches the Cloud Map calls about namespace one: its services' listing (by
// namespace id) and their instances (by namespace name).
func (e *faultEnv) aboutNamespaceOne(r testenv.Request) bool {
	body := string(r.Body)
	return strings.Contains(body, e.one) || strings.Contains(body, `"NamespaceName":"one"`)
}

func discoverOf(service string) func(testenv.Request) bool {
	return func(r testenv.Request) bool {
		return r.Op == "DiscoverInstances" && strings.Contains(string(r.Body), `"ServiceName":"`+service+`"`)
	}
}

func retries(op, code string) string {
	return fmt.Sprintf(`ecs_sd_aws_api_retries_total{code=%q,operation=%q,service="ServiceDiscovery"}`, code, op)
}

func calls(service, op, outcome string) string {
	return fmt.Sprintf(`ecs_sd_aws_api_calls_total{operation=%q,outcome=%q,service=%q}`, op, outcome, service)
}

// TestFaults puts ecs-sd through AWS faults. In each case no target is ever lost from the file or
// the http_sd answer; while the fault lasts, a new instance elsewhere reaches both within one
// interval (plus one call timeout and slack); once it ends, a new instance in what the fault hit
// arrives as fast, and a cycle without error follows.
func TestFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// start injects the fault; stop ends it (default: the proxy's rules are cleared).
		start, stop func(t *testing.T, e *faultEnv)
		// effect is a metric that must grow by at least n while the fault lasts: proof that it hit.
		effect string
		n      float64
		// during gets a new instance while the fault lasts ("": nothing can arrive then); after,
		// once it ended.
		during, after string
	}{
		{
			name: "hung call",
			start: func(_ *testing.T, e *faultEnv) {
				e.proxy.Inject(discoverOf("api"), testenv.Hold())
			},
			effect: calls("ServiceDiscovery", "DiscoverInstances", "timeout"), n: 2,
			during: "db", after: "api",
		},
		{
			name: "throttling storm",
			// Every first attempt of every call is throttled: calls succeed on a retry, and the
			// retries show what the call counter (outcomes after retries) does not.
			start: func(_ *testing.T, e *faultEnv) {
				e.proxy.Inject(func(r testenv.Request) bool { return r.Attempt == 1 }, testenv.AWSError("ThrottlingException"))
			},
			effect: retries("DiscoverInstances", "ThrottlingException"), n: 6,
			during: "web", after: "api",
		},
		{
			name: "connection resets",
			start: func(_ *testing.T, e *faultEnv) {
				e.proxy.Inject(discoverOf("api"), testenv.ResetConnection())
			},
			effect: retries("DiscoverInstances", "connection"), n: 8,
			during: "db", after: "api",
		},
		{
			name: "5xx with an HTML body",
			start: func(_ *testing.T, e *faultEnv) {
				e.proxy.Inject(e.aboutNamespaceOne, testenv.HTMLError(http.StatusBadGateway))
			},
			effect: retries("ListServices", "http_502"), n: 8,
			during: "db", after: "web",
		},
		{
			name: "AWS gone and back",
			// Every request hangs, as when the network to AWS is cut.
			start: func(_ *testing.T, e *faultEnv) {
				e.proxy.Inject(func(testenv.Request) bool { return true }, testenv.Hold())
			},
			effect: cloudMapFailures, n: 2,
			after: "db",
		},
		{
			name:  "SSM parameter deleted",
			start: func(t *testing.T, e *faultEnv) { e.m.DeleteParameter(t, namespacesParameter) },
			stop: func(t *testing.T, e *faultEnv) {
				e.m.PutParameter(t, namespacesParameter, "one,two", ssmtypes.ParameterTypeString)
			},
			effect: calls("SSM", "GetParameter", "error"), n: 2,
			during: "db", after: "api",
		},
		{
			name: "one namespace denied",
			start: func(_ *testing.T, e *faultEnv) {
				e.proxy.Inject(e.aboutNamespaceOne, testenv.AWSError("AccessDeniedException"))
			},
			effect: calls("ServiceDiscovery", "ListServices", "error"), n: 2,
			during: "db", after: "web",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newFaultEnv(t, faultFlags...)
			from := max(e.d.metric(t, c.effect), 0)
			c.start(t, e)
			e.waitMetric(t, c.effect, from, c.n, 20*time.Second)
			if c.during != "" {
				took := e.waitArrival(t, e.register(t, c.during), arrival)
				t.Logf("during the fault, a new %s instance reached both outputs in %v", c.during, took.Round(10*time.Millisecond))
			}

			ended := time.Now()
			if c.stop != nil {
				c.stop(t, e)
			} else {
				e.proxy.ClearFaults()
			}
			took := e.waitArrival(t, e.register(t, c.after), arrival)
			t.Logf("after the fault, a new %s instance reached both outputs in %v", c.after, took.Round(10*time.Millisecond))
			testenv.Eventually(t, arrival, 50*time.Millisecond, func() (bool, string) {
				v := e.d.metric(t, cloudMapLastSuccess)
				return v >= float64(ended.Unix()), fmt.Sprintf("last success %v, fault ended %v", v, ended.Unix())
			})
		})
	}
}

// BenchmarkHungCallArrival measures, with the default refresh interval and AWS deadlines, how long
// a new instance in one namespace takes to reach both outputs while every DiscoverInstances call
// of a service in another namespace hangs. Iteration i registers the instance i/4 of an interval
// after the outputs last changed, so that -benchtime=4x samples the phases of a cycle; it reports
// the mean and the worst. docs/benchmarks.md records the result.
func BenchmarkHungCallArrival(b *testing.B) {
	e := newFaultEnv(b, "--no-prometheus.config-sync")
	e.proxy.Inject(discoverOf("api"), testenv.Hold())
	e.waitMetric(b, calls("ServiceDiscovery", "DiscoverInstances", "timeout"), 0, 1, 2*time.Minute)
	interval := 30 * time.Second // the default
	var total, worst time.Duration
	n := 0
	for b.Loop() {
		time.Sleep(time.Duration(n%4) * interval / 4)
		took := e.waitArrival(b, e.register(b, "db"), 3*time.Minute)
		b.Logf("registered %v after an output change: arrived in %v", time.Duration(n%4)*interval/4, took.Round(10*time.Millisecond))
		total += took
		worst = max(worst, took)
		n++
	}
	b.ReportMetric((total / time.Duration(n)).Seconds(), "s/arrival")
	b.ReportMetric(worst.Seconds(), "s-worst")
}

// TestDeletedNamespaceAndBadData: a namespace deleted between cycles keeps its last targets (its
// calls fail), and bad data skips only its own targets, with a reason.
func TestDeletedNamespaceAndBadData(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, faultFlags...)
	from := e.d.metric(t, cloudMapFailures)
	e.m.DeleteNamespace(t, e.two)
	e.waitMetric(t, cloudMapFailures, from, 2, 20*time.Second)

	bad, _ := e.m.CreateService(t, e.one, "bad", map[string]string{"METRICS_PORT": "abc"})
	e.m.RegisterTask(t, bad, testenv.Task{ID: "b1", IPv4: "10.0.3.1"})
	e.m.RegisterTask(t, e.services["web"], testenv.Task{ID: "no-ip", Cluster: "c"})
	e.waitArrival(t, e.register(t, "web"), arrival)
	testenv.Eventually(t, arrival, 100*time.Millisecond, func() (bool, string) {
		return e.d.metric(t, `ecs_sd_targets_skipped_total{reason="bad_port",source="cloudmap"}`) > 0 &&
			e.d.metric(t, `ecs_sd_targets_skipped_total{reason="no_ip",source="cloudmap"}`) > 0, "skips not counted"
	})
	file, httpSD, err := e.outputs()
	require.NoError(t, err)
	e.mu.Lock()
	defer e.mu.Unlock()
	require.ElementsMatch(t, e.want, file)
	require.ElementsMatch(t, e.want, httpSD)
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
