package testenv

import (
	"context"
	_ "embed" // the moto launcher
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-sd/ecs-sd/internal/harness/rig"
)

// motoECSLauncher starts moto_server with its ECS patched to answer like AWS; its docstring lists
// every patch and the gap it fills.
//
//go:embed moto_ecs.py
var motoECSLauncher []byte

// amiID is an image moto knows, for the EC2 instances behind container instances.
const amiID = "ami-12c6146b"

// StartPatchedMoto starts a fresh moto_server whose ECS is patched to answer like AWS where
// ecs-sd's tests need it (moto_ecs.py: every container with its network bindings, dynamic host
// ports, paged ListTasks, AWS's batch maxima, tasks that stay RUNNING until stopped), and stops it
// when tb ends. Everything else is moto as StartMoto runs it. It fails tb when python3 cannot run
// moto.
func StartPatchedMoto(tb testing.TB) *Moto {
	tb.Helper()
	return startForTest(tb, startPatchedMoto)
}

// StartPatchedMotoMain starts a patched moto (see StartPatchedMoto) to be shared by all tests of
// a package, from TestMain. Call stop after m.Run.
func StartPatchedMotoMain() (m *Moto, stop func(), err error) {
	return startForMain("ecs-sd-moto-ecs-", startPatchedMoto)
}

// startPatchedMoto starts moto_server as startMoto does, but through moto_ecs.py.
func startPatchedMoto(dir string) (*Moto, error) {
	spec, err := rig.MotoServer(filepath.Join(dir, "moto.log"))
	if err != nil {
		return nil, fmt.Errorf("%w; integration tests need it", err)
	}
	python, err := lookPath("python3", "the Python that runs moto_server")
	if err != nil {
		return nil, err
	}
	launcher := filepath.Join(dir, "moto_ecs.py")
	if err := os.WriteFile(launcher, motoECSLauncher, 0o600); err != nil {
		return nil, fmt.Errorf("write moto launcher: %w", err)
	}
	motoArgs := spec.Args
	spec.Name, spec.Binary = "moto_server (ECS patched)", python
	spec.Args = func(port int) []string { return append([]string{launcher}, motoArgs(port)...) }
	return newMoto(spec)
}

// ECSFixtures builds ECS clusters, container instances, task definitions, services and tasks
// on a moto, the way the AWS CLI would. Use it with StartPatchedMoto: vanilla moto's DescribeTasks
// cannot be read by aws-sdk-go-v2.
type ECSFixtures struct {
	ecs *awsecs.Client
	ec2 *ec2.Client
	m   *Moto
}

// ECS returns ECS fixtures for this moto.
func (m *Moto) ECS(tb testing.TB) *ECSFixtures {
	tb.Helper()
	cfg := m.Config(tb)
	return &ECSFixtures{ecs: awsecs.NewFromConfig(cfg), ec2: ec2.NewFromConfig(cfg), m: m}
}

// Client returns the fixtures' ECS client, for calls they do not wrap.
func (f *ECSFixtures) Client() *awsecs.Client { return f.ecs }

// ecsCall runs one fixture call with the harness's timeout and fails tb on error.
func ecsCall[T any](tb testing.TB, what string, call func(context.Context) (T, error)) T {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	out, err := call(ctx)
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	return out
}

// CreateCluster creates a cluster with tags and returns its ARN.
func (f *ECSFixtures) CreateCluster(tb testing.TB, name string, tags map[string]string) string {
	tb.Helper()
	out := ecsCall(tb, "create cluster "+name, func(ctx context.Context) (*awsecs.CreateClusterOutput, error) {
		return f.ecs.CreateCluster(ctx, &awsecs.CreateClusterInput{ClusterName: &name, Tags: ecsTags(tags)})
	})
	return aws.ToString(out.Cluster.ClusterArn)
}

// ecsTags converts a tag map to ECS tags, sorted by key.
func ecsTags(tags map[string]string) []ecstypes.Tag {
	out := make([]ecstypes.Tag, 0, len(tags))
	for _, t := range cloudMapTags(tags) { // sorted by key
		out = append(out, ecstypes.Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

// Network is a VPC with one subnet and one security group, for awsvpc tasks and EC2 instances.
type Network struct {
	VPCID, SubnetID, SecurityGroupID, AvailabilityZone string
}

// AWSVPC returns the network configuration of an awsvpc task in n.
func (n Network) AWSVPC() *ecstypes.NetworkConfiguration {
	return &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
		Subnets: []string{n.SubnetID}, SecurityGroups: []string{n.SecurityGroupID},
	}}
}

// CreateNetwork creates a VPC (DNS hostnames on, which moto needs for awsvpc tasks) with a subnet
// 10.0.<third>.0/24 in us-east-1a and a security group.
func (f *ECSFixtures) CreateNetwork(tb testing.TB, third int) Network {
	tb.Helper()
	n := Network{VPCID: f.m.CreateVPC(tb), AvailabilityZone: Region + "a"}
	subnet := ecsCall(tb, "create subnet", func(ctx context.Context) (*ec2.CreateSubnetOutput, error) {
		return f.ec2.CreateSubnet(ctx, &ec2.CreateSubnetInput{
			VpcId: &n.VPCID, CidrBlock: aws.String(fmt.Sprintf("10.0.%d.0/24", third)), AvailabilityZone: &n.AvailabilityZone,
		})
	})
	n.SubnetID = aws.ToString(subnet.Subnet.SubnetId)
	sg := ecsCall(tb, "create security group", func(ctx context.Context) (*ec2.CreateSecurityGroupOutput, error) {
		return f.ec2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
			VpcId: &n.VPCID, GroupName: aws.String("tasks-" + n.SubnetID), Description: aws.String("ecs-sd test tasks"),
		})
	})
	n.SecurityGroupID = aws.ToString(sg.GroupId)
	return n
}

// ContainerInstance is an EC2 instance registered in an ECS cluster.
type ContainerInstance struct {
	ARN, EC2InstanceID, PrivateIP string
}

// AddContainerInstance runs an EC2 instance (t3.small, tagged Name=<cluster>-node) in the
// network's subnet and registers it as a container instance of cluster.
func (f *ECSFixtures) AddContainerInstance(tb testing.TB, cluster string, n Network) ContainerInstance {
	tb.Helper()
	run := ecsCall(tb, "run instance", func(ctx context.Context) (*ec2.RunInstancesOutput, error) {
		return f.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
			ImageId: aws.String(amiID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			InstanceType: ec2types.InstanceTypeT3Small, SubnetId: &n.SubnetID,
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance,
				Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String(cluster + "-node")}}}},
		})
	})
	inst := run.Instances[0]
	doc, err := json.Marshal(map[string]string{
		"instanceId": aws.ToString(inst.InstanceId), "region": Region, "availabilityZone": n.AvailabilityZone,
	})
	check(tb, err)
	reg := ecsCall(tb, "register container instance", func(ctx context.Context) (*awsecs.RegisterContainerInstanceOutput, error) {
		return f.ecs.RegisterContainerInstance(ctx, &awsecs.RegisterContainerInstanceInput{
			Cluster: &cluster, InstanceIdentityDocument: aws.String(string(doc)),
		})
	})
	return ContainerInstance{
		ARN:           aws.ToString(reg.ContainerInstance.ContainerInstanceArn),
		EC2InstanceID: aws.ToString(inst.InstanceId),
		PrivateIP:     aws.ToString(inst.PrivateIpAddress),
	}
}

// RegisterTaskDefinition registers a task definition and returns its ARN. moto needs
// container-level memory in every container definition.
func (f *ECSFixtures) RegisterTaskDefinition(tb testing.TB, in *awsecs.RegisterTaskDefinitionInput) string {
	tb.Helper()
	out := ecsCall(tb, "register task definition "+aws.ToString(in.Family), func(ctx context.Context) (*awsecs.RegisterTaskDefinitionOutput, error) {
		return f.ecs.RegisterTaskDefinition(ctx, in)
	})
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn)
}

// CreateService creates an ECS service with tags. moto starts no task for it: run its tasks with
// RunTask and Group "service:NAME", as ECS would.
func (f *ECSFixtures) CreateService(tb testing.TB, cluster, name, taskDefinition string, tags map[string]string) {
	tb.Helper()
	ecsCall(tb, "create service "+name, func(ctx context.Context) (*awsecs.CreateServiceOutput, error) {
		return f.ecs.CreateService(ctx, &awsecs.CreateServiceInput{
			Cluster: &cluster, ServiceName: &name, TaskDefinition: &taskDefinition, DesiredCount: aws.Int32(0), Tags: ecsTags(tags),
		})
	})
}

// RunTask runs tasks and returns them. moto places EC2 tasks on the first container instance
// with room; StartTask chooses the instance.
func (f *ECSFixtures) RunTask(tb testing.TB, in *awsecs.RunTaskInput) []ecstypes.Task {
	tb.Helper()
	out := ecsCall(tb, "run task "+aws.ToString(in.TaskDefinition), func(ctx context.Context) (*awsecs.RunTaskOutput, error) {
		return f.ecs.RunTask(ctx, in)
	})
	if want := int(aws.ToInt32(in.Count)); want > 0 && len(out.Tasks) != want {
		tb.Fatalf("run task %s: %d of %d tasks placed", aws.ToString(in.TaskDefinition), len(out.Tasks), want)
	}
	return out.Tasks
}

// StartTask starts a task on each of the given container instances and returns them.
func (f *ECSFixtures) StartTask(tb testing.TB, in *awsecs.StartTaskInput) []ecstypes.Task {
	tb.Helper()
	out := ecsCall(tb, "start task "+aws.ToString(in.TaskDefinition), func(ctx context.Context) (*awsecs.StartTaskOutput, error) {
		return f.ecs.StartTask(ctx, in)
	})
	return out.Tasks
}

// StopTask stops a task: it leaves ListTasks(desiredStatus=RUNNING).
func (f *ECSFixtures) StopTask(tb testing.TB, cluster, taskARN string) {
	tb.Helper()
	ecsCall(tb, "stop task "+taskARN, func(ctx context.Context) (*awsecs.StopTaskOutput, error) {
		return f.ecs.StopTask(ctx, &awsecs.StopTaskInput{Cluster: &cluster, Task: &taskARN})
	})
}

// DescribeTask returns a task as DescribeTasks tells it.
func (f *ECSFixtures) DescribeTask(tb testing.TB, cluster, taskARN string) ecstypes.Task {
	tb.Helper()
	out := ecsCall(tb, "describe task "+taskARN, func(ctx context.Context) (*awsecs.DescribeTasksOutput, error) {
		return f.ecs.DescribeTasks(ctx, &awsecs.DescribeTasksInput{Cluster: &cluster, Tasks: []string{taskARN}, Include: []ecstypes.TaskField{ecstypes.TaskFieldTags}})
	})
	for _, t := range out.Tasks {
		if aws.ToString(t.TaskArn) == taskARN {
			return t
		}
	}
	tb.Fatalf("describe task %s: not found", taskARN)
	return ecstypes.Task{}
}

// TaskIP returns the private address of an awsvpc task's network interface.
func TaskIP(t ecstypes.Task) string {
	for _, a := range t.Attachments {
		for _, d := range a.Details {
			if aws.ToString(d.Name) == "privateIPv4Address" {
				return aws.ToString(d.Value)
			}
		}
	}
	return ""
}
