//go:build integration

package testenv

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPatchedMotoECS pins down what moto_ecs.py makes of moto's ECS: each assertion is one of
// its patches, so that a moto upgrade that breaks one is noticed here first.
func TestPatchedMotoECS(t *testing.T) {
	t.Parallel()
	m := StartPatchedMoto(t)
	f := m.ECS(t)
	client := f.Client()
	n := f.CreateNetwork(t, 1)
	f.CreateCluster(t, "prod", nil)
	f.CreateCluster(t, "prod-2", nil)
	nodes := []ContainerInstance{f.AddContainerInstance(t, "prod", n), f.AddContainerInstance(t, "prod", n)}
	bridge := f.RegisterTaskDefinition(t, &awsecs.RegisterTaskDefinitionInput{
		Family: aws.String("bridge"), NetworkMode: ecstypes.NetworkModeBridge,
		ContainerDefinitions: []ecstypes.ContainerDefinition{
			{Name: aws.String("app"), Image: aws.String("app"), Memory: aws.Int32(64), PortMappings: []ecstypes.PortMapping{
				{ContainerPort: aws.Int32(8080), HostPort: aws.Int32(0), Name: aws.String("metrics")}, {ContainerPort: aws.Int32(8081)},
			}},
			{Name: aws.String("envoy"), Image: aws.String("envoy"), Memory: aws.Int32(32), PortMappings: []ecstypes.PortMapping{
				{ContainerPort: aws.Int32(9901), HostPort: aws.Int32(19901)},
			}},
		},
	})
	vpc := f.RegisterTaskDefinition(t, &awsecs.RegisterTaskDefinitionInput{
		Family: aws.String("vpc"), NetworkMode: ecstypes.NetworkModeAwsvpc, RequiresCompatibilities: []ecstypes.Compatibility{ecstypes.CompatibilityFargate},
		Cpu: aws.String("256"), Memory: aws.String("512"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("app"), Memory: aws.Int32(64)}},
	})

	// A static host port spreads tasks over instances; StartTask places where it is told and
	// gives launch type EC2 (patch 4).
	onFirst := f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String("prod"), TaskDefinition: &bridge, Count: aws.Int32(2), Group: aws.String("service:web")})
	onSecond := f.StartTask(t, &awsecs.StartTaskInput{Cluster: aws.String("prod"), TaskDefinition: &bridge, ContainerInstances: []string{nodes[1].ARN}})
	// Dynamic host ports reserve nothing: three tasks fit on one instance (patch 3).
	dynamic := f.RegisterTaskDefinition(t, &awsecs.RegisterTaskDefinitionInput{
		Family: aws.String("dynamic"), ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("app"),
			Memory: aws.Int32(64), PortMappings: []ecstypes.PortMapping{{ContainerPort: aws.Int32(8080), HostPort: aws.Int32(0)}}}},
	})
	f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String("prod"), TaskDefinition: &dynamic, Count: aws.Int32(3)})
	fargate := f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String("prod-2"), TaskDefinition: &vpc, LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: n.AWSVPC()})

	hostPorts := map[string][]int32{}
	for _, task := range append(onFirst, onSecond...) {
		arn := aws.ToString(task.TaskArn)
		got := f.DescribeTask(t, "prod", arn) // aws-sdk-go-v2 decodes it (patch 1)
		assert.Equal(t, "RUNNING", aws.ToString(got.LastStatus), "tasks stay RUNNING (patch 5)")
		assert.Equal(t, ecstypes.LaunchTypeEc2, got.LaunchType, "patch 4")
		assert.Equal(t, n.AvailabilityZone, aws.ToString(got.AvailabilityZone), "patch 4")
		require.Len(t, got.Containers, 2, "every container (patch 1)")
		for _, c := range got.Containers {
			assert.Equal(t, arn, aws.ToString(c.TaskArn), "patch 1")
		}
		app, envoy := got.Containers[0], got.Containers[1]
		require.Len(t, app.NetworkBindings, 2, "patch 2")
		assert.Equal(t, int32(19901), aws.ToInt32(envoy.NetworkBindings[0].HostPort), "a static host port is kept")
		ci := aws.ToString(got.ContainerInstanceArn)
		hostPorts[ci] = append(hostPorts[ci], aws.ToInt32(app.NetworkBindings[0].HostPort))
	}
	assert.Equal(t, map[string][]int32{nodes[0].ARN: {32768}, nodes[1].ARN: {32768, 32770}}, hostPorts,
		"dynamic ports from 32768 up, distinct per instance (patch 2)")

	got := f.DescribeTask(t, "prod-2", aws.ToString(fargate[0].TaskArn))
	assert.Equal(t, ecstypes.LaunchTypeFargate, got.LaunchType)
	assert.NotEmpty(t, TaskIP(got))
	assert.Equal(t, TaskIP(got), aws.ToString(got.Containers[0].NetworkInterfaces[0].PrivateIpv4Address), "patch 2")

	// ListTasks: the exact cluster, in pages (patch 6).
	page, err := client.ListTasks(t.Context(), &awsecs.ListTasksInput{Cluster: aws.String("prod"), MaxResults: aws.Int32(4)})
	require.NoError(t, err)
	assert.Len(t, page.TaskArns, 4)
	require.NotNil(t, page.NextToken)
	page, err = client.ListTasks(t.Context(), &awsecs.ListTasksInput{Cluster: aws.String("prod"), MaxResults: aws.Int32(4), NextToken: page.NextToken})
	require.NoError(t, err)
	assert.Len(t, page.TaskArns, 2, "prod-2's task is not prod's")
	assert.Nil(t, page.NextToken)

	// AWS's batch maxima (patch 7).
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("arn:aws:ecs:us-east-1:123456789012:task/prod/%d", i)
	}
	_, err = client.DescribeTasks(t.Context(), &awsecs.DescribeTasksInput{Cluster: aws.String("prod"), Tasks: many})
	assertErrorCode(t, err, "InvalidParameterException")
	_, err = client.DescribeServices(t.Context(), &awsecs.DescribeServicesInput{Cluster: aws.String("prod"), Services: many[:11]})
	assertErrorCode(t, err, "InvalidParameterException")

	// A stopped task leaves the RUNNING list.
	f.StopTask(t, "prod", aws.ToString(onSecond[0].TaskArn))
	running, err := client.ListTasks(t.Context(), &awsecs.ListTasksInput{Cluster: aws.String("prod"), DesiredStatus: ecstypes.DesiredStatusRunning})
	require.NoError(t, err)
	assert.Len(t, running.TaskArns, 5)
}
