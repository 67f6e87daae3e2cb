package events

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/require"
)

// fixture returns the body of testdata/name: events in the shapes AWS documents them (the
// EventBridge envelope, the ECS task state change detail with ISO-8601 times, the CloudTrail
// record of a Cloud Map call), with values of our own.
func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(tb, err)
	return data
}

func at(s string) *time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &t
}

// TestParseBridgeTask: every field the ECS source builds targets from, and the others of the
// task, come out as DescribeTasks's types.Task holds them.
func TestParseBridgeTask(t *testing.T) {
	t.Parallel()
	ev, err := Parse(fixture(t, "task-ec2-bridge-running.json"))
	require.NoError(t, err)
	require.Equal(t, TypeTask, ev.Type)
	require.Equal(t, "d3c1b7e2-58a4-4f0e-9b6d-2a7c8e1f0b93", ev.ID)
	require.Equal(t, *at("2026-03-02T10:02:41Z"), ev.Time)

	const taskARN = "arn:aws:ecs:eu-west-1:111122223333:task/batch/5e8d2c1b0a9f4e7d8c6b5a4f3e2d1c0b"
	want := ecstypes.Task{
		Attachments:          []ecstypes.Attachment{},
		Attributes:           []ecstypes.Attribute{{Name: aws.String("ecs.cpu-architecture"), Value: aws.String("arm64")}},
		AvailabilityZone:     aws.String("eu-west-1a"),
		CapacityProviderName: aws.String("workers-asg"),
		ClusterArn:           aws.String("arn:aws:ecs:eu-west-1:111122223333:cluster/batch"),
		ContainerInstanceArn: aws.String("arn:aws:ecs:eu-west-1:111122223333:container-instance/batch/9a8b7c6d5e4f40312a1b2c3d4e5f6a7b"),
		Containers: []ecstypes.Container{
			{
				ContainerArn: aws.String("arn:aws:ecs:eu-west-1:111122223333:container/batch/5e8d2c1b0a9f4e7d8c6b5a4f3e2d1c0b/1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"),
				LastStatus:   aws.String("RUNNING"),
				Name:         aws.String("worker"),
				Image:        aws.String("public.ecr.aws/example/worker:2"),
				RuntimeId:    aws.String("7d2e9b1c4a6f8e0d3b5a7c9e1f2d4b6a8c0e2f4a6b8d0c2e4f6a8b0d2c4e6f8a"),
				TaskArn:      aws.String(taskARN),
				NetworkBindings: []ecstypes.NetworkBinding{
					{BindIP: aws.String("0.0.0.0"), ContainerPort: aws.Int32(9100), HostPort: aws.Int32(32771), Protocol: ecstypes.TransportProtocolTcp},
					{BindIP: aws.String("::"), ContainerPort: aws.Int32(9100), HostPort: aws.Int32(32771), Protocol: ecstypes.TransportProtocolTcp},
					{BindIP: aws.String("0.0.0.0"), ContainerPortRange: aws.String("9000-9009"), HostPortRange: aws.String("40000-40009"), Protocol: ecstypes.TransportProtocolTcp},
					{BindIP: aws.String("0.0.0.0"), ContainerPort: aws.Int32(8125), HostPort: aws.Int32(32772), Protocol: ecstypes.TransportProtocolUdp},
				},
				Cpu:          aws.String("256"),
				Memory:       aws.String("512"),
				HealthStatus: ecstypes.HealthStatusHealthy,
			},
			{
				ContainerArn:      aws.String("arn:aws:ecs:eu-west-1:111122223333:container/batch/5e8d2c1b0a9f4e7d8c6b5a4f3e2d1c0b/2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a"),
				LastStatus:        aws.String("RUNNING"),
				Name:              aws.String("log-router"),
				Image:             aws.String("public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"),
				TaskArn:           aws.String(taskARN),
				NetworkBindings:   []ecstypes.NetworkBinding{},
				Cpu:               aws.String("0"),
				MemoryReservation: aws.String("50"),
			},
		},
		Cpu:           aws.String("512"),
		CreatedAt:     at("2026-03-02T10:02:30.5Z"),
		DesiredStatus: aws.String("RUNNING"),
		Group:         aws.String("service:worker"),
		LaunchType:    ecstypes.LaunchTypeEc2,
		LastStatus:    aws.String("RUNNING"),
		Memory:        aws.String("1024"),
		Overrides: &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{
			{Name: aws.String("worker"), Environment: []ecstypes.KeyValuePair{{Name: aws.String("QUEUE"), Value: aws.String("jobs")}}},
			{Name: aws.String("log-router")},
		}},
		PlatformFamily:    aws.String("Linux"),
		PullStartedAt:     at("2026-03-02T10:02:32Z"),
		PullStoppedAt:     at("2026-03-02T10:02:37Z"),
		StartedAt:         at("2026-03-02T10:02:41.377Z"),
		StartedBy:         aws.String("ecs-svc/1185305916392071534"),
		Tags:              []ecstypes.Tag{{Key: aws.String("team"), Value: aws.String("data")}},
		TaskArn:           aws.String(taskARN),
		TaskDefinitionArn: aws.String("arn:aws:ecs:eu-west-1:111122223333:task-definition/worker:12"),
		Version:           3,
	}
	require.Equal(t, want, ev.Task)
}

// TestParseAWSVPCTasks: the network interface attachment ("eni" in events) gets DescribeTasks's
// type, with its addresses, IPv4 and IPv6; the containers' interfaces come through too.
func TestParseAWSVPCTasks(t *testing.T) {
	t.Parallel()
	ev, err := Parse(fixture(t, "task-fargate-running.json"))
	require.NoError(t, err)
	task := ev.Task
	require.Equal(t, ecstypes.LaunchTypeFargate, task.LaunchType)
	require.Len(t, task.Attachments, 1)
	eni := task.Attachments[0]
	require.Equal(t, "ElasticNetworkInterface", aws.ToString(eni.Type))
	require.Equal(t, "ATTACHED", aws.ToString(eni.Status))
	require.Contains(t, eni.Details, ecstypes.KeyValuePair{Name: aws.String("privateIPv4Address"), Value: aws.String("10.0.1.23")})
	require.Contains(t, eni.Details, ecstypes.KeyValuePair{Name: aws.String("subnetId"), Value: aws.String("subnet-0a1b2c3d")})
	require.Equal(t, []ecstypes.NetworkInterface{{AttachmentId: eni.Id, PrivateIpv4Address: aws.String("10.0.1.23")}}, task.Containers[0].NetworkInterfaces)
	require.Equal(t, "FARGATE", aws.ToString(task.CapacityProviderName))
	require.Equal(t, "1.4.0", aws.ToString(task.PlatformVersion))
	require.Equal(t, "Linux", aws.ToString(task.PlatformFamily))
	require.Equal(t, ecstypes.ConnectivityConnected, task.Connectivity)
	require.Equal(t, at("2026-03-02T09:14:05.912Z"), task.ConnectivityAt)
	require.Equal(t, at("2026-03-02T09:14:27.005Z"), task.StartedAt)
	require.Equal(t, &ecstypes.EphemeralStorage{SizeInGiB: 20}, task.EphemeralStorage)
	require.Equal(t, "sha256:3f1c9a8e7d6b5a4c3b2a19f8e7d6c5b4a3928170f6e5d4c3b2a1908f7e6d5c4b", aws.ToString(task.Containers[0].ImageDigest))
	require.Empty(t, task.Tags, "no tags in this event")
	require.Empty(t, task.HealthStatus, "task events lack the task's health status")
	require.Equal(t, int64(4), task.Version)

	ev, err = Parse(fixture(t, "task-ec2-awsvpc-ipv6.json"))
	require.NoError(t, err)
	task = ev.Task
	require.Equal(t, "ElasticNetworkInterface", aws.ToString(task.Attachments[0].Type))
	require.Contains(t, task.Attachments[0].Details, ecstypes.KeyValuePair{Name: aws.String("ipv6Address"), Value: aws.String("2001:db8:1234:1a00::1c")})
	require.Equal(t, "2001:db8:1234:1a00::1c", aws.ToString(task.Containers[0].NetworkInterfaces[0].Ipv6Address))
	require.Equal(t, "arn:aws:ecs:eu-west-1:111122223333:container-instance/apps/3b4c5d6e7f8a49b0c1d2e3f4a5b6c7d8", aws.ToString(task.ContainerInstanceArn))
	require.Equal(t, "family:api", aws.ToString(task.Group))
	require.Equal(t, "deploy-script", aws.ToString(task.StartedBy))
}

func TestParseStoppedTask(t *testing.T) {
	t.Parallel()
	ev, err := Parse(fixture(t, "task-stopped.json"))
	require.NoError(t, err)
	task := ev.Task
	require.Equal(t, "STOPPED", aws.ToString(task.LastStatus))
	require.Equal(t, "STOPPED", aws.ToString(task.DesiredStatus))
	require.Equal(t, ecstypes.TaskStopCodeServiceSchedulerInitiated, task.StopCode)
	require.Equal(t, at("2026-03-02T12:45:03.318Z"), task.StoppedAt)
	require.Equal(t, at("2026-03-02T12:44:10.027Z"), task.StoppingAt)
	require.Equal(t, at("2026-03-02T12:44:41.870Z"), task.ExecutionStoppedAt)
	require.Equal(t, int32(143), aws.ToInt32(task.Containers[0].ExitCode))
	require.Equal(t, "DELETED", aws.ToString(task.Attachments[0].Status))
	require.Equal(t, int64(7), task.Version)
}

func TestParseCloudMapCalls(t *testing.T) {
	t.Parallel()
	ev, err := Parse(fixture(t, "cloudmap-register.json"))
	require.NoError(t, err)
	require.Equal(t, TypeCloudMap, ev.Type)
	require.Equal(t, "8e1d2c3b-4a5f-46e7-9d8c-7b6a5f4e3d2c", ev.ID)
	require.Equal(t, CloudMapChange{Operation: OpRegisterInstance, ServiceID: "srv-5k2q7d3v4xw6y8za", InstanceID: "0f2a8c0f5c7e4f0c9c1e6b2d7a4b8e31"}, ev.CloudMap)

	ev, err = Parse(fixture(t, "cloudmap-deregister.json"))
	require.NoError(t, err)
	require.Equal(t, CloudMapChange{Operation: OpDeregisterInstance, ServiceID: "srv-5k2q7d3v4xw6y8za", InstanceID: "0f2a8c0f5c7e4f0c9c1e6b2d7a4b8e31"}, ev.CloudMap)
}

// TestParseIgnores: every event ecs-sd does not apply says why, with the event's type and id
// when they could be read.
func TestParseIgnores(t *testing.T) {
	t.Parallel()
	task := string(fixture(t, "task-fargate-running.json"))
	for _, tc := range []struct {
		name, body, typ, reason, err string
	}{
		{"failed call", string(fixture(t, "cloudmap-register-failed.json")), TypeCloudMap, ReasonFailedCall, "RegisterInstance failed with ServiceNotFound"},
		{"other Cloud Map call", string(fixture(t, "cloudmap-create-service.json")), TypeCloudMap, ReasonUnknownOperation, `"CreateService"`},
		{"other ECS event", string(fixture(t, "ecs-service-action.json")), TypeOther, ReasonUnknownDetailType, `"ECS Service Action"`},
		{"other source", string(fixture(t, "ec2-state-change.json")), TypeOther, ReasonUnknownSource, `"aws.ec2"`},
		{"not JSON", "hello", TypeOther, ReasonMalformed, "not an EventBridge envelope"},
		{"empty", "", TypeOther, ReasonMalformed, "not an EventBridge envelope"},
		{"array", "[1,2]", TypeOther, ReasonMalformed, "not an EventBridge envelope"},
		{"no source", `{"detail-type":"ECS Task State Change","detail":{}}`, TypeOther, ReasonMalformed, "no source or detail-type"},
		{"detail not an object", `{"source":"aws.ecs","detail-type":"ECS Task State Change","detail":"x"}`, TypeTask, ReasonMalformed, "detail is not an object"},
		{"no detail", `{"source":"aws.ecs","detail-type":"ECS Task State Change"}`, TypeTask, ReasonMalformed, "detail is not an object"},
		{"version of the wrong type", strings.Replace(task, `"version": 4`, `"version": "4"`, 1), TypeTask, ReasonMalformed, "Version"},
		{"time not ISO-8601", strings.Replace(task, `"2026-03-02T09:14:27.005Z"`, `"2026-03-02 09:14:27"`, 1), TypeTask, ReasonMalformed, "cannot parse"},
		{"time as a number", strings.Replace(task, `"2026-03-02T09:14:27.005Z"`, `1772442867.005`, 1), TypeTask, ReasonMalformed, "Time"},
		{"no task ARN", strings.ReplaceAll(task, `"taskArn": "arn:aws:ecs:eu-west-1:111122223333:task/apps/0f2a8c0f5c7e4f0c9c1e6b2d7a4b8e31",`, ""), TypeTask, ReasonMalformed, "no taskArn"},
		{"no cluster ARN", strings.Replace(task, `"clusterArn"`, `"cluster"`, 1), TypeTask, ReasonMalformed, "no clusterArn"},
		{"no version", strings.Replace(task, `"version": 4`, `"revision": 4`, 1), TypeTask, ReasonMalformed, "no version"},
		{"no service id", `{"source":"aws.servicediscovery","detail-type":"AWS API Call via CloudTrail","detail":{"eventName":"RegisterInstance","requestParameters":{"instanceId":"i"}}}`, TypeCloudMap, ReasonMalformed, "no requestParameters.serviceId"},
		{"no request parameters", `{"source":"aws.servicediscovery","detail-type":"AWS API Call via CloudTrail","detail":{"eventName":"DeregisterInstance"}}`, TypeCloudMap, ReasonMalformed, "no requestParameters.serviceId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev, err := Parse([]byte(tc.body))
			require.Error(t, err)
			var ie *IgnoredError
			require.ErrorAs(t, err, &ie)
			require.Equal(t, tc.reason, ie.Reason, err.Error())
			require.ErrorContains(t, err, tc.err)
			require.Equal(t, tc.typ, ev.Type)
		})
	}
}

// TestParseTaskIgnoresUnknownFields: fields ECS may add, and those types.Task lacks, are ignored.
func TestParseTaskIgnoresUnknownFields(t *testing.T) {
	t.Parallel()
	task, err := ParseTask([]byte(`{"taskArn":"arn:aws:ecs:us-east-1:1:task/c/t","clusterArn":"arn:aws:ecs:us-east-1:1:cluster/c","version":1,
		"updatedAt":"2026-01-01T00:00:00Z","somethingNew":{"a":[1,2]},"containers":[{"name":"a","newField":true}]}`))
	require.NoError(t, err)
	require.Equal(t, "a", aws.ToString(task.Containers[0].Name))
}
