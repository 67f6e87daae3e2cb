package cloudmap

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/servicediscovery/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

type discovery struct {
	groups []*targets.Group
	err    error
}

// discoverAsync runs one Discover in the background; its result arrives on the channel.
func (e *testEnv) discoverAsync() <-chan discovery {
	done := make(chan discovery, 1)
	go func() {
		groups, err := e.src.Discover(context.Background())
		done <- discovery{groups, err}
	}()
	return done
}

// nextHeld returns the next call that started waiting on a hold.
func (e *testEnv) nextHeld(t *testing.T) string {
	t.Helper()
	select {
	case key := <-e.api.held:
		return key
	case <-time.After(5 * time.Second):
		t.Fatal("no held call started within 5 s")
		return ""
	}
}

// TestHungCallCostsOnlyItsService: while one service's DiscoverInstances hangs, every other
// service is discovered (a new instance in another namespace is in the cycle's result), and the
// hung service keeps its last targets when its call ends in a timeout.
func TestHungCallCostsOnlyItsService(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, "one", "two")
	e.seed("ns-1", "one", 3, 2)
	e.seed("ns-2", "two", 3, 2)
	first, err := e.src.Discover(context.Background())
	require.NoError(t, err)
	want := addresses(first)

	e.api.resetCalls()
	release := e.api.holdCall("DiscoverInstances/ns-1-srv-001")
	e.api.addInstance("ns-2-srv-000", "new-task", ecsAttrs("10.99.0.1"), types.HealthStatusHealthy)
	done := e.discoverAsync()
	require.Equal(t, "DiscoverInstances/ns-1-srv-001", e.nextHeld(t))
	require.Eventually(t, func() bool { return e.api.callCount("DiscoverInstances") == 6 }, 5*time.Second, 5*time.Millisecond,
		"every other service is asked while one call hangs")
	release()
	got := <-done
	require.ErrorIs(t, got.err, errHeld)
	require.ErrorContains(t, got.err, `namespace "one" (ns-1): service "svc-001" (ns-1-srv-001): DiscoverInstances`)
	require.Equal(t, append(want, "10.99.0.1:3000"), addresses(got.groups))
}

// TestNamespacesInParallel: a namespace whose services cannot be listed yet does not hold up
// another namespace's services.
func TestNamespacesInParallel(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, "one", "two")
	e.seed("ns-1", "one", 2, 1)
	e.seed("ns-2", "two", 2, 1)
	first, err := e.src.Discover(context.Background())
	require.NoError(t, err)

	releaseList := e.api.holdCall("ListServices/ns-1")
	releaseDiscover := e.api.holdCall("DiscoverInstances/ns-2-srv-000")
	done := e.discoverAsync()
	require.ElementsMatch(t, []string{"ListServices/ns-1", "DiscoverInstances/ns-2-srv-000"}, []string{e.nextHeld(t), e.nextHeld(t)},
		"both calls are in flight at once")
	releaseList()
	releaseDiscover()
	got := <-done
	require.ErrorIs(t, got.err, errHeld)
	require.Equal(t, addresses(first), addresses(got.groups))
}

// TestConcurrencyBound: no more than Concurrency calls are in flight, across namespaces.
func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	e := &testEnv{api: newFakeAPI(), ns: []string{"one", "two"}, now: time.Unix(1_700_000_000, 0)}
	e.src = New(e.api, Options{
		Namespaces:          func(context.Context) ([]string, error) { return e.ns, nil },
		TagsRefreshInterval: time.Minute,
		Concurrency:         2,
		Registerer:          prometheus.NewRegistry(),
		now:                 func() time.Time { return e.now },
	})
	e.seed("ns-1", "one", 2, 1)
	e.seed("ns-2", "two", 1, 1)
	_, err := e.src.Discover(context.Background())
	require.NoError(t, err)

	var releases []func()
	for _, id := range []string{"ns-1-srv-000", "ns-1-srv-001", "ns-2-srv-000"} {
		releases = append(releases, e.api.holdCall("DiscoverInstances/"+id))
	}
	done := e.discoverAsync()
	first := []string{e.nextHeld(t), e.nextHeld(t)}
	select {
	case key := <-e.api.held:
		t.Fatalf("a third call (%s) started while two were in flight with a bound of 2", key)
	case <-time.After(200 * time.Millisecond):
	}
	for i, id := range []string{"ns-1-srv-000", "ns-1-srv-001", "ns-2-srv-000"} {
		if "DiscoverInstances/"+id == first[0] {
			releases[i]()
			releases[i] = func() {}
		}
	}
	third := e.nextHeld(t)
	require.NotContains(t, first, third)
	for _, release := range releases {
		release()
	}
	got := <-done
	require.ErrorIs(t, got.err, errHeld)
	require.Len(t, got.groups, 3)
}
