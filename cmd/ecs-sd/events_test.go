package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/cloudmap"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// gatedSource counts its discoveries; each one ends when it takes a token from gate.
type gatedSource struct {
	n    atomic.Int32
	gate chan struct{}
}

func (s *gatedSource) Name() string { return "gated" }

func (s *gatedSource) Discover(ctx context.Context) ([]*targets.Group, error) {
	s.n.Add(1)
	select {
	case <-s.gate:
	case <-ctx.Done():
	}
	return nil, nil
}

// fakeCloudMap is the Cloud Map source as the applier sees it: the Cloud Map services of ECS
// services, and a count of the reads of each service, each of which adds a target to it (or
// fails, with fail set).
type fakeCloudMap struct {
	byECS map[string][]string // "cluster/service" -> service ids

	mu     sync.Mutex
	reads  map[string]int
	fail   error
	groups []*targets.Group
}

func newFakeCloudMap(byECS map[string][]string) *fakeCloudMap {
	return &fakeCloudMap{byECS: byECS, reads: map[string]int{}}
}

func (f *fakeCloudMap) Name() string { return cloudmap.Name }

func (f *fakeCloudMap) Discover(context.Context) ([]*targets.Group, error) { return f.Current(), nil }

func (f *fakeCloudMap) Current() []*targets.Group {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.groups
}

func (f *fakeCloudMap) RefreshService(_ context.Context, id string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads[id]++
	if f.fail != nil {
		return false, f.fail
	}
	f.groups = append(f.groups[:len(f.groups):len(f.groups)], &targets.Group{
		Targets: []string{fmt.Sprintf("%s-%d:80", id, f.reads[id])}, Labels: model.LabelSet{"__metrics_path__": "/metrics"}})
	return true, nil
}

func (f *fakeCloudMap) ServicesOfECSService(cluster, service string) []string {
	return f.byECS[cluster+"/"+service]
}

func (f *fakeCloudMap) readCounts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.reads)
}

func (f *fakeCloudMap) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// recordingSink records the addresses of each list it is given.
type recordingSink struct {
	mu      sync.Mutex
	updates [][]string
}

func (s *recordingSink) Name() string { return "recording" }

func (s *recordingSink) Update(_ context.Context, snap targets.Snapshot) error {
	var addrs []string
	for _, g := range snap.Groups {
		addrs = append(addrs, g.Address())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updates = append(s.updates, addrs)
	return nil
}

func (s *recordingSink) got() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]string(nil), s.updates...)
}

// fakeClock stands for time.After: each call is recorded, and its channel fires when the test
// says so.
type fakeClock struct {
	mu     sync.Mutex
	delays []time.Duration
	timers []chan time.Time
}

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.delays, c.timers = append(c.delays, d), append(c.timers, ch)
	return ch
}

func (c *fakeClock) scheduled() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.delays...)
}

// fire fires the i-th timer.
func (c *fakeClock) fire(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers[i] <- time.Now()
}

// newTestApplier returns an applier with only cloudMap enabled, whose loop (not running) has
// sink as its only output, and its clock.
func newTestApplier(cloudMap *fakeCloudMap, sink *recordingSink) (*applier, *fakeClock) {
	loop := refresh.New(refresh.Options{Interval: time.Hour, Sources: []refresh.Source{cloudMap}, Sinks: []refresh.Sink{sink}})
	a := newApplier(loop, []refresh.Source{cloudMap}, slog.New(slog.DiscardHandler))
	clock := &fakeClock{}
	a.after = clock.after
	return a, clock
}

const testClusterARN = "arn:aws:ecs:us-east-1:123456789012:cluster/apps"

// serviceTask returns a task of group ("service:NAME" for a service's task) in cluster apps.
func serviceTask(n int, group, lastStatus string) ecstypes.Task {
	return ecstypes.Task{
		TaskArn:    aws.String(fmt.Sprintf("arn:aws:ecs:us-east-1:123456789012:task/apps/%032x", n)),
		ClusterArn: aws.String(testClusterARN), Group: aws.String(group),
		LastStatus: aws.String(lastStatus), DesiredStatus: aws.String("RUNNING"), Version: 2,
	}
}

// TestTaskEventsRereadTheirCloudMapServices: with only Cloud Map enabled, a batch's task events
// read each Cloud Map service their ECS services register in once, whatever the number of
// events (a STOPPED task's too, and a CloudTrail event's of the same service), and once more
// cloudMapRereadDelay later, with one publication; a service whose later read is pending gets
// no second one, but is read at once again by the next batch.
func TestTaskEventsRereadTheirCloudMapServices(t *testing.T) {
	t.Parallel()
	cm := newFakeCloudMap(map[string][]string{"apps/web": {"srv-web"}, "apps/api": {"srv-api", "srv-api-2"}})
	sink := &recordingSink{}
	a, clock := newTestApplier(cm, sink)
	ctx := t.Context()

	for i := range 50 {
		a.TaskChanged(ctx, refresh.Pair{}, serviceTask(i, "service:web", "RUNNING"))
	}
	a.CloudMapServiceChanged(ctx, refresh.Pair{}, "srv-web")
	a.TaskChanged(ctx, refresh.Pair{}, serviceTask(100, "service:api", "STOPPED"))
	a.TaskChanged(ctx, refresh.Pair{}, serviceTask(101, "family:batch", "RUNNING")) // a standalone task
	a.Flush(ctx)
	require.Equal(t, map[string]int{"srv-web": 1, "srv-api": 1, "srv-api-2": 1}, cm.readCounts())
	require.Equal(t, []time.Duration{cloudMapRereadDelay}, clock.scheduled(), "one later read for the batch")
	require.Len(t, sink.got(), 1, "the batch published once")
	require.Len(t, sink.got()[0], 3)

	// The next batch reads at once again; its services' later read is pending already.
	a.TaskChanged(ctx, refresh.Pair{}, serviceTask(1, "service:web", "RUNNING"))
	a.Flush(ctx)
	require.Equal(t, map[string]int{"srv-web": 2, "srv-api": 1, "srv-api-2": 1}, cm.readCounts())
	require.Len(t, clock.scheduled(), 1)

	// The later read: every service of the first batch, once, published once.
	clock.fire(0)
	require.Eventually(t, func() bool { return len(sink.got()) == 3 }, 5*time.Second, time.Millisecond)
	require.Equal(t, map[string]int{"srv-web": 3, "srv-api": 2, "srv-api-2": 2}, cm.readCounts())
	require.Len(t, sink.got()[2], 7, "three read at the event, one by the next batch, three later")

	// Once it has begun, an event schedules another.
	a.TaskChanged(ctx, refresh.Pair{}, serviceTask(2, "service:web", "STOPPED"))
	a.Flush(ctx)
	require.Equal(t, []time.Duration{cloudMapRereadDelay, cloudMapRereadDelay}, clock.scheduled())
	clock.fire(1)
	require.Eventually(t, func() bool { return cm.readCounts()["srv-web"] == 5 }, 5*time.Second, time.Millisecond)
	a.wait()
	require.Equal(t, map[string]int{"srv-web": 5, "srv-api": 2, "srv-api-2": 2}, cm.readCounts())
}

// TestTaskEventOfUnknownServiceReadsNothing: a task event of an ECS service that no known Cloud
// Map service names, of another cluster, or of a standalone task, costs no call, publishes
// nothing and schedules nothing.
func TestTaskEventOfUnknownServiceReadsNothing(t *testing.T) {
	t.Parallel()
	cm := newFakeCloudMap(map[string][]string{"apps/web": {"srv-web"}})
	sink := &recordingSink{}
	a, clock := newTestApplier(cm, sink)
	ctx := t.Context()
	other := serviceTask(3, "service:web", "RUNNING")
	other.ClusterArn = aws.String("arn:aws:ecs:us-east-1:123456789012:cluster/other")
	for _, task := range []ecstypes.Task{serviceTask(1, "service:worker", "RUNNING"), serviceTask(2, "family:web", "RUNNING"), other} {
		a.TaskChanged(ctx, refresh.Pair{}, task)
	}
	a.Flush(ctx)
	a.wait()
	require.Empty(t, cm.readCounts())
	require.Empty(t, clock.scheduled())
	require.Empty(t, sink.got())
}

// TestPendingRereadsEndWithTheContext: later reads not yet due end, without reading, when the
// context ends; wait returns then.
func TestPendingRereadsEndWithTheContext(t *testing.T) {
	t.Parallel()
	cm := newFakeCloudMap(map[string][]string{"apps/web": {"srv-web"}})
	a, clock := newTestApplier(cm, &recordingSink{})
	ctx, cancel := context.WithCancel(t.Context())
	a.TaskChanged(ctx, refresh.Pair{}, serviceTask(1, "service:web", "RUNNING"))
	a.Flush(ctx)
	require.Len(t, clock.scheduled(), 1)
	cancel()
	done := make(chan struct{})
	go func() {
		a.wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the pending later read did not end with the context")
	}
	require.Equal(t, map[string]int{"srv-web": 1}, cm.readCounts(), "only the read at the event")
}

// TestUnappliedBatchRunsOneCycle: in event mode a batch with an event that could not be applied
// (a Cloud Map read that failed) runs a cycle at once, not at the next tick, and so does a later
// read that failed; batches flushed while a cycle runs are merged (the loop gives one or two
// cycles after it, not one each); a batch that changed nothing (a task event of an ECS service
// no Cloud Map service names) runs none.
func TestUnappliedBatchRunsOneCycle(t *testing.T) {
	t.Parallel()
	src := &gatedSource{gate: make(chan struct{})}
	loop := refresh.New(refresh.Options{Interval: time.Hour, Sources: []refresh.Source{src}})
	cm := newFakeCloudMap(map[string][]string{"apps/web": {"srv-web"}})
	cm.setFail(errors.New("injected fault"))
	a := newApplier(loop, []refresh.Source{cm}, slog.New(slog.DiscardHandler))
	clock := &fakeClock{}
	a.after = clock.after
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = loop.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
		a.wait()
	}()
	cycles := func(n int32) {
		t.Helper()
		require.Eventually(t, func() bool { return src.n.Load() == n }, 5*time.Second, time.Millisecond)
	}
	// settled returns the number of cycles once none begins for 200 ms, each of them ended.
	settled := func() int32 {
		t.Helper()
		for {
			n := src.n.Load()
			select {
			case src.gate <- struct{}{}:
			case <-time.After(200 * time.Millisecond):
				if src.n.Load() == n {
					return n
				}
			}
		}
	}
	batch := func() {
		a.CloudMapServiceChanged(ctx, refresh.Pair{}, "srv-web")
		a.Flush(ctx)
	}

	cycles(1) // the first cycle, at start
	src.gate <- struct{}{}
	batch()
	cycles(2)
	for range 5 {
		batch() // while cycle 2 runs
	}
	n := settled()
	require.Contains(t, []int32{3, 4}, n, "five batches during a cycle: merged into one or two cycles after it")
	a.Flush(ctx) // an empty batch
	a.TaskChanged(ctx, refresh.Pair{}, serviceTask(1, "service:worker", "RUNNING"))
	a.Flush(ctx)
	require.Equal(t, n, settled(), "a batch that changed nothing: no cycle")
	require.Empty(t, clock.scheduled())

	// A task event's read at once, and its later read, that fail wake the loop each.
	a.TaskChanged(ctx, refresh.Pair{}, serviceTask(2, "service:web", "RUNNING"))
	a.Flush(ctx)
	cycles(n + 1)
	src.gate <- struct{}{}
	require.Equal(t, n+1, settled())
	clock.fire(0)
	cycles(n + 2)
	src.gate <- struct{}{}
	require.Equal(t, map[string]int{"srv-web": 8}, cm.readCounts())
}

// pairedCloudMap is a fakeCloudMap of one (account, region) pair.
type pairedCloudMap struct {
	*fakeCloudMap
	pair refresh.Pair
}

func (p pairedCloudMap) Pair() refresh.Pair { return p.pair }

// TestEventsAreRoutedToTheirPair: with several pairs, a Cloud Map event and a task event are
// applied by the sources of their envelope's pair only, and each pair's changes are published
// with that pair's targets; an event of a pair ecs-sd does not discover in changes nothing.
func TestEventsAreRoutedToTheirPair(t *testing.T) {
	t.Parallel()
	east := pairedCloudMap{newFakeCloudMap(map[string][]string{"apps/web": {"srv-east"}}), refresh.Pair{Account: "111111111111", Region: "us-east-1"}}
	west := pairedCloudMap{newFakeCloudMap(map[string][]string{"apps/web": {"srv-west"}}), refresh.Pair{Account: "111111111111", Region: "eu-west-1"}}
	sink := &recordingSink{}
	loop := refresh.New(refresh.Options{Interval: time.Hour, Sources: []refresh.Source{east, west}, Sinks: []refresh.Sink{sink}})
	a := newApplier(loop, []refresh.Source{east, west}, slog.New(slog.DiscardHandler))
	clock := &fakeClock{}
	a.after = clock.after
	ctx, cancel := context.WithCancel(t.Context())

	a.CloudMapServiceChanged(ctx, west.pair, "srv-west")
	a.CloudMapServiceChanged(ctx, refresh.Pair{Account: "999999999999", Region: "eu-west-1"}, "srv-west")
	a.Flush(ctx)
	require.Equal(t, map[string]int{"srv-west": 1}, west.readCounts())
	require.Empty(t, east.readCounts())
	require.Equal(t, [][]string{{"srv-west-1:80"}}, sink.got())

	a.TaskChanged(ctx, east.pair, serviceTask(1, "service:web", "RUNNING"))
	a.Flush(ctx)
	require.Equal(t, map[string]int{"srv-east": 1}, east.readCounts(), "the task's ECS service's Cloud Map service, in its pair")
	require.Equal(t, map[string]int{"srv-west": 1}, west.readCounts())
	require.Equal(t, []string{"srv-east-1:80", "srv-west-1:80"}, sink.got()[1])
	cancel() // the later read is not awaited
	a.wait()
}
