//go:build integration

package test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// kill stops the daemon with SIGKILL, as a crash or an OOM kill would, and waits until it is
// gone.
func (d *daemon) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = d.cmd.Process.Wait()
}

// cycles returns how many discoveries the Cloud Map source has finished.
func (d *daemon) cycles(t *testing.T) float64 {
	t.Helper()
	return d.metric(t, `ecs_sd_refresh_duration_seconds_count{source="cloudmap"}`)
}

// outputs returns the target addresses of the file and of http_sd (read with Go's client, which
// asks for gzip and undoes it), and the status of /-/ready.
func (d *daemon) outputs(t testing.TB) (file, httpSD []string, ready int) {
	t.Helper()
	file = addresses(t, d.file(t))
	code, body, err := d.get("/prometheus-targets")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	httpSD = addresses(t, body)
	ready, _, err = d.get("/-/ready")
	require.NoError(t, err)
	return file, httpSD, ready
}

// hasAll reports whether got holds every address of want.
func hasAll(got, want []string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// TestRestartDuringOutage: ecs-sd is killed while its file holds every target and restarted
// while AWS fails. Until every source has succeeded, the file and http_sd hold every target of
// the earlier file (from http_sd's first answer on), /-/ready says 503, and changes that can
// be discovered still arrive; once the fault ends, the outputs are the discovery's by the end of
// the first cycle that started after it.
func TestRestartDuringOutage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// fault is installed before the restart; it must keep ecs-sd from ever succeeding.
		fault func(p *testenv.Proxy, two string)
		// newSeenDuringFault tells whether a task registered in namespace one during the fault is
		// discovered before it ends.
		newSeenDuringFault bool
	}{
		{name: "every DiscoverInstances throttled", fault: func(p *testenv.Proxy, _ string) {
			p.FailWhen(func(op string, _ []byte) bool { return op == "DiscoverInstances" }, "ThrottlingException")
		}},
		{name: "one namespace denied", newSeenDuringFault: true, fault: func(p *testenv.Proxy, two string) {
			p.FailWhen(func(op string, body []byte) bool {
				return (op == "ListServices" && strings.Contains(string(body), two)) ||
					(op == "DiscoverInstances" && strings.Contains(string(body), `"NamespaceName":"two"`))
			}, "AccessDeniedException")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := testenv.StartMoto(t)
			proxy := testenv.NewProxy(t, m.URL)
			one := m.CreateHTTPNamespace(t, "one")
			two := m.CreateHTTPNamespace(t, "two")
			web, _ := m.CreateService(t, one, "web", map[string]string{"METRICS_PORT": "3000"})
			db, _ := m.CreateService(t, two, "db", map[string]string{"METRICS_PORT": "5000"})
			m.RegisterTasks(t, web, []testenv.Task{{ID: "w1", IPv4: "10.0.0.1"}, {ID: "w2", IPv4: "10.0.0.2"}})
			m.RegisterTasks(t, db, []testenv.Task{{ID: "d1", IPv4: "10.0.2.1"}, {ID: "d2", IPv4: "10.0.2.2"}})
			m.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "one,two", ssmtypes.ParameterTypeString)
			env := testenv.AWSEnv(proxy.URL)
			args := []string{"--refresh.interval=1s", "--no-prometheus.config-sync"}
			all := []string{"10.0.0.1:3000", "10.0.0.2:3000", "10.0.2.1:5000", "10.0.2.2:5000"}

			first := startDaemon(t, env, args...)
			first.waitReady(t)
			waitTargets(t, first, all...)
			first.kill(t)

			tc.fault(proxy, two)
			m.RegisterTask(t, web, testenv.Task{ID: "w3", IPv4: "10.0.0.3"})
			second := startDaemonIn(t, first.Dir, env, args...)
			// Every answer, from the first one on, until the first discovery has failed.
			observed := 0
			for start := second.cycles(t); observed == 0 || second.cycles(t) < start+1; observed++ {
				file, httpSD, ready := second.outputs(t)
				require.True(t, hasAll(file, all), "file %v lacks some of %v", file, all)
				require.True(t, hasAll(httpSD, all), "http_sd %v lacks some of %v", httpSD, all)
				require.Equal(t, http.StatusServiceUnavailable, ready, "ready while a source has never succeeded")
				require.Less(t, observed, 4000, "no discovery ended in %d observations", observed)
				time.Sleep(25 * time.Millisecond)
			}
			require.Positive(t, second.metric(t, cloudMapFailures), "the fault made discoveries fail")
			withNew := append(slices.Clone(all), "10.0.0.3:3000")
			slices.Sort(withNew)
			if tc.newSeenDuringFault {
				testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
					file, httpSD, _ := second.outputs(t)
					return slices.Equal(file, withNew) && slices.Equal(httpSD, withNew), fmt.Sprintf("file %v, http_sd %v, want %v", file, httpSD, withNew)
				})
			}

			// Recovery: by the end of the first cycle that starts after the fault ended.
			proxy.ClearFaults()
			cleared := second.cycles(t)
			testenv.Eventually(t, 60*time.Second, 50*time.Millisecond, func() (bool, string) {
				file, httpSD, ready := second.outputs(t)
				return ready == http.StatusOK && slices.Equal(file, withNew) && slices.Equal(httpSD, withNew),
					fmt.Sprintf("ready %d, file %v, http_sd %v, want %v", ready, file, httpSD, withNew)
			})
			require.LessOrEqual(t, second.cycles(t), cleared+2, "recovered later than the first cycle after the fault")
			code, body, err := second.get("/prometheus-targets")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, second.file(t), body, "http_sd serves exactly the file's content")
			require.Positive(t, second.metric(t, `ecs_sd_http_sd_responses_total{code="200",encoding="gzip"}`), "Go's client read http_sd through gzip")
		})
	}
}

// TestFirstStartWithoutFileOrAWS: with no earlier file and no AWS at all, both outputs are an
// empty list from the start, and ecs-sd is not ready.
func TestFirstStartWithoutFileOrAWS(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, testenv.AWSEnv("http://127.0.0.1:1"), "--refresh.interval=1s", "--no-prometheus.config-sync", "--cloudmap.namespace=apps")
	for start := d.cycles(t); d.cycles(t) < start+1; {
		code, body, err := d.get("/prometheus-targets")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "[]\n", body)
		require.Equal(t, "[]\n", d.file(t))
		ready, _, err := d.get("/-/ready")
		require.NoError(t, err)
		require.Equal(t, http.StatusServiceUnavailable, ready)
		time.Sleep(50 * time.Millisecond)
	}
	require.Positive(t, d.metric(t, cloudMapFailures))
}

// stale returns the temporary files of the file_sd file's writes in dir (named as os.CreateTemp
// names them: digits after the prefix).
func stale(t *testing.T, dir string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, ".ecs-services.json.tmp-[0-9]*"))
	require.NoError(t, err)
	return slices.DeleteFunc(matches, func(f string) bool {
		return strings.Trim(strings.TrimPrefix(filepath.Base(f), ".ecs-services.json.tmp-"), "0123456789") != ""
	})
}

// padAttributes makes every DiscoverInstances answer carry a large attribute that changes at
// every answer, so that every cycle rewrites a file of some megabytes: ecs-sd spends much of its
// time writing, and a kill often lands in the middle of a write.
func padAttributes() func(op string, _, body []byte) []byte {
	var n atomic.Int64
	pad := strings.Repeat("x", 100000)
	return func(op string, _, body []byte) []byte {
		if op != "DiscoverInstances" {
			return body
		}
		var out map[string]any
		if json.Unmarshal(body, &out) != nil {
			return body
		}
		v := n.Add(1)
		for _, inst := range out["Instances"].([]any) {
			attrs := inst.(map[string]any)["Attributes"].(map[string]any)
			attrs["PAD"] = fmt.Sprint(v, pad)
		}
		changed, err := json.Marshal(out)
		if err != nil {
			return body
		}
		return changed
	}
}

// TestKillLoop kills ecs-sd with SIGKILL 30 times, at random moments while it keeps rewriting a
// file of two megabytes (half of the kills the moment a temporary file is seen), within a bounded
// time. After every kill the file parses and holds every target; every temporary file the kill
// left is gone once ecs-sd has restarted, and only ecs-sd's own: a file of another name that
// looks alike is left alone.
func TestKillLoop(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	proxy := testenv.NewProxy(t, m.URL)
	proxy.SetResponseHook(padAttributes())
	ns := m.CreateHTTPNamespace(t, "apps")
	var want []string
	for s := range 2 {
		svc, _ := m.CreateService(t, ns, fmt.Sprintf("svc%d", s), map[string]string{"METRICS_PORT": "3000"})
		var tasks []testenv.Task
		for i := range 10 {
			tasks = append(tasks, testenv.Task{ID: fmt.Sprintf("t%d-%d", s, i), IPv4: fmt.Sprintf("10.0.%d.%d", s, i+1)})
			want = append(want, fmt.Sprintf("10.0.%d.%d:3000", s, i+1))
		}
		m.RegisterTasks(t, svc, tasks)
	}
	slices.Sort(want)
	m.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "apps", ssmtypes.ParameterTypeString)
	dir := t.TempDir()
	lookalike := filepath.Join(dir, ".ecs-services.json.tmp-12x")
	require.NoError(t, os.WriteFile(lookalike, []byte("x"), 0o644))
	env := testenv.AWSEnv(proxy.URL)
	args := []string{"--refresh.interval=100ms", "--no-prometheus.config-sync"}

	d := startDaemonIn(t, dir, env, args...)
	waitTargets(t, d, want...)
	rng := rand.New(rand.NewPCG(9, 9))
	deadline := time.Now().Add(90 * time.Second)
	kills, leftBehind := 0, 0
	for ; kills < 30 && time.Now().Before(deadline); kills++ {
		if kills%2 == 0 {
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		} else { // the moment a write is under way
			for end := time.Now().Add(5 * time.Second); len(stale(t, dir)) == 0 && time.Now().Before(end); {
				time.Sleep(200 * time.Microsecond)
			}
		}
		d.kill(t)
		left := stale(t, dir)
		leftBehind += len(left)
		data, err := os.ReadFile(filepath.Join(dir, "ecs-services.json"))
		require.NoError(t, err)
		groups, err := targets.Unmarshal(data)
		require.NoError(t, err, "kill %d left a file that does not parse", kills)
		require.Len(t, groups, len(want), "kill %d", kills)

		d = startDaemonIn(t, dir, env, args...)
		for _, f := range left {
			_, err := os.Stat(f)
			require.ErrorIs(t, err, os.ErrNotExist, "kill %d left %s, still there after the restart", kills, f)
		}
	}
	require.GreaterOrEqual(t, kills, 10, "too few kills in the time given")
	require.Positive(t, leftBehind, "no kill landed in a write: the test did not test the clean-up")
	t.Logf("%d kills, %d temporary files left by them, all removed at the next start", kills, leftBehind)

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	_, _ = d.cmd.Process.Wait()
	require.Empty(t, stale(t, dir), "a stopped ecs-sd leaves no temporary file")
	_, err := os.Stat(lookalike)
	require.NoError(t, err, "a file of another pattern is not removed")
	require.Equal(t, want, addresses(t, d.file(t)))
}
