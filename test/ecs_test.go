//go:build integration

package test

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// TestCloudMapAndECSOverlap runs ecs-sd --once with both sources over an ECS service whose first
// task ECS also registered in Cloud Map: that endpoint is in the file once, with the metadata of
// both sources; the other task, which only the ECS API sees, is there too.
func TestCloudMapAndECSOverlap(t *testing.T) {
	t.Parallel()
	m := testenv.StartPatchedMoto(t)
	f, def, network := shop(t, m)
	f.CreateService(t, "shop", "cart", def, nil)
	tasks := runCart(t, f, def, network, 2)
	registered, ecsOnly := tasks[0], tasks[1]

	// ECS registers a task in Cloud Map with its ENI address (read from DescribeTasks: moto's are random).
	ns := m.CreateHTTPNamespace(t, "shop.local")
	svc, _ := m.CreateService(t, ns, "cart", map[string]string{"METRICS_PORT": "8080"})
	taskARN := aws.ToString(registered.TaskArn)
	m.RegisterTask(t, svc, testenv.Task{ID: path.Base(taskARN), IPv4: testenv.TaskIP(registered), Port: 8080,
		Cluster: "shop", Service: "cart", Family: "cart", AZ: "us-east-1a"})

	dir := t.TempDir()
	code, _, stderr := run(t, m.Env(), "--once", "--output.dir", dir, "--no-output.http-sd", "--no-prometheus.config-sync",
		"--cloudmap.namespace", "shop.local", "--ecs.cluster", "shop")
	require.Equal(t, 0, code, stderr)
	data, err := os.ReadFile(filepath.Join(dir, "ecs-services.json"))
	require.NoError(t, err)
	groups, err := targets.Unmarshal(data)
	require.NoError(t, err)

	byAddress := map[string]model.LabelSet{}
	for _, g := range groups {
		byAddress[g.Address()] = g.Labels
	}
	both := testenv.TaskIP(registered) + ":8080"
	require.Len(t, byAddress, 2, string(data))
	require.Len(t, groups, 2, "one group per endpoint")
	for k, v := range map[model.LabelName]model.LabelValue{
		targets.LabelSource: ",cloudmap,ecs,", "cluster": "shop", "service": "cart", "taskdefinition": "cart",
		"__meta_cloudmap_service_name": "cart", "__meta_ecs_task_arn": model.LabelValue(taskARN), "__meta_ecs_container_name": "app",
	} {
		require.Equal(t, v, byAddress[both][k], k)
	}
	only := byAddress[testenv.TaskIP(ecsOnly)+":8080"]
	require.Equal(t, model.LabelValue(",ecs,"), only[targets.LabelSource])
	require.Equal(t, model.LabelValue(aws.ToString(ecsOnly.TaskArn)), only["__meta_ecs_task_arn"])
}

// shop creates on m the ECS cluster "shop", a network, and the task definition "cart" (one
// container whose docker label marks port 8080); it returns the fixtures, the definition's ARN
// and the network.
func shop(t *testing.T, m *testenv.Moto) (*testenv.ECSFixtures, string, testenv.Network) {
	t.Helper()
	f := m.ECS(t)
	network := f.CreateNetwork(t, 1)
	f.CreateCluster(t, "shop", nil)
	def := f.RegisterTaskDefinition(t, &awsecs.RegisterTaskDefinitionInput{
		Family: aws.String("cart"), NetworkMode: ecstypes.NetworkModeAwsvpc,
		RequiresCompatibilities: []ecstypes.Compatibility{ecstypes.CompatibilityFargate}, Cpu: aws.String("256"), Memory: aws.String("512"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{
			Name: aws.String("app"), Image: aws.String("cart:1"), Memory: aws.Int32(64),
			DockerLabels: map[string]string{"PROMETHEUS_EXPORTER_PORT": "8080"},
			PortMappings: []ecstypes.PortMapping{{ContainerPort: aws.Int32(8080)}},
		}},
	})
	return f, def, network
}

// runCart runs n tasks of the cart service in the shop cluster and returns them as DescribeTasks
// has them (with their ENI addresses).
func runCart(t *testing.T, f *testenv.ECSFixtures, def string, network testenv.Network, n int32) []ecstypes.Task {
	t.Helper()
	tasks := f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String("shop"), TaskDefinition: &def, Count: aws.Int32(n),
		LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: network.AWSVPC(), Group: aws.String("service:cart")})
	out := make([]ecstypes.Task, len(tasks))
	for i, task := range tasks {
		out[i] = f.DescribeTask(t, "shop", aws.ToString(task.TaskArn))
	}
	return out
}

// TestECSChangeWhileCloudMapHangs: while a Cloud Map call hangs (for its call timeout, a minute,
// far beyond the refresh interval), a new ECS task reaches the file and http_sd without waiting
// for it, beside Cloud Map's last targets.
func TestECSChangeWhileCloudMapHangs(t *testing.T) {
	t.Parallel()
	m := testenv.StartPatchedMoto(t)
	f, def, network := shop(t, m)
	first := runCart(t, f, def, network, 1)[0]
	ns := m.CreateHTTPNamespace(t, "web.local")
	svc, _ := m.CreateService(t, ns, "web", map[string]string{"METRICS_PORT": "3000"})
	m.RegisterTask(t, svc, testenv.Task{ID: "web-1", IPv4: "10.0.9.1", Cluster: "web", Service: "web", Family: "web"})
	proxy := testenv.NewProxy(t, m.URL)
	d := startDaemon(t, testenv.AWSEnv(proxy.URL), "--refresh.interval=1s", "--aws.attempt-timeout=1m", "--aws.call-timeout=1m",
		"--no-prometheus.config-sync", "--cloudmap.namespace", "web.local", "--ecs.cluster", "shop")
	want := []string{"10.0.9.1:3000", testenv.TaskIP(first) + ":8080"}
	waitOutputs(t, d, want, 20*time.Second)

	proxy.Inject(func(r testenv.Request) bool { return r.Op == "DiscoverInstances" }, testenv.Hold())
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() (bool, string) {
		return proxy.Held() > 0, "no DiscoverInstances held"
	})
	second := runCart(t, f, def, network, 1)[0]
	waitOutputs(t, d, append(want, testenv.TaskIP(second)+":8080"), 30*time.Second)
	require.Positive(t, proxy.Held(), "the Cloud Map discovery still hangs")
}

// waitOutputs waits until the daemon's file and http_sd answer both hold exactly want.
func waitOutputs(t testing.TB, d *daemon, want []string, within time.Duration) {
	t.Helper()
	testenv.Eventually(t, within, 50*time.Millisecond, func() (bool, string) {
		file, httpSD, _ := d.outputs(t)
		return sameElements(want, file) && sameElements(want, httpSD), fmt.Sprintf("want %v: file %v, http_sd %v", want, file, httpSD)
	})
}

func sameElements(a, b []string) bool {
	return len(a) == len(b) && hasAll(a, b)
}
