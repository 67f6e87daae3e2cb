//go:build integration

package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	sdtypes "github.com/aws/aws-sdk-go-v2/service/servicediscovery/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sharedMoto serves the tests that reset it before use (the moto-facts tests); it is started by
// TestMain through StartMotoMain, which it so exercises.
var sharedMoto *Moto

var webTags = map[string]string{"ecs-sd/scrape": "true", "team": "platform"}

func TestMain(m *testing.M) {
	moto, stop, err := StartMotoMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedMoto = moto
	code := m.Run()
	stop()
	os.Exit(code)
}

func TestMotoFixtures(t *testing.T) {
	m := StartMoto(t)
	ctx := t.Context()
	nsID := m.CreatePrivateDNSNamespace(t, "prod.local", m.CreateVPC(t))
	svcID, svcARN := m.CreateService(t, nsID, "web", webTags)
	m.RegisterTasks(t, svcID, webTasks)
	m.PutParameter(t, "/ecs-sd/namespaces", "prod.local,other.local", ssmtypes.ParameterTypeStringList)

	cm := m.CloudMapClient(t)
	t.Run("service", func(t *testing.T) {
		out, err := cm.GetService(ctx, &servicediscovery.GetServiceInput{Id: &svcID})
		require.NoError(t, err)
		assert.Equal(t, nsID, aws.ToString(out.Service.NamespaceId))
		require.NotNil(t, out.Service.DnsConfig)
		assert.Equal(t, sdtypes.RoutingPolicyWeighted, out.Service.DnsConfig.RoutingPolicy)
		assert.Equal(t, []sdtypes.DnsRecord{{Type: sdtypes.RecordTypeA, TTL: aws.Int64(10)}},
			out.Service.DnsConfig.DnsRecords)
		require.NotNil(t, out.Service.HealthCheckCustomConfig)

		tags, err := cm.ListTagsForResource(ctx, &servicediscovery.ListTagsForResourceInput{ResourceARN: &svcARN})
		require.NoError(t, err)
		assert.Equal(t, cloudMapTags(webTags), tags.Tags)
	})
	t.Run("ListInstances", func(t *testing.T) {
		out, err := cm.ListInstances(ctx, &servicediscovery.ListInstancesInput{ServiceId: &svcID})
		require.NoError(t, err)
		got := map[string]map[string]string{}
		for _, inst := range out.Instances {
			got[aws.ToString(inst.Id)] = inst.Attributes
		}
		assert.Equal(t, attributesByID(webTasks), got)
	})
	t.Run("DiscoverInstances", func(t *testing.T) {
		assert.Equal(t, attributesByID(webTasks), discover(t, cm, "prod.local", "web", sdtypes.HealthStatusFilterAll))
	})
	t.Run("SSM", func(t *testing.T) {
		out, err := ssm.NewFromConfig(m.Config(t)).GetParameter(ctx,
			&ssm.GetParameterInput{Name: aws.String("/ecs-sd/namespaces")})
		require.NoError(t, err)
		assert.Equal(t, "prod.local,other.local", aws.ToString(out.Parameter.Value))
		assert.Equal(t, ssmtypes.ParameterTypeStringList, out.Parameter.Type)
	})
	t.Run("SetHealth", func(t *testing.T) {
		m.SetHealth(t, svcID, "task2", false)
		assert.Equal(t, attributesByID(webTasks[1:2]),
			discover(t, cm, "prod.local", "web", sdtypes.HealthStatusFilterUnhealthy))
		m.SetHealth(t, svcID, "task2", true)
		assert.Len(t, discover(t, cm, "prod.local", "web", sdtypes.HealthStatusFilterHealthy), 3)
	})
	t.Run("DeregisterTask", func(t *testing.T) {
		m.DeregisterTask(t, svcID, "task3")
		assert.Equal(t, attributesByID(webTasks[:2]), discover(t, cm, "prod.local", "web", sdtypes.HealthStatusFilterAll))
	})
	t.Run("delete and reset", func(t *testing.T) {
		httpID := m.CreateHTTPNamespace(t, "api")
		httpSvc, _ := m.CreateService(t, httpID, "api", nil)
		out, err := cm.GetService(ctx, &servicediscovery.GetServiceInput{Id: &httpSvc})
		require.NoError(t, err)
		assert.Nil(t, out.Service.DnsConfig, "HTTP namespace services have no DNS config")
		m.DeleteService(t, httpSvc)
		m.DeleteNamespace(t, httpID)
		m.DeleteParameter(t, "/ecs-sd/namespaces")
		assert.Equal(t, []string{nsID}, namespaceIDs(t, cm))

		m.Reset(t)
		assert.Empty(t, namespaceIDs(t, cm))
	})
}

func TestRegisterTasksMany(t *testing.T) {
	m := sharedMoto
	m.Reset(t)
	nsID := m.CreateHTTPNamespace(t, "big")
	svcID, _ := m.CreateService(t, nsID, "big", nil)
	tasks := make([]Task, 300)
	for i := range tasks {
		tasks[i] = Task{ID: fmt.Sprintf("t%04d", i), IPv4: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), Port: 9100}
	}
	m.RegisterTasks(t, svcID, tasks)
	out, err := m.CloudMapClient(t).ListInstances(t.Context(), &servicediscovery.ListInstancesInput{ServiceId: &svcID})
	require.NoError(t, err)
	assert.Len(t, out.Instances, len(tasks))
}

func TestProxy(t *testing.T) {
	m := StartMoto(t)
	p := NewProxy(t, m.URL)
	ctx := t.Context()
	cfg := p.Config(t)
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	cm := NewCloudMapClient(cfg)
	ssmc := ssm.NewFromConfig(cfg)

	t.Run("forwards and counts", func(t *testing.T) {
		// Fixtures written through the proxy arrive at moto intact.
		_, err := ssmc.PutParameter(ctx, &ssm.PutParameterInput{
			Name: aws.String("/p"), Value: aws.String("a,b"), Type: ssmtypes.ParameterTypeStringList,
		})
		require.NoError(t, err)
		direct, err := ssm.NewFromConfig(m.Config(t)).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/p")})
		require.NoError(t, err)
		assert.Equal(t, "a,b", aws.ToString(direct.Parameter.Value))

		nsID := m.CreateHTTPNamespace(t, "ns")
		m.CreateService(t, nsID, "svc", nil)
		for range 2 {
			_, err = cm.ListNamespaces(ctx, &servicediscovery.ListNamespacesInput{})
			require.NoError(t, err)
		}
		_, err = cm.DiscoverInstances(ctx, &servicediscovery.DiscoverInstancesInput{
			NamespaceName: aws.String("ns"), ServiceName: aws.String("svc"),
		})
		require.NoError(t, err)
		_, err = ec2.NewFromConfig(cfg).DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"PutParameter": 1, "ListNamespaces": 2, "DiscoverInstances": 1, "DescribeVpcs": 1},
			p.Calls())
		p.ResetCalls()
		assert.Empty(t, p.Calls())
	})
	t.Run("injects JSON faults", func(t *testing.T) {
		p.FailWhen(func(op string, body []byte) bool {
			return op == "GetParameter" && strings.Contains(string(body), `"/p"`)
		}, "AccessDeniedException")
		defer p.ClearFaults()
		_, err := ssmc.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/p")})
		assertInjected(t, err, "AccessDeniedException")
		_, err = cm.ListNamespaces(ctx, &servicediscovery.ListNamespacesInput{})
		require.NoError(t, err, "other operations pass")
		assert.Equal(t, map[string]int{"GetParameter": 1, "ListNamespaces": 1}, p.Calls())
	})
	t.Run("injects query faults", func(t *testing.T) {
		p.FailWhen(func(op string, _ []byte) bool { return op == "DescribeVpcs" }, "UnauthorizedOperation")
		defer p.ClearFaults()
		_, err := ec2.NewFromConfig(cfg).DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
		assertInjected(t, err, "UnauthorizedOperation")
	})
	t.Run("clears faults", func(t *testing.T) {
		_, err := ssmc.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/p")})
		require.NoError(t, err)
	})
	t.Run("answers with an HTML error page", func(t *testing.T) {
		p.Inject(func(r Request) bool { return r.Op == "ListNamespaces" }, HTMLError(http.StatusBadGateway))
		defer p.ClearFaults()
		_, err := cm.ListNamespaces(ctx, &servicediscovery.ListNamespacesInput{})
		var status interface{ HTTPStatusCode() int }
		require.ErrorAs(t, err, &status)
		assert.Equal(t, http.StatusBadGateway, status.HTTPStatusCode())
		assert.ErrorContains(t, err, "invalid character '<'")
	})
	t.Run("resets connections", func(t *testing.T) {
		p.Inject(func(r Request) bool { return r.Op == "ListNamespaces" }, ResetConnection())
		defer p.ClearFaults()
		_, err := cm.ListNamespaces(ctx, &servicediscovery.ListNamespacesInput{})
		assert.ErrorContains(t, err, "connection reset by peer")
	})
	t.Run("holds requests", func(t *testing.T) {
		p.Inject(func(r Request) bool { return r.Op == "ListNamespaces" }, Hold())
		// A client that gives up ends the hold.
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := cm.ListNamespaces(short, &servicediscovery.ListNamespacesInput{})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Eventually(t, func() bool { return p.Held() == 0 }, 5*time.Second, 10*time.Millisecond)
		// ClearFaults forwards what is held.
		done := make(chan error, 1)
		go func() {
			_, err := cm.ListNamespaces(ctx, &servicediscovery.ListNamespacesInput{})
			done <- err
		}()
		require.Eventually(t, func() bool { return p.Held() == 1 }, 5*time.Second, 10*time.Millisecond)
		p.ClearFaults()
		require.NoError(t, <-done)
	})
	t.Run("matches the attempt number", func(t *testing.T) {
		p.ResetCalls()
		p.Inject(func(r Request) bool { return r.Op == "ListNamespaces" && r.Attempt == 1 }, AWSError("ThrottlingException"))
		defer p.ClearFaults()
		_, err := NewCloudMapClient(p.Config(t)).ListNamespaces(ctx, &servicediscovery.ListNamespacesInput{})
		require.NoError(t, err, "the retry passes")
		assert.Equal(t, map[string]int{"ListNamespaces": 2}, p.Calls())
	})
	t.Run("rewrites responses", func(t *testing.T) {
		p.SetResponseHook(func(op string, _, body []byte) []byte {
			if op != "GetParameter" {
				return body
			}
			return []byte(strings.Replace(string(body), `"a,b"`, `"a,b,longer-value"`, 1))
		})
		defer p.SetResponseHook(nil)
		out, err := ssmc.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/p")})
		require.NoError(t, err)
		assert.Equal(t, "a,b,longer-value", aws.ToString(out.Parameter.Value))
	})
}

func TestPrometheusFileSD(t *testing.T) {
	// file_sd paths are relative to the configuration file, which lives in Prometheus.Dir.
	prom := StartPrometheus(t, `
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: files
    file_sd_configs:
      - files: ["targets/*.json"]
        refresh_interval: 1s
`)
	target := fmt.Sprintf("127.0.0.1:%d", prom.Port)
	require.NoError(t, os.MkdirAll(filepath.Join(prom.Dir, "targets"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(prom.Dir, "targets", "self.json"),
		fmt.Appendf(nil, `[{"targets":[%q],"labels":{"team":"platform"}}]`, target), 0o644))

	Eventually(t, 15*time.Second, 200*time.Millisecond, func() (bool, string) {
		targets, err := prom.ActiveTargets(t.Context())
		if err != nil {
			return false, err.Error()
		}
		if len(targets) != 1 || targets[0].Health != "up" {
			return false, fmt.Sprintf("active targets: %+v", targets)
		}
		return true, ""
	})
	targets, err := prom.ActiveTargets(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "files", targets[0].ScrapePool)
	assert.Equal(t, "http://"+target+"/metrics", targets[0].ScrapeURL)
	assert.Equal(t, "platform", targets[0].Labels["team"])
	assert.Equal(t, target, targets[0].DiscoveredLabels["__address__"])
	assert.Contains(t, targets[0].DiscoveredLabels["__meta_filepath"], "self.json")

	samples, err := prom.Query(t.Context(), `up{job="files"}`)
	require.NoError(t, err)
	require.Len(t, samples, 1)
	assert.Equal(t, 1.0, samples[0].Value)
	assert.Equal(t, target, samples[0].Metric["instance"])
	scalar, err := prom.Query(t.Context(), `scalar(vector(2))`)
	require.NoError(t, err)
	assert.Equal(t, []Sample{{Metric: map[string]string{}, Value: 2}}, scalar)
	_, err = prom.Query(t.Context(), `up{`)
	assert.ErrorContains(t, err, "bad_data")

	require.NoError(t, prom.Reload(t.Context()))
}

// discover returns the instances DiscoverInstances returns, as id -> attributes.
func discover(t *testing.T, cm *servicediscovery.Client, namespace, service string,
	health sdtypes.HealthStatusFilter,
) map[string]map[string]string {
	t.Helper()
	out, err := cm.DiscoverInstances(t.Context(), &servicediscovery.DiscoverInstancesInput{
		NamespaceName: &namespace, ServiceName: &service, HealthStatus: health,
	})
	require.NoError(t, err)
	got := map[string]map[string]string{}
	for _, inst := range out.Instances {
		got[aws.ToString(inst.InstanceId)] = inst.Attributes
	}
	return got
}

func attributesByID(tasks []Task) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, task := range tasks {
		out[task.ID] = task.Attributes()
	}
	return out
}

func namespaceIDs(t *testing.T, cm *servicediscovery.Client) []string {
	t.Helper()
	out, err := cm.ListNamespaces(t.Context(), &servicediscovery.ListNamespacesInput{})
	require.NoError(t, err)
	ids := []string{}
	for _, ns := range out.Namespaces {
		ids = append(ids, aws.ToString(ns.Id))
	}
	slices.Sort(ids)
	return ids
}

// assertErrorCode asserts that err is an AWS API error with the code.
func assertErrorCode(t *testing.T, err error, code string) {
	t.Helper()
	_ = requireAPIError(t, err, code)
}

// requireAPIError asserts that err is an AWS API error with the code and returns it.
func requireAPIError(t *testing.T, err error, code string) smithy.APIError {
	t.Helper()
	var apiErr smithy.APIError
	require.True(t, errors.As(err, &apiErr), "want an API error %s, got %v", code, err)
	assert.Equal(t, code, apiErr.ErrorCode())
	return apiErr
}

// assertInjected asserts that err is the proxy's injected fault with the code.
func assertInjected(t *testing.T, err error, code string) {
	t.Helper()
	assert.Equal(t, faultMessage, requireAPIError(t, err, code).ErrorMessage())
}
