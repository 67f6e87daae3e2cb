package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// runMainEnv, when set in the environment, makes the test binary run main instead of the tests,
// so that TestSIGTERM can send a real signal to a real process.
const runMainEnv = "WEBAPP_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// logLine is the part of a JSON log line the tests read.
type logLine struct {
	Msg     string `json:"msg"`
	Address string `json:"address"`
	Reason  string `json:"reason"`
}

// findLog returns the first JSON log line of logs whose message is msg.
func findLog(logs, msg string) (logLine, bool) {
	for line := range strings.Lines(logs) {
		var l logLine
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == msg {
			return l, true
		}
	}
	return logLine{}, false
}

// waitListening waits for the "Listening" log line and returns the base URL it names.
func waitListening(t *testing.T, logs func() string) string {
	t.Helper()
	var addr string
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		l, ok := findLog(logs(), "Listening")
		require.True(c, ok, "no Listening log yet")
		addr = l.Address
	}, 10*time.Second, 10*time.Millisecond, "logs: %s", logs())
	return "http://" + addr
}

func TestRunServesAndShutsDownGracefullyOnCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr testenv.SyncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- runContext(ctx, []string{
			"--web.listen-address=127.0.0.1:0", "--load.rps=100", "--log.format=json",
		}, &stdout, &stderr)
	}()
	base := waitListening(t, stderr.String)

	code, _ := do(t, http.MethodGet, base+"/-/healthy")
	require.Equal(t, http.StatusOK, code)

	// The built-in load generator targets the application's own listener.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		n := counts(c, scrape(c, base))
		require.Positive(c, n[seriesKey{"/", "GET", "200"}])
	}, 10*time.Second, 50*time.Millisecond)

	// A request in flight when the shutdown starts is still answered. /api/slow takes at least
	// 200 ms, so it is still being served when the context is cancelled 100 ms after it was sent.
	slow := make(chan int, 1)
	go func() {
		resp, err := http.Get(base + "/api/slow")
		if err != nil {
			t.Errorf("slow request: %v", err)
			slow <- 0
			return
		}
		_ = resp.Body.Close()
		slow <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond)

	start := time.Now()
	cancel()
	select {
	case code := <-exit:
		require.Equal(t, 0, code, "logs: %s", stderr.String())
	case <-time.After(shutdownTimeout):
		t.Fatalf("run did not return within %v of the cancellation", shutdownTimeout)
	}
	// The load generator's requests are cancelled, so only /api/slow (at most 800 ms) is waited on.
	require.Less(t, time.Since(start), 3*time.Second)
	require.Equal(t, http.StatusOK, <-slow, "request in flight during shutdown")

	_, ok := findLog(stderr.String(), "Load generator stopped")
	require.True(t, ok, "logs: %s", stderr.String())
	_, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
	require.Error(t, err, "the listener must be closed after run returns")
}

func TestRunFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		exit   int
		stdout string
		stderr string
	}{
		{"version", []string{"--version"}, 0, "webapp, version", ""},
		{"help", []string{"--help"}, 0, "--web.listen-address", ""},
		{"unknown flag", []string{"--no-such-flag"}, 2, "", "unknown long flag"},
		{"negative rps", []string{"--load.rps=-1"}, 2, "", "--load.rps"},
		{"too high rps", []string{"--load.rps=5000"}, 2, "", "--load.rps"},
		{"bad target", []string{"--load.rps=1", "--load.target=ftp://x"}, 2, "", "--load.target"},
		{"bad log level", []string{"--log.level=loud"}, 2, "", "loud"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr testenv.SyncBuffer
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			require.Equal(t, tc.exit, runContext(ctx, tc.args, &stdout, &stderr), "stderr: %s", stderr.String())
			require.Contains(t, stdout.String(), tc.stdout)
			require.Contains(t, stderr.String(), tc.stderr)
		})
	}
}

func TestRunFailsWhenAddressInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })

	var stdout, stderr testenv.SyncBuffer
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.Equal(t, 1, runContext(ctx, []string{"--web.listen-address=" + ln.Addr().String()}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "listen")
}

func TestSIGTERM(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "--web.listen-address=127.0.0.1:0", "--log.format=json", "--load.rps=20")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	stderrPipe, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	var logs testenv.SyncBuffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(&logs, bufio.NewReader(stderrPipe))
	}()
	base := waitListening(t, logs.String)
	code, _ := do(t, http.MethodGet, base+"/-/healthy")
	require.Equal(t, http.StatusOK, code)

	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	waited := make(chan error, 1)
	go func() {
		<-copied // Wait must not close the pipe before everything is read
		waited <- cmd.Wait()
	}()
	select {
	case err := <-waited:
		require.NoError(t, err, "exit status; logs: %s", logs.String())
	case <-time.After(shutdownTimeout):
		t.Fatalf("process did not exit within %v of SIGTERM; logs: %s", shutdownTimeout, logs.String())
	}
	require.Less(t, time.Since(start), 3*time.Second)

	l, ok := findLog(logs.String(), "Shutting down")
	require.True(t, ok, "logs: %s", logs.String())
	require.Contains(t, l.Reason, "terminated")
	_, ok = findLog(logs.String(), "Stopped")
	require.True(t, ok, "logs: %s", logs.String())
}
