package supervise

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestListensOn(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "127.0.0.11"} {
		l, err := net.Listen("tcp", host+":0")
		require.NoError(t, err)
		addr := l.Addr().String()
		assert.True(t, ListensOn(os.Getpid(), addr), addr)
		assert.False(t, ListensOn(os.Getppid(), addr), "another process")
		port, err := FreePort(host)
		require.NoError(t, err)
		assert.False(t, ListensOn(os.Getpid(), net.JoinHostPort(host, strconv.Itoa(port))), "another port")
		assert.False(t, ListensOn(os.Getpid(), "not an address"))
		require.NoError(t, l.Close())
	}
}

func TestCheckFree(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	assert.ErrorContains(t, CheckFree("127.0.0.1", port), "127.0.0.1:"+strconv.Itoa(port)+" is already in use")
	free, err := FreePort("127.0.0.1")
	require.NoError(t, err)
	assert.NoError(t, CheckFree("127.0.0.1", free))
}

// shSpec is a server spec running a shell script (no HTTP server).
func shSpec(t *testing.T, script string) ServerSpec {
	return ServerSpec{
		Name:    "sh",
		Binary:  "/bin/sh",
		Args:    func(int) []string { return []string{"-c", script} },
		LogPath: filepath.Join(t.TempDir(), "sh.log"),
		Timeout: time.Second,
		Grace:   time.Second,
	}
}

func TestStartServerReportsEarlyExitWithLog(t *testing.T) {
	_, _, err := StartServer(t.Context(), shSpec(t, "echo boom; exit 3"))
	require.ErrorIs(t, err, ErrExitedEarly)
	assert.ErrorContains(t, err, "boom")
}

func TestStartServerFixedPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	spec := shSpec(t, "sleep 10")
	spec.Port = l.Addr().(*net.TCPAddr).Port
	_, _, err = StartServer(t.Context(), spec)
	assert.ErrorContains(t, err, "already in use")
}

func TestStartServerNotReadyStopsTheProcess(t *testing.T) {
	spec := shSpec(t, "sleep 30")
	spec.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, _, err := StartServer(t.Context(), spec)
	assert.ErrorContains(t, err, "not ready")
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestStopKillsTheGroup checks that Stop ends a child that ignores SIGTERM and its own children.
func TestStopKillsTheGroup(t *testing.T) {
	p, err := Start(Command{
		Path:    "/bin/sh",
		Args:    []string{"-c", "trap '' TERM; sleep 60 & sleep 60"},
		LogPath: filepath.Join(t.TempDir(), "log"),
	})
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	p.Stop(200 * time.Millisecond)
	assert.True(t, p.Exited())
	assert.Eventually(t, func() bool { return len(GroupMembers(p.PID())) == 0 }, 2*time.Second, 10*time.Millisecond,
		"process group still alive: %v", GroupMembers(p.PID()))
}

func TestGroupMembers(t *testing.T) {
	p, err := Start(Command{Path: "/bin/sh", Args: []string{"-c", "sleep 60 & sleep 60"}, LogPath: filepath.Join(t.TempDir(), "log")})
	require.NoError(t, err)
	defer p.Stop(time.Second)
	assert.Eventually(t, func() bool { return len(GroupMembers(p.PID())) == 3 }, 2*time.Second, 10*time.Millisecond,
		"want sh and its two sleeps, got %v", GroupMembers(p.PID()))
	assert.Empty(t, GroupMembers(999999999))
}

func TestWaitReadyChecksTheListener(t *testing.T) {
	// A server in this test process answers, but the child does not listen there: never ready.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	p, err := Start(Command{Path: "/bin/sh", Args: []string{"-c", "sleep 30"}, LogPath: filepath.Join(t.TempDir(), "log")})
	require.NoError(t, err)
	defer p.Stop(time.Second)
	addr := l.Addr().String()
	err = p.WaitReady(context.Background(), addr, "http://"+addr+"/", 300*time.Millisecond,
		func(*http.Response) bool { return true })
	assert.ErrorContains(t, err, "not ready")
}

func TestRun(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	var out strings.Builder
	require.NoError(t, Run(t.Context(), Command{Path: "/bin/sh", Args: []string{"-c", "echo out; echo err >&2"}, LogPath: log, Stdout: &out}, time.Second))
	assert.Equal(t, "out\n", out.String())
	data, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Equal(t, "err\n", string(data))

	err = Run(t.Context(), Command{Name: "failing", Path: "/bin/sh", Args: []string{"-c", "echo why >&2; exit 2"}, LogPath: log}, time.Second)
	assert.ErrorContains(t, err, "failing failed: exit status 2")
	assert.ErrorContains(t, err, "why")

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = Run(ctx, Command{Path: "/bin/sh", Args: []string{"-c", "sleep 30"}, LogPath: log}, time.Second)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
}
