package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// skippingSource is a scripted source that reports its skips to a tracker, as the real ones do.
type skippingSource struct {
	scriptedSource
	skips *Skips
	pair  Pair
	calls int // AWS calls each discovery "makes" on the counting context
}

func (s *skippingSource) Pair() Pair { return s.pair }
func (s *skippingSource) Skipped() []Skipped {
	if s.skips == nil {
		return nil
	}
	return s.skips.Current()
}
func (s *skippingSource) Discover(ctx context.Context) ([]*targets.Group, error) {
	for range s.calls {
		ctx.Value(countKey{}).(func())()
	}
	return s.scriptedSource.Discover(ctx)
}

type countKey struct{}

// countCalls is a CallCounter whose calls are made through a func in the context.
func countCalls(ctx context.Context) (context.Context, func() int) {
	n := 0
	return context.WithValue(ctx, countKey{}, func() { n++ }), func() int { return n }
}

func TestStatusSources(t *testing.T) {
	t.Parallel()
	failing := errors.New("list tasks: AccessDenied")
	cm := &skippingSource{scriptedSource: scriptedSource{name: "cloudmap", steps: []step{{groups: []*targets.Group{group("10.0.0.1:80"), group("10.0.0.2:80")}}}}, calls: 4}
	ec := &skippingSource{scriptedSource: scriptedSource{name: "ecs", steps: []step{{err: failing}}}, pair: Pair{"111111111111", "eu-west-1"}, calls: 2}
	idle := &scriptedSource{name: "idle", steps: []step{{}}}
	l := New(Options{Interval: time.Hour, Sources: []Source{cm, ec, idle}, CountCalls: countCalls})

	st := l.Status(10)
	require.Equal(t, []string{HealthPending, HealthPending, HealthPending}, []string{st.Sources[0].Health, st.Sources[1].Health, st.Sources[2].Health})
	require.Nil(t, st.Sources[0].LastSuccess)

	// One cycle of cloudmap and ecs (idle's discovery has not ended).
	before := time.Now()
	for _, s := range []Source{cm, ec} {
		_ = l.store(s, l.discover(t.Context(), s))
	}
	require.Len(t, l.update(t.Context()), 0)
	st = l.Status(10)
	up, fail, pending := st.Sources[0], st.Sources[1], st.Sources[2]
	require.Equal(t, "cloudmap", up.Name)
	require.Equal(t, HealthUp, up.Health)
	require.Equal(t, 2, up.Targets)
	require.Equal(t, 4, up.AWSCalls)
	require.Empty(t, up.LastError)
	require.NotNil(t, up.LastSuccess)
	require.False(t, up.LastSuccess.Before(before))
	require.GreaterOrEqual(t, up.LastDuration, 0.0)

	require.Equal(t, SourceStatus{Name: "ecs", Account: "111111111111", Region: "eu-west-1", Health: HealthFailing,
		LastError: "list tasks: AccessDenied", LastDuration: fail.LastDuration, AWSCalls: 2}, fail)
	require.Equal(t, HealthPending, pending.Health)

	// Without a counter, calls are -1: not counted.
	require.Equal(t, -1, New(Options{Sources: []Source{idle}}).Status(1).Sources[0].AWSCalls)
}

func TestStatusSkipped(t *testing.T) {
	t.Parallel()
	m := NewMetrics(nil)
	cm := &skippingSource{scriptedSource: scriptedSource{name: "cloudmap", steps: []step{{}}}, skips: m.Skips("cloudmap", Pair{}, nil, "bad_port")}
	ec := &skippingSource{scriptedSource: scriptedSource{name: "ecs", steps: []step{{}}}, skips: m.Skips("ecs", Pair{"111111111111", "eu-west-1"}, nil, "no_ip")}
	l := New(Options{Interval: time.Hour, Sources: []Source{ec, cm}})

	before := time.Now()
	cm.skips.Set("srv-1", []Skip{
		{Item: "i-2/application", Reason: "bad_port", Detail: `service tag METRICS_PORT="abc" is not a port number (1-65535)`, IDs: []ID{{"instance", "i-2"}, {"endpoint", "application"}}},
		{Item: "i-1", Reason: "no_ip", Detail: "instance has neither AWS_INSTANCE_IPV4 nor AWS_INSTANCE_IPV6", IDs: []ID{{"instance", "i-1"}}},
	}, "namespace", "ns", "service", "web")
	ec.skips.Set("arn:task/1", []Skip{{Item: "1", Reason: "no_ip", Detail: "the task runs on no EC2 container instance", IDs: []ID{{"task", "arn:task/1"}}}}, "cluster", "c")

	st := l.Status(10)
	require.Equal(t, 0, st.SkippedOmitted)
	require.Len(t, st.Skipped, 3)
	since := st.Skipped[0].Since
	require.False(t, since.Before(before))
	for i := range st.Skipped {
		st.Skipped[i].Since = time.Time{}
	}
	require.Equal(t, []Skipped{
		{Source: "cloudmap", Reason: "bad_port", IDs: IDs{{"namespace", "ns"}, {"service", "web"}, {"instance", "i-2"}, {"endpoint", "application"}},
			Message: `service tag METRICS_PORT="abc" is not a port number (1-65535)`},
		{Source: "cloudmap", Reason: "no_ip", IDs: IDs{{"namespace", "ns"}, {"service", "web"}, {"instance", "i-1"}},
			Message: "instance has neither AWS_INSTANCE_IPV4 nor AWS_INSTANCE_IPV6"},
		{Source: "ecs", Account: "111111111111", Region: "eu-west-1", Reason: "no_ip", IDs: IDs{{"cluster", "c"}, {"task", "arn:task/1"}},
			Message: "the task runs on no EC2 container instance"},
	}, st.Skipped)

	// The same skip at the next cycle keeps its time; one for a new reason gets a new one.
	time.Sleep(10 * time.Millisecond)
	cm.skips.Set("srv-1", []Skip{
		{Item: "i-2/application", Reason: "bad_port", Detail: "x", IDs: []ID{{"instance", "i-2"}}},
		{Item: "i-1", Reason: "unhealthy", Detail: "instance is UNHEALTHY", IDs: []ID{{"instance", "i-1"}}},
	}, "namespace", "ns", "service", "web")
	st = l.Status(10)
	require.Equal(t, since, st.Skipped[0].Since)
	require.Equal(t, "unhealthy", st.Skipped[1].Reason)
	require.True(t, st.Skipped[1].Since.After(since))

	// Cut to 1: the others are counted.
	st = l.Status(1)
	require.Len(t, st.Skipped, 1)
	require.Equal(t, 2, st.SkippedOmitted)

	// A scope that is gone takes its skips along.
	cm.skips.Done(t.Context(), func(string) bool { return false })
	require.Len(t, l.Status(10).Skipped, 1)
}

func TestIDsJSONAndString(t *testing.T) {
	t.Parallel()
	ids := IDs{{"service", "web"}, {"namespace", "ns"}, {"container", `my "app"`}, {"task", ""}}
	b, err := json.Marshal(ids)
	require.NoError(t, err)
	require.JSONEq(t, `{"service":"web","namespace":"ns","container":"my \"app\"","task":""}`, string(b))
	require.Equal(t, `{"service":"web","namespace":"ns"`, string(b)[:len(`{"service":"web","namespace":"ns"`)], "in order")
	require.Equal(t, `service=web namespace=ns container="my \"app\"" task=""`, ids.String())
	b, err = json.Marshal(IDs{})
	require.NoError(t, err)
	require.Equal(t, "{}", string(b))
}

func TestStatusChanges(t *testing.T) {
	t.Parallel()
	a, b, c := group("10.0.0.1:80"), group("10.0.0.2:80"), group("10.0.0.3:80")
	src := &scriptedSource{name: "cloudmap", steps: []step{
		{groups: []*targets.Group{a, b}},
		{groups: []*targets.Group{a, b}}, // no change
		{groups: []*targets.Group{a, c}},
	}}
	l := New(Options{Interval: time.Hour, Sources: []Source{src}})
	cycle := func() {
		t.Helper()
		require.NoError(t, l.RunOnce(t.Context()))
	}
	cycle()
	st := l.Status(10)
	require.Len(t, st.Changes, 2)
	require.Equal(t, Change{st.Changes[0].Time, "added", "http://10.0.0.2:80/metrics", "cloudmap"}, st.Changes[0]) // newest first: b was added after a
	require.Equal(t, Change{st.Changes[1].Time, "added", "http://10.0.0.1:80/metrics", "cloudmap"}, st.Changes[1])
	cycle()
	require.Len(t, l.Status(10).Changes, 2)
	cycle()
	st = l.Status(10)
	require.Len(t, st.Changes, 4)
	require.Equal(t, []string{"added http://10.0.0.3:80/metrics", "removed http://10.0.0.2:80/metrics"},
		[]string{st.Changes[0].Change + " " + st.Changes[0].Target, st.Changes[1].Change + " " + st.Changes[1].Target})
	require.Equal(t, 0, st.ChangesOmitted)
	got, err := l.Targets()
	require.NoError(t, err)
	require.Len(t, got, 2)
}

func TestStatusChangesBounded(t *testing.T) {
	t.Parallel()
	l := New(Options{})
	var groups []*targets.Group
	for i := range MaxChanges + 30 {
		groups = append(groups, group(fmt.Sprintf("10.0.%d.%d:80", i/200, i%200)))
	}
	l.noteChanges(groups, time.Now())
	l.noteChanges(nil, time.Now())
	st := l.Status(0)
	require.Len(t, st.Changes, MaxChanges)
	require.Equal(t, MaxChanges+30+MaxChanges+30-MaxChanges, st.ChangesOmitted)
	for _, c := range st.Changes {
		require.Equal(t, "removed", c.Change)
	}
}

// locatedSource is a source of ecs-sd's own account, whose id its first discovery reads.
type locatedSource struct {
	scriptedSource
	place *Place
}

func (s *locatedSource) Pair() Pair     { return Pair{Region: "us-east-1"} }
func (s *locatedSource) Location() Pair { return s.place.Pair() }
func (s *locatedSource) Discover(ctx context.Context) ([]*targets.Group, error) {
	if _, err := s.place.Resolve(ctx); err != nil {
		return nil, err
	}
	return s.scriptedSource.Discover(ctx)
}

// TestStatusShowsTheAccountOnceRead: the own account's id, unknown until the first discovery
// reads it, is in the status once read, while the loop keys the source by its configured pair.
func TestStatusShowsTheAccountOnceRead(t *testing.T) {
	t.Parallel()
	src := &locatedSource{scriptedSource: scriptedSource{name: "ecs", steps: []step{{}}},
		place: NewPlace(Pair{Region: "us-east-1"}, func(context.Context) (string, error) { return "123456789012", nil })}
	l := New(Options{Interval: time.Hour, Sources: []Source{src}})
	require.Empty(t, l.Status(1).Sources[0].Account)
	_ = l.store(src, l.discover(t.Context(), src))
	got := l.Status(1).Sources[0]
	require.Equal(t, "123456789012", got.Account)
	require.Equal(t, "us-east-1", got.Region)
}
