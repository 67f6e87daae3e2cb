package refresh

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type step struct {
	groups []*targets.Group
	err    error
}

type scriptedSource struct {
	name  string
	mu    sync.Mutex
	steps []step
}

func (s *scriptedSource) Name() string { return s.name }

func (s *scriptedSource) Discover(context.Context) ([]*targets.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.steps[0]
	if len(s.steps) > 1 {
		s.steps = s.steps[1:]
	}
	return st.groups, st.err
}

type recordingSink struct {
	mu      sync.Mutex
	updates []targets.Snapshot
}

func (s *recordingSink) Name() string { return "recording" }

func (s *recordingSink) Update(_ context.Context, snap targets.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updates = append(s.updates, snap)
	return nil
}

// last returns the groups of the last snapshot, read back from its compressed list when it
// holds none (the earlier list, primed).
func (s *recordingSink) last() []*targets.Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	groups, err := s.updates[len(s.updates)-1].List()
	if err != nil {
		panic(err) // the loop's own compressed list
	}
	return groups
}

func (s *recordingSink) lastSnapshot() targets.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates[len(s.updates)-1]
}

func group(addr string) *targets.Group {
	return &targets.Group{Targets: []string{addr}, Labels: model.LabelSet{"__metrics_path__": "/metrics"}}
}

var errBoom = errors.New("boom")

func TestRunOnceKeepsPreviousTargetsOnFailure(t *testing.T) {
	t.Parallel()
	a := &scriptedSource{name: "a", steps: []step{
		{err: errBoom}, // fails before any success
		{groups: []*targets.Group{group("10.0.0.1:80")}}, // succeeds
		{err: errBoom}, // fails outright: keep previous
		{groups: []*targets.Group{group("10.0.0.2:80")}, err: errBoom}, // partial: use what it vouches for
	}}
	b := &scriptedSource{name: "b", steps: []step{{groups: []*targets.Group{group("10.0.1.1:80")}}}}
	sink, other := &recordingSink{}, &recordingSink{}
	reg := prometheus.NewRegistry()
	l := New(Options{Interval: time.Hour, Sources: []Source{a, b}, Sinks: []Sink{sink, other}, Metrics: NewMetrics(reg)})
	ctx := context.Background()

	require.ErrorIs(t, l.RunOnce(ctx), errBoom)
	groups := sink.last()
	require.Len(t, groups, 1)
	require.Len(t, sink.updates, 1, "once, when every source has ended")
	require.False(t, l.Ready(), "source a has produced nothing yet")
	consecutive := func() float64 { return testutil.ToFloat64(l.metrics.consecutive.WithLabelValues("a")) }
	require.Equal(t, 1.0, consecutive())

	require.NoError(t, l.RunOnce(ctx))
	groups = sink.last()
	require.Len(t, groups, 2)
	require.True(t, l.Ready())
	require.Zero(t, consecutive(), "a success ends the run of failures")
	snap := sink.lastSnapshot()
	want, err := targets.Marshal(groups)
	require.NoError(t, err)
	got, err := snap.JSON()
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "the list, rendered")
	require.Same(t, &snap.Gzip[0], &other.lastSnapshot().Gzip[0], "rendered once: every sink gets the same bytes")

	require.ErrorIs(t, l.RunOnce(ctx), errBoom)
	groups = sink.last()
	require.Equal(t, []string{"10.0.0.1:80", "10.0.1.1:80"}, addrs(groups))

	require.ErrorIs(t, l.RunOnce(ctx), errBoom)
	groups = sink.last()
	require.Equal(t, []string{"10.0.0.2:80", "10.0.1.1:80"}, addrs(groups))

	require.Equal(t, 3.0, testutil.ToFloat64(l.metrics.failures.WithLabelValues("a")))
	require.Equal(t, 2.0, consecutive(), "the failures since the last success")
	require.Equal(t, 0.0, testutil.ToFloat64(l.metrics.failures.WithLabelValues("b")))
	require.Equal(t, 0.0, testutil.ToFloat64(l.metrics.consecutive.WithLabelValues("b")))
	require.Equal(t, 1.0, testutil.ToFloat64(l.metrics.targets.WithLabelValues("a")))
}

func addrs(groups []*targets.Group) []string {
	var out []string
	for _, g := range groups {
		out = append(out, g.Address())
	}
	return out
}

type countingJob struct {
	mu  sync.Mutex
	n   int
	err error
}

func (c *countingJob) Name() string { return "count" }
func (c *countingJob) Run(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.err
}

func TestRunStartsAtOnceAndStops(t *testing.T) {
	t.Parallel()
	src := &scriptedSource{name: "a", steps: []step{{groups: []*targets.Group{group("10.0.0.1:80")}}}}
	sink := &recordingSink{}
	job := &countingJob{err: errBoom}
	l := New(Options{Interval: 20 * time.Millisecond, Sources: []Source{src}, Sinks: []Sink{sink}, Jobs: []Job{job}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	require.Eventually(t, func() bool {
		job.mu.Lock()
		defer job.mu.Unlock()
		return job.n >= 3
	}, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.True(t, l.Ready(), "a failing job does not hold readiness back")
	require.GreaterOrEqual(t, testutil.ToFloat64(l.metrics.jobFailures.WithLabelValues("count")), 3.0)
}

type hangingSource struct{}

func (hangingSource) Name() string { return "hang" }

func (hangingSource) Discover(ctx context.Context) ([]*targets.Group, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestCycleTimeout(t *testing.T) {
	t.Parallel()
	good := &scriptedSource{name: "good", steps: []step{{groups: []*targets.Group{group("10.0.0.1:80")}}}}
	sink := &recordingSink{}
	l := New(Options{Interval: time.Hour, Timeout: 50 * time.Millisecond, Sources: []Source{good, hangingSource{}}, Sinks: []Sink{sink}})
	err := l.RunOnce(context.Background())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, []string{"10.0.0.1:80"}, addrs(sink.last()), "a hung source does not hold the others back")
	require.False(t, l.Ready())
}

// TestBaselineUntilComplete: the list an earlier run left is served from before the first cycle,
// its targets that the discovery lacks stay in every sink's list until every source has succeeded
// once, and not after. Readiness says whether that point was reached; a source that only ever
// succeeds in part (a denied namespace) keeps the loop unready and the baseline in.
func TestBaselineUntilComplete(t *testing.T) {
	t.Parallel()
	baseline := []*targets.Group{group("10.0.0.1:80"), group("10.0.0.2:80"), group("10.0.1.1:80")}
	baseline[0].Labels["from"] = "earlier run"
	a := &scriptedSource{name: "a", steps: []step{
		{err: errBoom}, // throttled outright
		{groups: []*targets.Group{group("10.0.0.2:80"), group("10.0.0.3:80")}, err: errBoom}, // in part
		{groups: []*targets.Group{group("10.0.0.3:80")}},                                     // complete
		{err: errBoom},
	}}
	b := &scriptedSource{name: "b", steps: []step{{groups: []*targets.Group{group("10.0.1.1:80")}}}}
	file, web := &recordingSink{}, &recordingSink{}
	var reads atomic.Int32
	l := New(Options{Interval: time.Hour, Sources: []Source{a, b}, Sinks: []Sink{file, web}, Baseline: func() ([]*targets.Group, error) {
		reads.Add(1)
		return baseline, nil
	}})
	ctx := context.Background()

	require.NoError(t, l.Prime(ctx))
	require.Nil(t, file.lastSnapshot().Groups, "the earlier list is held compressed only, by the sinks too")
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.1.1:80"}, addrs(file.last()))
	require.Same(t, &file.lastSnapshot().Gzip[0], &web.lastSnapshot().Gzip[0], "every sink gets the same bytes")
	require.False(t, l.Ready())

	require.ErrorIs(t, l.RunOnce(ctx), errBoom)
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.1.1:80"}, addrs(web.last()))
	require.Equal(t, "earlier run", string(web.last()[0].Labels["from"]), "the baseline's own labels")
	require.False(t, l.Ready())

	require.ErrorIs(t, l.RunOnce(ctx), errBoom)
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.1.1:80"}, addrs(web.last()),
		"discovered targets and the baseline's that the discovery lacks")
	require.Equal(t, ",a,", string(web.last()[1].Labels[targets.LabelSource]), "a discovered target wins over the baseline's")
	require.False(t, l.Ready(), "a source that failed in part has not succeeded")
	require.Same(t, &file.lastSnapshot().Gzip[0], &web.lastSnapshot().Gzip[0])
	require.Equal(t, int32(1), reads.Load(), "read once, by Prime; then from the list Prime rendered")

	require.NoError(t, l.RunOnce(ctx))
	require.Equal(t, []string{"10.0.0.3:80", "10.0.1.1:80"}, addrs(web.last()), "complete: the baseline is dropped")
	require.True(t, l.Ready())

	require.ErrorIs(t, l.RunOnce(ctx), errBoom)
	require.Equal(t, []string{"10.0.0.3:80", "10.0.1.1:80"}, addrs(web.last()), "and does not come back")
	require.True(t, l.Ready(), "ready stays ready")
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.1.1:80"}, addrs(baseline), "the baseline's groups are not modified")
	require.Len(t, baseline[0].Labels, 2)
}

// TestBaselineNeverHeldDecoded: after Prime, lists that are not complete (Cloud Map's services
// published as they are done, during the first discovery after a restart) get the baseline's
// targets that they lack, with the baseline's labels, without the loop or the sinks holding the
// baseline's groups: it stays compressed, and no list holds groups until it is complete. Once the
// discovery has found the baseline's targets as they were, the list (the same bytes) holds the
// discovered groups, which the sources hold, and none of the baseline's.
func TestBaselineNeverHeldDecoded(t *testing.T) {
	t.Parallel()
	labelled := func(addr string) *targets.Group {
		g := group(addr)
		g.Labels[targets.LabelSource] = targets.SourceValue("a")
		return g
	}
	baseline := []*targets.Group{labelled("10.0.0.3:80"), labelled("10.0.0.1:80"), labelled("10.0.0.2:80")}
	baseline[0].Labels["from"] = "earlier run"
	discovered := []*targets.Group{labelled("10.0.0.1:80"), labelled("10.0.0.2:80"), labelled("10.0.0.3:80")}
	a := &scriptedSource{name: "a", steps: []step{
		{groups: discovered[1:2], err: errBoom},
		{groups: []*targets.Group{discovered[1], labelled("10.0.0.4:80")}, err: errBoom},
		{groups: discovered},
	}}
	sink := &recordingSink{}
	var reads atomic.Int32
	l := New(Options{Interval: time.Hour, Sources: []Source{a}, Sinks: []Sink{sink}, Baseline: func() ([]*targets.Group, error) {
		reads.Add(1)
		return baseline, nil
	}})
	notHeld := func(msg string) {
		t.Helper()
		require.Nil(t, sink.lastSnapshot().Groups, msg)
		l.baseMu.Lock()
		require.Nil(t, l.base.Groups, msg)
		l.baseMu.Unlock()
		l.snapMu.Lock()
		require.Nil(t, l.snap.Groups, msg)
		l.snapMu.Unlock()
	}
	ctx := context.Background()

	require.NoError(t, l.Prime(ctx))
	notHeld("primed")
	require.ErrorIs(t, l.RunOnce(ctx), errBoom)
	notHeld("a part")
	got := sink.last()
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}, addrs(got))
	require.Equal(t, "earlier run", string(got[2].Labels["from"]), "the baseline's own labels")
	want, err := targets.Marshal(append([]*targets.Group{baseline[1], discovered[1]}, baseline[0]))
	require.NoError(t, err)
	json, err := sink.lastSnapshot().JSON()
	require.NoError(t, err)
	require.Equal(t, string(want), string(json), "rendered as the list of the same groups")

	require.ErrorIs(t, l.RunOnce(ctx), errBoom)
	notHeld("another part")
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"}, addrs(sink.last()))
	partial := sink.lastSnapshot()

	require.NoError(t, l.RunOnce(ctx))
	found := sink.lastSnapshot()
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}, addrs(found.Groups), "complete: the baseline is dropped")
	require.NotEqual(t, partial.Gzip, found.Gzip)
	for i, g := range found.Groups {
		require.Same(t, discovered[i], g, "the discovered group")
	}
	require.Equal(t, int32(1), reads.Load(), "read once, by Prime")
	require.Equal(t, []string{"10.0.0.3:80", "10.0.0.1:80", "10.0.0.2:80"}, addrs(baseline), "the baseline's groups are not modified")
}

func TestPrimeWithoutBaselineGivesAnEmptyList(t *testing.T) {
	t.Parallel()
	sink := &recordingSink{}
	l := New(Options{Interval: time.Hour, Sources: []Source{hangingSource{}}, Sinks: []Sink{sink}})
	require.NoError(t, l.Prime(context.Background()))
	got, err := sink.lastSnapshot().JSON()
	require.NoError(t, err)
	require.Equal(t, "[]\n", string(got))
	require.False(t, l.Ready())
}

// TestBaselineReadOnlyWhenNeeded: without Prime (--once), a complete first discovery never reads
// the earlier list; an incomplete one reads it, once, and keeps its targets until complete. A
// baseline that cannot be read leaves the outputs as they are, and is read again next time.
func TestBaselineReadOnlyWhenNeeded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, complete := range []bool{true, false} {
		first := step{groups: []*targets.Group{group("10.0.0.2:80")}}
		if !complete {
			first.err = errBoom
		}
		a := &scriptedSource{name: "a", steps: []step{first, {err: errBoom}, {groups: []*targets.Group{group("10.0.0.3:80")}}}}
		sink := &recordingSink{}
		var reads atomic.Int32
		l := New(Options{Interval: time.Hour, Sources: []Source{a}, Sinks: []Sink{sink}, Baseline: func() ([]*targets.Group, error) {
			reads.Add(1)
			return []*targets.Group{group("10.0.0.1:80")}, nil
		}})
		_ = l.RunOnce(ctx)
		if complete {
			require.Equal(t, []string{"10.0.0.2:80"}, addrs(sink.last()))
			require.Zero(t, reads.Load(), "a complete first discovery does not read the earlier list")
			continue
		}
		require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80"}, addrs(sink.last()))
		require.ErrorIs(t, l.RunOnce(ctx), errBoom)
		require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80"}, addrs(sink.last()))
		require.NoError(t, l.RunOnce(ctx))
		require.Equal(t, []string{"10.0.0.3:80"}, addrs(sink.last()))
		require.Equal(t, int32(1), reads.Load(), "read once")
	}

	unreadable := errors.New("permission denied")
	fails := true
	a := &scriptedSource{name: "a", steps: []step{{groups: []*targets.Group{group("10.0.0.2:80")}, err: errBoom}}}
	sink := &recordingSink{}
	l := New(Options{Interval: time.Hour, Sources: []Source{a}, Sinks: []Sink{sink}, Baseline: func() ([]*targets.Group, error) {
		if fails {
			return nil, unreadable
		}
		return []*targets.Group{group("10.0.0.1:80")}, nil
	}})
	require.ErrorIs(t, l.RunOnce(ctx), unreadable)
	require.Empty(t, sink.updates, "nothing given to the outputs: they keep what they have")
	require.ErrorIs(t, l.Prime(ctx), unreadable)
	fails = false
	require.ErrorIs(t, l.RunOnce(ctx), errBoom)
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80"}, addrs(sink.last()))
}

func TestUnchangedListIsNotRenderedAgain(t *testing.T) {
	t.Parallel()
	same := []*targets.Group{group("10.0.0.1:80"), group("10.0.0.2:80")}
	a := &scriptedSource{name: "a", steps: []step{
		{groups: same},
		{groups: []*targets.Group{group("10.0.0.2:80"), group("10.0.0.1:80")}}, // equal copies, another order
		{groups: []*targets.Group{group("10.0.0.1:80")}},
	}}
	sink := &recordingSink{}
	l := New(Options{Interval: time.Hour, Sources: []Source{a}, Sinks: []Sink{sink}})
	ctx := context.Background()
	require.NoError(t, l.RunOnce(ctx))
	first := sink.lastSnapshot()
	require.NoError(t, l.RunOnce(ctx))
	require.Same(t, &first.Gzip[0], &sink.lastSnapshot().Gzip[0], "the same list: the same bytes, not rendered again")
	require.NoError(t, l.RunOnce(ctx))
	changed := sink.lastSnapshot()
	require.Equal(t, []string{"10.0.0.1:80"}, addrs(changed.Groups))
	want, err := targets.Marshal(changed.Groups)
	require.NoError(t, err)
	got, err := changed.JSON()
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}
