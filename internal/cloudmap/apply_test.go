package cloudmap

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/servicediscovery/types"
	"github.com/stretchr/testify/require"
)

func TestRefreshService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newTestEnv(t, "one")
	e.seed("ns-1", "one", 2, 1)
	e.api.addNamespace("ns-9", "other", types.NamespaceTypeDnsPrivate)
	e.api.addService("ns-9", "ns-9-srv", "svc", map[string]string{"METRICS_PORT": "3000"})
	groups, err := e.src.Discover(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.1:3000", "10.0.1.1:3000"}, addresses(groups))
	require.Equal(t, addresses(groups), addresses(e.src.Current()))

	// A registration is read with one DiscoverInstances for that service alone.
	e.api.addInstance("ns-1-srv-001", "new-task", ecsAttrs("10.0.1.2"), types.HealthStatusHealthy)
	e.api.resetCalls()
	changed, err := e.src.RefreshService(ctx, "ns-1-srv-001")
	require.NoError(t, err)
	require.True(t, changed)
	require.Equal(t, map[string]int{"DiscoverInstances": 1}, e.api.calls)
	require.Equal(t, []string{"10.0.0.1:3000", "10.0.1.1:3000", "10.0.1.2:3000"}, addresses(e.src.Current()))

	changed, err = e.src.RefreshService(ctx, "ns-1-srv-001")
	require.NoError(t, err)
	require.False(t, changed, "nothing new")

	// Services of namespaces not discovered, and unknown ones, cost no call.
	e.api.resetCalls()
	for _, id := range []string{"ns-9-srv", "srv-unknown"} {
		changed, err = e.src.RefreshService(ctx, id)
		require.NoError(t, err)
		require.False(t, changed, id)
	}
	require.Empty(t, e.api.calls)

	// A failed read keeps the service's last good targets and names the service.
	e.api.setFail("DiscoverInstances", errInjected)
	e.api.resetCalls()
	changed, err = e.src.RefreshService(ctx, "ns-1-srv-000")
	require.ErrorIs(t, err, errInjected)
	require.False(t, changed)
	require.Len(t, e.src.Current(), 3)
}

// TestServicesOfECSService: the services an ECS service registers in are known from the
// ECS_CLUSTER_NAME and ECS_SERVICE_NAME attributes of the instances a discovery or RefreshService
// read; a service keeps them when its instances are gone, and loses them when it is no longer
// discovered.
func TestServicesOfECSService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newTestEnv(t, "one")
	e.api.addNamespace("ns-1", "one", types.NamespaceTypeHttp)
	attrs := func(ip, cluster, service string) map[string]string {
		return map[string]string{"AWS_INSTANCE_IPV4": ip, "ECS_CLUSTER_NAME": cluster, "ECS_SERVICE_NAME": service}
	}
	for _, id := range []string{"srv-a", "srv-b", "srv-c", "srv-d"} {
		e.api.addService("ns-1", id, id, map[string]string{"METRICS_PORT": "3000"})
	}
	// An ECS service registered in two services (two service registries), its tasks one each.
	e.api.addInstance("srv-a", "task-1", attrs("10.0.0.1", "apps", "web"), types.HealthStatusHealthy)
	e.api.addInstance("srv-b", "task-1", attrs("10.0.0.1", "apps", "web"), types.HealthStatusHealthy)
	e.api.addInstance("srv-b", "task-2", attrs("10.0.0.2", "apps", "web"), types.HealthStatusHealthy)
	e.api.addInstance("srv-c", "task-3", attrs("10.0.0.3", "apps", "api"), types.HealthStatusHealthy)
	e.api.addInstance("srv-d", "host-1", map[string]string{"AWS_INSTANCE_IPV4": "10.0.0.4"}, types.HealthStatusHealthy) // not registered by ECS

	require.Empty(t, e.src.ServicesOfECSService("apps", "web"), "nothing discovered yet")
	_, err := e.src.Discover(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"srv-a", "srv-b"}, e.src.ServicesOfECSService("apps", "web"))
	require.Equal(t, []string{"srv-c"}, e.src.ServicesOfECSService("apps", "api"))
	require.Empty(t, e.src.ServicesOfECSService("other", "web"), "another cluster's service of that name")
	require.Empty(t, e.src.ServicesOfECSService("apps", ""))

	// A read of one service (a Cloud Map event) adds what its instances name.
	e.api.addInstance("srv-d", "task-4", attrs("10.0.0.5", "apps", "worker"), types.HealthStatusHealthy)
	require.Empty(t, e.src.ServicesOfECSService("apps", "worker"))
	_, err = e.src.RefreshService(ctx, "srv-d")
	require.NoError(t, err)
	require.Equal(t, []string{"srv-d"}, e.src.ServicesOfECSService("apps", "worker"))

	// A service whose instances are gone is still where its ECS service registers; one that is
	// gone is not, nor is any of a namespace no longer discovered.
	e.api.mu.Lock()
	delete(e.api.instances, "srv-c")
	e.api.mu.Unlock()
	e.api.removeService("srv-a")
	_, err = e.src.Discover(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"srv-c"}, e.src.ServicesOfECSService("apps", "api"), "scaled to zero")
	require.Equal(t, []string{"srv-b"}, e.src.ServicesOfECSService("apps", "web"))
	e.ns = []string{"none"}
	_, _ = e.src.Discover(ctx)
	for _, svc := range []string{"web", "api", "worker"} {
		require.Empty(t, e.src.ServicesOfECSService("apps", svc), svc)
	}
}
