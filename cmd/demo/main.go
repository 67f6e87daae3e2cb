// Command demo runs the whole ecs-sd pipeline on this machine (see internal/harness/demo): moto with the
// deploy kit's Cloud Map and SSM resources, web app tasks and a node exporter registered as ECS
// would, ecs-sd, Prometheus with the deploy kit's configuration and a second Prometheus standing in
// for Amazon Managed Service for Prometheus. While it runs it shows, refreshed every few seconds,
// Prometheus's active targets and the seed's queries read back from the sink; a third web app task
// is registered mid-run, and its registration announced by the event CloudTrail would send, to show
// a target appearing in event mode: the events list says how long after the registration it was in
// ecs-sd's targets, in Prometheus's and in the sink.
//
// Run it from the repository root after make build (make demo does both). State and logs go to
// .demo/. Ctrl-C (SIGINT) or SIGTERM stops everything it started. With DEMO_DURATION=<seconds> it
// stops by itself after that long and exits 0 only if every seed query returned data, else 1,
// naming the queries without data. With DEMO_SHARDS=N (N > 1), N Prometheus agents replace the one
// Prometheus, agent I scraping shard I of ecs-sd's http_sd list on the deploy kit's agent template;
// the screen shows how many targets each scrapes and whether the sink has every target's series
// exactly once, which the exit code then requires too.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ecs-sd/ecs-sd/internal/harness/demo"
)

const (
	// stateDir is where the demo keeps its state and logs, relative to the repository root.
	stateDir = ".demo"
	// addTaskAfter is when the third web app task is registered (sooner in short runs).
	addTaskAfter = 20 * time.Second
	// refresh is how often the demo reads Prometheus and the sink, and redraws the screen on a
	// terminal; redrawPlain is how often it prints the screen when stdout is not a terminal.
	refresh     = 2 * time.Second
	redrawPlain = 10 * time.Second
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitStopped = 130 // ended by SIGINT or SIGTERM before DEMO_DURATION
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	duration, err := demoDuration(os.Getenv("DEMO_DURATION"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return exitUsage
	}
	shards, err := positive("DEMO_SHARDS", os.Getenv("DEMO_SHARDS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return exitUsage
	}
	root, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo: find the working directory:", err)
		return exitUsage
	}
	if _, err := os.Stat(filepath.Join(root, "deploy", "scripts")); err != nil {
		fmt.Fprintln(os.Stderr, "demo: run it from the repository root (make demo):", err)
		return exitUsage
	}
	dir := filepath.Join(root, stateDir)
	logOut := &switchWriter{w: os.Stderr}
	logger := slog.New(slog.NewTextHandler(logOut, nil))
	fmt.Fprintf(os.Stderr, "demo: starting the pipeline; state and logs in %s\n", dir)

	p, err := demo.Start(ctx, demo.Options{
		Dir:          dir,
		RepoRoot:     root,
		EcsSDBinary:  filepath.Join(root, "bin", "ecs-sd"),
		WebappBinary: filepath.Join(root, "bin", "webapp"),
		Shards:       shards,
		WebTasks:     webTasks(shards),
		Logger:       logger,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo: start the pipeline:", err)
		if ctx.Err() != nil {
			return exitStopped
		}
		return exitFailed
	}
	defer p.Stop()
	// From now on the screen owns the terminal: the pipeline's messages go to a log file.
	if f, err := os.Create(filepath.Join(p.LogDir, "demo.log")); err == nil {
		defer f.Close()
		logOut.set(f)
	} else {
		logOut.set(io.Discard)
	}

	code := watch(ctx, p, duration, isTerminal(os.Stdout))
	p.Stop()
	fmt.Printf("demo: stopped everything it started; logs are in %s\n", p.LogDir)
	return code
}

// demoDuration parses DEMO_DURATION: empty for no limit, else whole seconds > 0.
func demoDuration(v string) (time.Duration, error) {
	n, err := positive("DEMO_DURATION", v)
	return time.Duration(n) * time.Second, err
}

// webTasks returns how many web app tasks start: 2, or 6 when agents share the targets, so that
// every one of three agents has some (127.0.0.11-16:3000 fall in every shard of 3).
func webTasks(shards int) int {
	if shards > 1 {
		return 6
	}
	return 2
}

// positive parses the value v of environment variable name: 0 when empty, else a whole number > 0.
func positive(name, v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q is not a whole number > 0", name, v)
	}
	return n, nil
}

// watch reads Prometheus and the sink every 2 s and redraws the screen (every 10 s when stdout is
// not a terminal) until ctx ends, duration passes (when not 0) or a process dies, and returns the
// exit code.
func watch(ctx context.Context, p *demo.Pipeline, duration time.Duration, tty bool) int {
	start := time.Now()
	sc := &screen{p: p, start: start, duration: duration, tty: tty}
	scrapers := "Prometheus on the configuration ecs-sd wrote from SSM"
	if p.Shards() > 1 {
		scrapers = fmt.Sprintf("%d Prometheus agents, each on its http_sd shard", p.Shards())
	}
	sc.event("pipeline running: %d web app tasks, a node exporter, ecs-sd, %s, the sink", len(p.WebTasks()), scrapers)
	addAt := addTaskAfter
	if duration > 0 && duration/3 < addAt {
		addAt = duration / 3
	}
	var deadline <-chan time.Time
	if duration > 0 {
		timer := time.NewTimer(duration)
		defer timer.Stop()
		deadline = timer.C
	}
	ticker := time.NewTicker(refresh)
	defer ticker.Stop()
	addTimer := time.NewTimer(addAt)
	defer addTimer.Stop()
	sc.update(ctx)
	sc.draw(os.Stdout)
	lastDraw := time.Now()
	for {
		select {
		case <-ctx.Done():
			fmt.Println("demo: interrupted, stopping everything")
			return exitStopped
		case <-deadline:
			sc.update(ctx)
			sc.draw(os.Stdout)
			return sc.verdict(os.Stdout)
		case <-addTimer.C:
			sc.addTask(ctx)
			continue
		case x := <-sc.addedSeen:
			sc.sighted(x)
			continue
		case <-ticker.C:
		}
		if err := p.Err(); err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			return exitFailed
		}
		sc.update(ctx)
		if tty || time.Since(lastDraw) >= redrawPlain-refresh/2 {
			sc.draw(os.Stdout)
			lastDraw = time.Now()
		}
	}
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// switchWriter is an io.Writer whose destination can be changed while loggers use it.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w = w
}
