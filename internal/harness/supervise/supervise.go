// Package supervise runs the child processes of ecs-sd's test harness (testenv) and of
// its local demo (demo): each in its own process group with its output appended to a log
// file, ready once the very process started answers HTTP on its address (not another server that
// took the port first), and stopped by process group: SIGTERM, then SIGKILL after a grace period,
// so that wrappers (a pyenv shim, a shell) leave no children behind.
//
// Addresses are IPv4 loopback addresses such as 127.0.0.1 or 127.0.0.11; readiness checks read
// /proc, so the package works on Linux only.
package supervise

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startAttempts is how often StartServer starts a server on a fresh free port when it exits
// before it is ready (typically because another process took the port FreePort found).
const startAttempts = 3

// LogTailLines is how much of a process's log error messages quote.
const LogTailLines = 40

// DefaultHost is the address servers bind when their spec names none.
const DefaultHost = "127.0.0.1"

// ErrExitedEarly tells that a server died before it became ready.
var ErrExitedEarly = errors.New("exited before it was ready")

// Command describes a process to start.
type Command struct {
	Name    string   // what messages call the process; default: Path
	Path    string   // the executable
	Args    []string // command-line arguments, without the program name
	Env     []string // the environment; nil means the current one
	LogPath string   // stdout and stderr are appended to this file, created when missing
	// Stdout, when set, receives the standard output instead of the log file.
	Stdout io.Writer
}

// Process is a child process running in its own process group.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// Start starts c in a new process group.
func Start(c Command) (*Process, error) {
	name := c.Name
	if name == "" {
		name = c.Path
	}
	logFile, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log file of %s: %w", name, err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = c.Env
	cmd.Stdout = logFile
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	}
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, logPath: c.LogPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Run runs c to completion and returns nil when it exits with status 0. When ctx ends first, the
// process group is stopped (SIGTERM, SIGKILL after grace). The error quotes the end of the log.
func Run(ctx context.Context, c Command, grace time.Duration) error {
	p, err := Start(c)
	if err != nil {
		return err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		p.Stop(grace)
		return fmt.Errorf("%s stopped: %w", p.name, context.Cause(ctx))
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("%s failed: %w; log %s:\n%s", p.name, err, p.logPath, p.LogTail(LogTailLines))
	}
	return nil
}

// Name returns what messages call the process.
func (p *Process) Name() string { return p.name }

// PID returns the process id, which is also its process group id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// LogPath returns the file holding the process's output.
func (p *Process) LogPath() string { return p.logPath }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns how the process ended (nil for exit status 0); call it only once Done is closed.
func (p *Process) Err() error { return p.waitErr }

// Stop sends SIGTERM to the process group, then SIGKILL when the process has not exited after
// grace, and returns once it has exited. Stopping a process that has exited is harmless.
func (p *Process) Stop(grace time.Duration) {
	pgid := p.PID() // Setpgid makes the group id the leader's pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
	}
	// Kill the group even when the leader is gone: a shim or wrapper may leave children.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// LogTail returns the last n lines of the process's output.
func (p *Process) LogTail(n int) string {
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

// WaitReady polls url until ready accepts the response and the process is the one listening on
// addr (host:port), the process exits (an error wrapping ErrExitedEarly), ctx ends, or timeout
// passes. The errors quote the end of the process's log.
func (p *Process) WaitReady(ctx context.Context, addr, url string, timeout time.Duration, ready func(*http.Response) bool) error {
	client := &http.Client{Timeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		if p.Exited() {
			return fmt.Errorf("%s %w (%w); log %s:\n%s", p.name, ErrExitedEarly, p.waitErr, p.logPath, p.LogTail(LogTailLines))
		}
		if p.answers(ctx, client, addr, url, ready) {
			return nil
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s within %v (%w); log %s:\n%s",
				p.name, url, timeout, context.Cause(ctx), p.logPath, p.LogTail(LogTailLines))
		}
	}
}

// answers reports whether url's answer satisfies ready and the process listens on addr.
func (p *Process) answers(ctx context.Context, client *http.Client, addr, url string, ready func(*http.Response) bool) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	ok := ready(resp)
	resp.Body.Close()
	return ok && ListensOn(p.PID(), addr)
}

// ListensOn reports whether process pid holds the TCP socket listening on addr, an IPv4
// host:port, using /proc/net/tcp and /proc/PID/fd (Linux).
func ListensOn(pid int, addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return false
	}
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	// /proc/net/tcp prints the IPv4 address as the hex of its 32-bit value in host byte order.
	ip := ap.Addr().As4()
	local := fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(ip[:]), ap.Port())
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

// GroupMembers returns the processes of process group pgid that are alive (not zombies), from
// /proc (Linux): after Stop, none should be left.
func GroupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so cut at the last ')'.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		if pgrp, err := strconv.Atoi(fields[2]); err == nil && pgrp == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ServerSpec describes how to start an HTTP server on a loopback address and tell when it is
// ready.
type ServerSpec struct {
	Name      string                    // what messages call it; default: Binary
	Binary    string                    // path of the executable
	Args      func(port int) []string   // command-line arguments for the port it is to listen on
	Env       []string                  // nil: the current environment
	LogPath   string                    // where stdout and stderr go
	Host      string                    // the address it listens on; default DefaultHost
	Port      int                       // 0: a free port, a fresh one if the server exits early
	ReadyPath string                    // polled with GET until Ready accepts the response
	Ready     func(*http.Response) bool // accepts a readiness response; nil: any 2xx
	Timeout   time.Duration             // how long one start may take to become ready
	Grace     time.Duration             // how long a failed start waits after SIGTERM
}

// StartServer starts spec and waits until it is ready; it returns the process and its port.
// With a free port (Port 0) it retries on a fresh port when the server exits before it is ready.
// With a fixed port, an address already in use is an error that says so, before anything starts.
func StartServer(ctx context.Context, spec ServerSpec) (*Process, int, error) {
	host := spec.Host
	if host == "" {
		host = DefaultHost
	}
	name := spec.Name
	if name == "" {
		name = spec.Binary
	}
	ready := spec.Ready
	if ready == nil {
		ready = func(resp *http.Response) bool { return resp.StatusCode/100 == 2 }
	}
	attempts := startAttempts
	if spec.Port != 0 {
		attempts = 1
		if err := CheckFree(host, spec.Port); err != nil {
			return nil, 0, fmt.Errorf("start %s: %w", name, err)
		}
	}
	var lastErr error
	for range attempts {
		port := spec.Port
		if port == 0 {
			var err error
			if port, err = FreePort(host); err != nil {
				return nil, 0, err
			}
		}
		p, err := Start(Command{Name: name, Path: spec.Binary, Args: spec.Args(port), Env: spec.Env, LogPath: spec.LogPath})
		if err != nil {
			return nil, 0, err
		}
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		lastErr = p.WaitReady(ctx, addr, "http://"+addr+spec.ReadyPath, spec.Timeout, ready)
		if lastErr == nil {
			return p, port, nil
		}
		p.Stop(spec.Grace)
		if !errors.Is(lastErr, ErrExitedEarly) {
			break
		}
	}
	return nil, 0, lastErr
}

// FreePort returns a TCP port on host that was free a moment ago. Another process may take it
// before the caller binds it.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CheckFree returns an error naming host:port when it cannot be listened on, typically because
// another process listens there.
func CheckFree(host string, port int) error {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("address %s is already in use by another process: %w", addr, err)
		}
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return l.Close()
}

// LookPath finds a required program on PATH; the error names it and carries hint (how to
// install it).
func LookPath(name, hint string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH (%s): %w", name, hint, err)
	}
	return path, nil
}
