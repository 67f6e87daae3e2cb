package cloudmap

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/servicediscovery/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/hold"
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

// twoNamespaces seeds namespaces one (ns-1) and two (ns-2) with services of perService instances
// each, discovers them once and returns that cycle's target addresses.
func (e *testEnv) twoNamespaces(t *testing.T, services, perService int) []string {
	t.Helper()
	e.seed("ns-1", "one", services, perService)
	e.seed("ns-2", "two", services, perService)
	first, err := e.src.Discover(context.Background())
	require.NoError(t, err)
	require.Len(t, first, 2*services*perService)
	return addresses(first)
}

// TestHungCallCostsOnlyItsService: while one service's DiscoverInstances hangs, every other
// service is discovered (a new instance in another namespace is in the cycle's result), and the
// hung service keeps its last targets when its call ends in a timeout.
func TestHungCallCostsOnlyItsService(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, "one", "two")
	want := e.twoNamespaces(t, 3, 2)

	e.api.resetCalls()
	release := e.api.holds.Hold("DiscoverInstances/ns-1-srv-001")
	e.api.addInstance("ns-2-srv-000", "new-task", ecsAttrs("10.99.0.1"), types.HealthStatusHealthy)
	done := e.discoverAsync()
	require.Equal(t, "DiscoverInstances/ns-1-srv-001", e.api.holds.Next(t))
	require.Eventually(t, func() bool { return e.api.callCount("DiscoverInstances") == 6 }, 5*time.Second, 5*time.Millisecond,
		"every other service is asked while one call hangs")
	release()
	got := <-done
	require.ErrorIs(t, got.err, hold.ErrReleased)
	require.ErrorContains(t, got.err, `namespace "one" (ns-1): service "svc-001" (ns-1-srv-001): DiscoverInstances`)
	require.Equal(t, append(want, "10.99.0.1:3000"), addresses(got.groups))
}

// TestProgressWhileACallHangs: while one service's call hangs, Progress holds every other
// service's fresh targets and the hung service's last ones, which is what the discovery returns
// when the call ends in a timeout; Progress has nothing to tell when no discovery runs.
func TestProgressWhileACallHangs(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, "one", "two")
	want := e.twoNamespaces(t, 3, 2)
	_, ok := e.src.Progress()
	require.False(t, ok, "no discovery runs")

	release := e.api.holds.Hold("DiscoverInstances/ns-1-srv-001")
	e.api.addInstance("ns-2-srv-000", "new-task", ecsAttrs("10.99.0.1"), types.HealthStatusHealthy)
	e.api.addInstance("ns-1-srv-001", "unseen-task", ecsAttrs("10.99.0.2"), types.HealthStatusHealthy)
	done := e.discoverAsync()
	require.Equal(t, "DiscoverInstances/ns-1-srv-001", e.api.holds.Next(t))
	held := append(slices.Clone(want), "10.99.0.1:3000")
	require.Eventually(t, func() bool {
		groups, ok := e.src.Progress()
		return ok && slices.Equal(held, addresses(groups))
	}, 5*time.Second, 5*time.Millisecond, "the other services' targets while one call hangs")
	release()
	got := <-done
	require.ErrorIs(t, got.err, hold.ErrReleased)
	require.Equal(t, held, addresses(got.groups))
	_, ok = e.src.Progress()
	require.False(t, ok, "the discovery has ended")
}

// TestNamespacesInParallel: a namespace whose services cannot be listed yet does not hold up
// another namespace's services.
func TestNamespacesInParallel(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, "one", "two")
	want := e.twoNamespaces(t, 2, 1)

	releaseList := e.api.holds.Hold("ListServices/ns-1")
	releaseDiscover := e.api.holds.Hold("DiscoverInstances/ns-2-srv-000")
	done := e.discoverAsync()
	require.ElementsMatch(t, []string{"ListServices/ns-1", "DiscoverInstances/ns-2-srv-000"}, []string{e.api.holds.Next(t), e.api.holds.Next(t)},
		"both calls are in flight at once")
	releaseList()
	releaseDiscover()
	got := <-done
	require.ErrorIs(t, got.err, hold.ErrReleased)
	require.Equal(t, want, addresses(got.groups))
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
	e.twoNamespaces(t, 2, 1)

	releases := map[string]func(){}
	for _, id := range []string{"ns-1-srv-000", "ns-1-srv-001", "ns-2-srv-000"} {
		key := "DiscoverInstances/" + id
		releases[key] = e.api.holds.Hold(key)
	}
	done := e.discoverAsync()
	first := e.api.holds.Next(t)
	second := e.api.holds.Next(t)
	e.api.holds.None(t, 200*time.Millisecond) // a third call waits for a slot
	releases[first]()
	third := e.api.holds.Next(t)
	require.NotContains(t, []string{first, second}, third)
	for _, release := range releases {
		release()
	}
	got := <-done
	require.ErrorIs(t, got.err, hold.ErrReleased)
	require.Len(t, got.groups, 4)
}

// TestServiceNamespaceReadOnce: where every namespace lists every service (the namespace filter
// not applied, as on some emulators), the namespaces asking at once still read each service's
// namespace once.
func TestServiceNamespaceReadOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, "one", "two")
	e.api.ignoreServiceFilter = true
	e.twoNamespaces(t, 20, 1)
	require.Equal(t, 40, e.api.callCount("GetService"))
	require.Equal(t, 40, e.api.callCount("DiscoverInstances"))
}
