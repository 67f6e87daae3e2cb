//go:build integration

package testenv

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	sdtypes "github.com/aws/aws-sdk-go-v2/service/servicediscovery/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMotoFacts pins down how moto 5.2.1's Cloud Map differs from AWS, so that product tests rely
// on the right behaviour and a moto upgrade that changes it is noticed here first.
func TestMotoFacts(t *testing.T) {
	m := sharedMoto
	cm := m.CloudMapClient(t)

	t.Run("ListNamespaces properties", func(t *testing.T) {
		m.Reset(t)
		ids := map[string]string{
			"HTTP":        m.CreateHTTPNamespace(t, "http.example"),
			"DNS_PRIVATE": m.CreatePrivateDNSNamespace(t, "private.example", ""),
			"DNS_PUBLIC":  m.CreatePublicDNSNamespace(t, "public.example"),
		}
		out, err := cm.ListNamespaces(t.Context(), &servicediscovery.ListNamespacesInput{})
		require.NoError(t, err)
		require.Len(t, out.Namespaces, 3)
		for _, ns := range out.Namespaces {
			id := aws.ToString(ns.Id)
			require.NotNil(t, ns.Properties, id)
			switch ns.Type {
			case sdtypes.NamespaceTypeHttp:
				assert.Equal(t, ids["HTTP"], id)
				assert.Equal(t, "http.example", aws.ToString(ns.Properties.HttpProperties.HttpName))
				require.NotNil(t, ns.Properties.DnsProperties, "moto sends DnsProperties {SOA: {}}")
				assert.Nil(t, ns.Properties.DnsProperties.HostedZoneId)
			default:
				assert.Equal(t, ids[string(ns.Type)], id)
				// AWS sets HttpName (= the namespace name) for DNS namespaces too; moto leaves it out.
				require.NotNil(t, ns.Properties.HttpProperties, "moto sends HttpProperties {}")
				assert.Nil(t, ns.Properties.HttpProperties.HttpName)
				assert.NotEmpty(t, aws.ToString(ns.Properties.DnsProperties.HostedZoneId))
			}
		}
	})

	t.Run("one private namespace per VPC; same name in two VPCs", func(t *testing.T) {
		m.Reset(t)
		vpc := m.CreateVPC(t)
		first := m.CreatePrivateDNSNamespace(t, "dup.local", vpc)
		_, err := cm.CreatePrivateDnsNamespace(t.Context(), &servicediscovery.CreatePrivateDnsNamespaceInput{
			Name: aws.String("other.local"), Vpc: &vpc,
		})
		assertErrorCode(t, err, "ConflictingDomainExists")

		second := m.CreatePrivateDNSNamespace(t, "dup.local", "") // a new VPC
		assert.NotEqual(t, first, second)
		svc1, _ := m.CreateService(t, first, "both", nil)
		svc2, _ := m.CreateService(t, second, "both", nil)
		only2, _ := m.CreateService(t, second, "only-second", nil)
		m.RegisterTask(t, svc1, Task{ID: "in-first", IPv4: "10.0.0.1"})
		m.RegisterTask(t, svc2, Task{ID: "in-second", IPv4: "10.0.0.2"})
		m.RegisterTask(t, only2, Task{ID: "only-second", IPv4: "10.0.0.3"})

		// DiscoverInstances resolves the name to the first namespace created with it.
		got := discover(t, cm, "dup.local", "both", sdtypes.HealthStatusFilterAll)
		assert.Contains(t, got, "in-first")
		assert.NotContains(t, got, "in-second")
		_, err = cm.DiscoverInstances(t.Context(), &servicediscovery.DiscoverInstancesInput{
			NamespaceName: aws.String("dup.local"), ServiceName: aws.String("only-second"),
		})
		assertErrorCode(t, err, "ServiceNotFound")
	})

	t.Run("ListServices ignores the namespace filter", func(t *testing.T) {
		m.Reset(t)
		a := m.CreateHTTPNamespace(t, "a")
		b := m.CreateHTTPNamespace(t, "b")
		m.CreateService(t, a, "in-a", nil)
		m.CreateService(t, b, "in-b", nil)
		out, err := cm.ListServices(t.Context(), &servicediscovery.ListServicesInput{
			Filters: []sdtypes.ServiceFilter{{
				Name: sdtypes.ServiceFilterNameNamespaceId, Values: []string{a}, Condition: sdtypes.FilterConditionEq,
			}},
			MaxResults: aws.Int32(1),
		})
		require.NoError(t, err)
		var names []string
		for _, s := range out.Services {
			names = append(names, aws.ToString(s.Name))
		}
		assert.ElementsMatch(t, []string{"in-a", "in-b"}, names, "filter and MaxResults are ignored")
		assert.Nil(t, out.NextToken)
	})

	t.Run("health status", func(t *testing.T) {
		m.Reset(t)
		ns := m.CreateHTTPNamespace(t, "health")
		custom, _ := m.CreateService(t, ns, "custom", nil)
		bare, _ := m.CreateServiceFrom(t, &servicediscovery.CreateServiceInput{
			Name: aws.String("bare"), NamespaceId: &ns,
		})
		for _, svc := range []string{custom, bare} {
			m.RegisterTasks(t, svc, []Task{{ID: "t1", IPv4: "10.0.0.1"}, {ID: "t2", IPv4: "10.0.0.2"}})
		}
		// Every instance starts HEALTHY, with or without a health check (AWS: UNKNOWN without).
		want := map[string]sdtypes.HealthStatus{"t1": sdtypes.HealthStatusHealthy, "t2": sdtypes.HealthStatusHealthy}
		assert.Equal(t, want, healthStatus(t, cm, custom))
		assert.Equal(t, want, healthStatus(t, cm, bare))
		assert.Equal(t, want, discoverHealth(t, cm, "health", "bare", sdtypes.HealthStatusFilterAll))

		revision := discoverRevision(t, cm, "health", "custom")
		m.SetHealth(t, custom, "t2", false)
		want["t2"] = sdtypes.HealthStatusUnhealthy
		assert.Equal(t, want, healthStatus(t, cm, custom))
		assert.Equal(t, want, discoverHealth(t, cm, "health", "custom", sdtypes.HealthStatusFilterAll))
		assert.Equal(t, map[string]sdtypes.HealthStatus{"t1": sdtypes.HealthStatusHealthy},
			discoverHealth(t, cm, "health", "custom", sdtypes.HealthStatusFilterHealthy))
		assert.Equal(t, revision, discoverRevision(t, cm, "health", "custom"), "health does not change the revision")

		m.SetHealth(t, custom, "t1", false)
		assert.Len(t, discoverHealth(t, cm, "health", "custom", sdtypes.HealthStatusFilterHealthyOrElseAll), 2,
			"HEALTHY_OR_ELSE_ALL returns all when none is healthy")

		// moto accepts a custom status for a service without HealthCheckCustomConfig (AWS refuses).
		m.SetHealth(t, bare, "t1", false)
		assert.Equal(t, sdtypes.HealthStatusUnhealthy, healthStatus(t, cm, bare)["t1"])
	})

	t.Run("deleted namespace", func(t *testing.T) {
		m.Reset(t)
		ns := m.CreatePrivateDNSNamespace(t, "gone.local", "")
		svc, _ := m.CreateService(t, ns, "svc", nil)
		m.RegisterTask(t, svc, Task{ID: "t1", IPv4: "10.0.0.1"})
		m.DeleteNamespace(t, ns) // AWS refuses while the namespace has services (ResourceInUse)

		_, err := cm.DiscoverInstances(t.Context(), &servicediscovery.DiscoverInstancesInput{
			NamespaceName: aws.String("gone.local"), ServiceName: aws.String("svc"),
		})
		assertErrorCode(t, err, "NamespaceNotFound")
		out, err := cm.ListServices(t.Context(), &servicediscovery.ListServicesInput{})
		require.NoError(t, err)
		require.Len(t, out.Services, 1, "the service of a deleted namespace is still listed")
		got, err := cm.GetService(t.Context(), &servicediscovery.GetServiceInput{Id: &svc})
		require.NoError(t, err)
		assert.Equal(t, ns, aws.ToString(got.Service.NamespaceId))
		list, err := cm.ListInstances(t.Context(), &servicediscovery.ListInstancesInput{ServiceId: &svc})
		require.NoError(t, err)
		assert.Len(t, list.Instances, 1, "and so are its instances")
	})

	t.Run("InstancesRevision is a sum that can repeat", func(t *testing.T) {
		m.Reset(t)
		ns := m.CreateHTTPNamespace(t, "rev")
		svc, _ := m.CreateService(t, ns, "svc", nil)
		m.RegisterTasks(t, svc, []Task{{ID: "a"}, {ID: "b"}})
		before := discoverRevision(t, cm, "rev", "svc")
		m.DeregisterTask(t, svc, "b")
		assert.Less(t, discoverRevision(t, cm, "rev", "svc"), before, "a deregistration lowers it")
		m.RegisterTask(t, svc, Task{ID: "c"})
		assert.Equal(t, before, discoverRevision(t, cm, "rev", "svc"),
			"replacing b by c gives the same revision as before: do not cache on it alone")
	})

	t.Run("re-registering duplicates", func(t *testing.T) {
		m.Reset(t)
		ns := m.CreateHTTPNamespace(t, "dup")
		svc, _ := m.CreateService(t, ns, "svc", nil)
		m.RegisterTask(t, svc, Task{ID: "a", IPv4: "10.0.0.1"})
		m.RegisterTask(t, svc, Task{ID: "a", IPv4: "10.0.0.2"})
		out, err := cm.ListInstances(t.Context(), &servicediscovery.ListInstancesInput{ServiceId: &svc})
		require.NoError(t, err)
		assert.Len(t, out.Instances, 2)
		m.DeregisterTask(t, svc, "a")
		out, err = cm.ListInstances(t.Context(), &servicediscovery.ListInstancesInput{ServiceId: &svc})
		require.NoError(t, err)
		require.Len(t, out.Instances, 1, "deregistering removes the first copy only")
		assert.Equal(t, "10.0.0.2", out.Instances[0].Attributes[AttrIPv4])
	})
}

func healthStatus(t *testing.T, cm *servicediscovery.Client, serviceID string) map[string]sdtypes.HealthStatus {
	t.Helper()
	out, err := cm.GetInstancesHealthStatus(t.Context(), &servicediscovery.GetInstancesHealthStatusInput{
		ServiceId: &serviceID,
	})
	require.NoError(t, err)
	return out.Status
}

func discoverHealth(t *testing.T, cm *servicediscovery.Client, namespace, service string,
	filter sdtypes.HealthStatusFilter,
) map[string]sdtypes.HealthStatus {
	t.Helper()
	out, err := cm.DiscoverInstances(t.Context(), &servicediscovery.DiscoverInstancesInput{
		NamespaceName: &namespace, ServiceName: &service, HealthStatus: filter,
	})
	require.NoError(t, err)
	got := map[string]sdtypes.HealthStatus{}
	for _, inst := range out.Instances {
		got[aws.ToString(inst.InstanceId)] = inst.HealthStatus
	}
	return got
}

func discoverRevision(t *testing.T, cm *servicediscovery.Client, namespace, service string) int64 {
	t.Helper()
	out, err := cm.DiscoverInstancesRevision(t.Context(), &servicediscovery.DiscoverInstancesRevisionInput{
		NamespaceName: &namespace, ServiceName: &service,
	})
	require.NoError(t, err)
	return aws.ToInt64(out.InstancesRevision)
}
