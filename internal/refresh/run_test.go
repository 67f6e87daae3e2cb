package refresh

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// gate makes calls wait: every call after the first free ones waits until the test releases it
// (or its context ends). It counts the calls and the most that ran at once.
type gate struct {
	free    int
	started chan int      // the number of each call that waits
	release chan struct{} // one receive lets one waiting call go on

	mu                           sync.Mutex
	calls, inFlight, maxInFlight int
}

func newGate(free int) *gate {
	return &gate{free: free, started: make(chan int, 10), release: make(chan struct{})}
}

// enter is the start of a call; it returns the call's number (from 1), or ctx's error.
func (g *gate) enter(ctx context.Context) (int, error) {
	g.mu.Lock()
	g.calls++
	n := g.calls
	g.inFlight++
	g.maxInFlight = max(g.maxInFlight, g.inFlight)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()
	if n <= g.free {
		return n, nil
	}
	g.started <- n
	select {
	case <-g.release:
		return n, nil
	case <-ctx.Done():
		return n, ctx.Err()
	}
}

// waitStarted returns the number of the next call that waits, and fails t when none does within
// 5 s.
func (g *gate) waitStarted(t *testing.T) int {
	t.Helper()
	select {
	case n := <-g.started:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no call waits")
		return 0
	}
}

func (g *gate) counts() (calls, maxInFlight int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls, g.maxInFlight
}

// gatedSource returns group(addrs[n-1]) from its nth discovery (the last address from then on),
// its discoveries held by a gate.
type gatedSource struct {
	name  string
	addrs []string
	*gate
}

func (s *gatedSource) Name() string { return s.name }

func (s *gatedSource) Discover(ctx context.Context) ([]*targets.Group, error) {
	n, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	return []*targets.Group{group(s.addrs[min(n, len(s.addrs))-1])}, nil
}

// settableSource returns the groups the test last set.
type settableSource struct {
	name string
	mu   sync.Mutex
	addr string
	n    int
}

func (s *settableSource) Name() string { return s.name }

func (s *settableSource) Discover(context.Context) ([]*targets.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return []*targets.Group{group(s.addr)}, nil
}

func (s *settableSource) set(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addr = addr
}

func (s *settableSource) discoveries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

type gatedJob struct{ *gate }

func (gatedJob) Name() string { return "gated" }

func (j gatedJob) Run(ctx context.Context) error {
	_, err := j.enter(ctx)
	return err
}

// startRun runs l until the test ends.
func startRun(t *testing.T, l *Loop) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// eventuallyAddrs waits until the sink's last list is want.
func eventuallyAddrs(t *testing.T, sink *recordingSink, want []string, msg string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if assert.NotEmpty(c, sink.updates) {
			assert.Equal(c, want, addrs(sink.updates[len(sink.updates)-1].Groups))
		}
	}, 5*time.Second, 5*time.Millisecond, msg)
}

// TestRunPublishesEachSourceWhenItEnds: while one source's discovery hangs, the other's changes
// reach the sinks at once, beside the hung source's last targets; the hung source and a hung job
// are not started again while they run, and start again as soon as they end, since intervals
// began meanwhile.
func TestRunPublishesEachSourceWhenItEnds(t *testing.T) {
	t.Parallel()
	slow := &gatedSource{name: "slow", addrs: []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}, gate: newGate(1)}
	fast := &settableSource{name: "fast", addr: "10.0.1.1:80"}
	job := gatedJob{newGate(0)}
	sink := &recordingSink{}
	l := New(Options{Interval: 10 * time.Millisecond, Sources: []Source{slow, fast}, Sinks: []Sink{sink}, Jobs: []Job{job}})
	startRun(t, l)

	eventuallyAddrs(t, sink, []string{"10.0.0.1:80", "10.0.1.1:80"}, "both sources' first discoveries")
	require.Equal(t, 2, slow.waitStarted(t), "the second discovery hangs")
	require.Equal(t, 1, job.waitStarted(t), "the job hangs")
	fast.set("10.0.1.2:80")
	eventuallyAddrs(t, sink, []string{"10.0.0.1:80", "10.0.1.2:80"}, "the fast source's change arrives while the slow source hangs, which keeps its targets")

	from := fast.discoveries()
	require.Eventually(t, func() bool { return fast.discoveries() >= from+5 }, 5*time.Second, 5*time.Millisecond)
	calls, inFlight := slow.counts()
	require.Equal(t, 2, calls, "no new discovery of a source while its last one runs")
	require.Equal(t, 1, inFlight)
	calls, inFlight = job.counts()
	require.Equal(t, 1, calls, "nor a new run of a job")
	require.Equal(t, 1, inFlight)

	slow.release <- struct{}{}
	require.Equal(t, 3, slow.waitStarted(t), "the next discovery starts as soon as the hung one ended")
	eventuallyAddrs(t, sink, []string{"10.0.0.2:80", "10.0.1.2:80"}, "the hung discovery's result, once it ended")
	job.release <- struct{}{}
	require.Equal(t, 2, job.waitStarted(t))
	_, inFlight = slow.counts()
	require.Equal(t, 1, inFlight)
	require.True(t, l.Ready())
}

// progressiveSource is a source of two parts, a and b, whose discoveries after the first hang
// until released; meanwhile Progress tells what the test set.
type progressiveSource struct {
	*gate
	final []*targets.Group

	mu       sync.Mutex
	running  bool
	progress []*targets.Group
	asked    int
}

func (*progressiveSource) Name() string { return "parts" }

func (s *progressiveSource) Discover(ctx context.Context) ([]*targets.Group, error) {
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	n, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	if n == 1 {
		return []*targets.Group{group("10.0.0.1:80"), group("10.0.1.1:80")}, nil
	}
	return s.final, nil
}

func (s *progressiveSource) Progress() ([]*targets.Group, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	return s.progress, s.running && s.progress != nil
}

func (s *progressiveSource) set(groups []*targets.Group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.progress = groups
}

func (s *progressiveSource) timesAsked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked
}

// TestRunPublishesProgress: while a Progressive source's discovery runs, the parts it finished
// reach the sinks; the list is published again only when what the source holds changed.
func TestRunPublishesProgress(t *testing.T) {
	t.Parallel()
	src := &progressiveSource{gate: newGate(1), final: []*targets.Group{group("10.0.0.2:80"), group("10.0.1.2:80")}}
	other := &settableSource{name: "other", addr: "10.0.2.1:80"}
	sink := &recordingSink{}
	l := New(Options{Interval: 50 * time.Millisecond, ProgressInterval: 5 * time.Millisecond, Sources: []Source{src, other}, Sinks: []Sink{sink}})
	startRun(t, l)

	eventuallyAddrs(t, sink, []string{"10.0.0.1:80", "10.0.1.1:80", "10.0.2.1:80"}, "first discoveries")
	src.waitStarted(t)
	src.set([]*targets.Group{group("10.0.0.2:80"), group("10.0.1.1:80")}) // part a done, b pending
	eventuallyAddrs(t, sink, []string{"10.0.0.2:80", "10.0.1.1:80", "10.0.2.1:80"}, "the finished part, while the other runs")

	sink.mu.Lock()
	updates := len(sink.updates)
	sink.mu.Unlock()
	asked := src.timesAsked()
	require.Eventually(t, func() bool { return src.timesAsked() >= asked+5 }, 5*time.Second, time.Millisecond)
	sink.mu.Lock()
	require.Len(t, sink.updates, updates, "nothing new held, nothing published")
	sink.mu.Unlock()

	src.release <- struct{}{}
	eventuallyAddrs(t, sink, []string{"10.0.0.2:80", "10.0.1.2:80", "10.0.2.1:80"}, "the discovery's result")
}

// TestWakeDiscoversTheSourcesNotTheJobs: Wake begins a discovery of every source at once, long
// before the next interval, and runs no job; wakes asked for at once are merged.
func TestWakeDiscoversTheSourcesNotTheJobs(t *testing.T) {
	t.Parallel()
	src := &settableSource{name: "src", addr: "10.0.0.1:80"}
	job := gatedJob{newGate(100)}
	sink := &recordingSink{}
	l := New(Options{Interval: time.Hour, Sources: []Source{src}, Jobs: []Job{job}, Sinks: []Sink{sink}})
	startRun(t, l)
	eventuallyAddrs(t, sink, []string{"10.0.0.1:80"}, "the first discovery, at start")
	require.Eventually(t, func() bool { calls, _ := job.counts(); return calls == 1 }, 5*time.Second, time.Millisecond, "the job's run at start")

	src.set("10.0.0.2:80")
	l.Wake()
	eventuallyAddrs(t, sink, []string{"10.0.0.2:80"}, "a wake discovers at once, not at the next interval")
	require.Equal(t, 2, src.discoveries())
	calls, _ := job.counts()
	require.Equal(t, 1, calls, "a wake runs no job")

	for range 5 {
		l.Wake()
	}
	require.Eventually(t, func() bool { return src.discoveries() >= 3 }, 5*time.Second, time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	require.LessOrEqual(t, src.discoveries(), 4, "wakes asked for together are merged")
}
