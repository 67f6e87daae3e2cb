package testenv

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startAttempts is how often a server is started on a fresh port when it exits before it is ready
// (typically because another process took the port FreePort found).
const startAttempts = 3

// logTailLines is how much of a server's log is printed when a test using it fails.
const logTailLines = 40

// process is a child process running in its own process group, with stdout and stderr in a file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// startProcess starts path with args in a new process group, appending its output to logPath.
// env nil means the current environment.
func startProcess(path string, args, env []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	p := &process{name: path, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM to the process group, then SIGKILL when it has not exited after grace.
func (p *process) stop(grace time.Duration) {
	pgid := p.cmd.Process.Pid // Setpgid makes the group id the leader's pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	// Kill the group even when the leader is gone: a pyenv shim or wrapper may leave children.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logTail returns the last n lines of the process's output.
func (p *process) logTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errExitedEarly tells that a server died before it became ready.
var errExitedEarly = errors.New("exited before it was ready")

// waitReady polls url until ready accepts the response and the process is the one listening on
// port (not another server that took the port first), the process exits, or timeout passes.
func (p *process) waitReady(port int, url string, timeout time.Duration, ready func(*http.Response) bool) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s %w (%v); log:\n%s", p.name, errExitedEarly, p.waitErr, p.logTail(logTailLines))
		}
		resp, err := client.Get(url)
		if err == nil {
			ok := ready(resp)
			resp.Body.Close()
			if ok && listensOn(p.cmd.Process.Pid, port) {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s within %v; log:\n%s", p.name, url, timeout, p.logTail(logTailLines))
}

// listensOn reports whether process pid holds the socket listening on 127.0.0.1:port, using
// /proc/net/tcp and /proc/PID/fd (Linux).
func listensOn(pid, port int) bool {
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	local := fmt.Sprintf("0100007F:%04X", port) // 127.0.0.1 in host (little-endian) byte order
	socket := ""
	for _, line := range strings.Split(string(table), "\n") {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fields := strings.Fields(line)
		if len(fields) > 9 && fields[1] == local && fields[3] == "0A" { // 0A: LISTEN
			socket = "socket:[" + fields[9] + "]"
			break
		}
	}
	if socket == "" {
		return false
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if link, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && link == socket {
			return true
		}
	}
	return false
}

// serverSpec describes how to start a loopback server and tell when it is ready.
type serverSpec struct {
	binary    string                    // path of the executable
	args      func(port int) []string   // command-line arguments for a port
	env       []string                  // nil: the current environment
	logPath   string                    // where stdout and stderr go
	readyPath string                    // polled with GET until ready accepts the response
	ready     func(*http.Response) bool // accepts a readiness response
	timeout   time.Duration             // how long one start may take to become ready
	grace     time.Duration             // how long stop waits after SIGTERM
}

// startServer starts spec on a free port, retrying on a fresh port when the server exits early.
func startServer(spec serverSpec) (*process, int, error) {
	var lastErr error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			return nil, 0, err
		}
		p, err := startProcess(spec.binary, spec.args(port), spec.env, spec.logPath)
		if err != nil {
			return nil, 0, err
		}
		url := fmt.Sprintf("http://127.0.0.1:%d%s", port, spec.readyPath)
		lastErr = p.waitReady(port, url, spec.timeout, spec.ready)
		if lastErr == nil {
			return p, port, nil
		}
		p.stop(spec.grace)
		if !errors.Is(lastErr, errExitedEarly) {
			break
		}
	}
	return nil, 0, lastErr
}

// lookPath finds a required tool on PATH, with a hint for installing it in the error.
func lookPath(name, hint string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH (%s): integration tests need it: %w", name, hint, err)
	}
	return path, nil
}

// stopAtCleanup stops p when tb ends, printing the tail of its log first if tb failed.
func (p *process) stopAtCleanup(tb testing.TB, grace time.Duration) {
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("last lines of %s output (%s):\n%s", p.name, p.logPath, p.logTail(logTailLines))
		}
		p.stop(grace)
	})
}
