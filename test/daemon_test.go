//go:build integration

package test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// daemon is a running ecs-sd.
type daemon struct {
	URL  string
	Dir  string
	cmd  *exec.Cmd
	logs *testenv.SyncBuffer
}

// startDaemon starts ecs-sd with output dir and web address of its own and waits until it
// answers /-/healthy. It is stopped (SIGTERM) when the test ends.
func startDaemon(t testing.TB, env []string, args ...string) *daemon {
	t.Helper()
	return startDaemonIn(t, t.TempDir(), env, args...)
}

// startDaemonIn is startDaemon with the output directory dir.
func startDaemonIn(t testing.TB, dir string, env []string, args ...string) *daemon {
	t.Helper()
	port := testenv.FreePort(t)
	d := &daemon{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: dir, logs: &testenv.SyncBuffer{}}
	args = append([]string{"--web.listen-address", fmt.Sprintf("127.0.0.1:%d", port), "--output.dir", d.Dir}, args...)
	d.cmd = exec.Command(testenv.BuildBinary(t, "cmd/ecs-sd"), args...)
	d.cmd.Env = env
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	require.NoError(t, d.cmd.Start())
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- d.cmd.Wait() }()
		select {
		case err := <-done:
			if t.Failed() || err != nil {
				t.Logf("ecs-sd exited (%v); its log:\n%s", err, d.logs.String())
			}
		case <-time.After(10 * time.Second):
			_ = d.cmd.Process.Kill()
			t.Errorf("ecs-sd did not stop within 10 s of SIGTERM; log:\n%s", d.logs.String())
		}
	})
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		code, _, err := d.get("/-/healthy")
		return err == nil && code == http.StatusOK, fmt.Sprintf("ecs-sd not healthy: %v", err)
	})
	return d
}

// waitReady waits until /-/ready answers 200.
func (d *daemon) waitReady(t testing.TB) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() (bool, string) {
		code, _, err := d.get("/-/ready")
		return err == nil && code == http.StatusOK, fmt.Sprintf("/-/ready: %d %v", code, err)
	})
}

func (d *daemon) get(path string) (int, string, error) {
	resp, err := http.Get(d.URL + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// file returns the daemon's file_sd file ("" when missing).
func (d *daemon) file(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(d.Dir, "ecs-services.json"))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	require.NoError(t, err)
	return string(data)
}

// metric returns the value of one sample of /metrics, matched by its full text before the value
// (e.g. `ecs_sd_targets_skipped_total{reason="bad_port",source="cloudmap"}`); -1 when absent.
func (d *daemon) metric(t testing.TB, series string) float64 {
	t.Helper()
	_, body, err := d.get("/metrics")
	require.NoError(t, err)
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			_, err := fmt.Sscan(rest, &v)
			require.NoError(t, err)
			return v
		}
	}
	return -1
}

// addresses parses a file_sd document and returns its target addresses, sorted.
func addresses(t testing.TB, doc string) []string {
	t.Helper()
	groups, err := targets.Unmarshal([]byte(doc))
	require.NoError(t, err)
	targets.Sort(groups)
	out := []string{}
	for _, g := range groups {
		out = append(out, g.Targets...)
	}
	return out
}

// waitTargets waits until the daemon's file holds exactly the addresses want (sorted).
func waitTargets(t *testing.T, d *daemon, want ...string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		got := addresses(t, d.file(t))
		return strings.Join(got, " ") == strings.Join(want, " "), fmt.Sprintf("targets %v, want %v", got, want)
	})
}
