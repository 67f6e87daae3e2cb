//go:build integration

package test

import (
	"os"
	"path"
	"path/filepath"
	"testing"

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
	f.CreateService(t, "shop", "cart", def, nil)
	tasks := f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String("shop"), TaskDefinition: &def, Count: aws.Int32(2),
		LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: network.AWSVPC(), Group: aws.String("service:cart")})
	registered := f.DescribeTask(t, "shop", aws.ToString(tasks[0].TaskArn))
	ecsOnly := f.DescribeTask(t, "shop", aws.ToString(tasks[1].TaskArn))

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
