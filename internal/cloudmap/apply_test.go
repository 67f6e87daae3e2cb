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
