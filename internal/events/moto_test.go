//go:build integration

package events

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/awsclient"
	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// runConsumer runs a consumer of q through client until the test ends.
func runConsumer(t *testing.T, client SQS, q *testenv.EventQueue, handler Handler, logs *testenv.SyncBuffer, configure func(*Consumer)) *Consumer {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the consumer's log:\n%s", logs)
		}
	})
	c := New(client, handler, Options{
		QueueURL: q.URL, Coalesce: DefaultCoalesce, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if configure != nil {
		configure(c)
	}
	run(t, c)
	return c
}

// TestOnMotoEventBridgeToSQSToHandler: ECS task events built from moto tasks (bridge on an EC2
// container instance, and awsvpc) and a Cloud Map registration reach the queue through real
// EventBridge rules; the consumer hands each task on exactly as DescribeTasks gives it (no
// DescribeTasks call of its own), then the Cloud Map service, then one Flush; a malformed message
// and one of another kind are counted and deleted; the queue is empty afterwards; an idle
// consumer long-polls (one ReceiveMessage in flight, none in a busy loop).
func TestOnMotoEventBridgeToSQSToHandler(t *testing.T) {
	// ECS on a moto patched to answer like AWS, which serves one request at a time; the queue
	// and the rules on a moto of their own, whose long polls wait for messages beside other calls.
	ecsMoto, moto := testenv.StartPatchedMoto(t), testenv.StartMoto(t)
	ecsProxy, proxy := testenv.NewProxy(t, ecsMoto.URL), testenv.NewProxy(t, moto.URL)
	q := moto.CreateEventQueue(t, "ecs-sd-events", nil, testenv.ECSTaskEventPattern, testenv.CloudMapEventPattern)

	// Tasks on moto, described as AWS would.
	const cluster = "apps"
	f := ecsMoto.ECS(t)
	f.CreateCluster(t, cluster, nil)
	network := f.CreateNetwork(t, 1)
	node := f.AddContainerInstance(t, cluster, network)
	container := func(port int32) []ecstypes.ContainerDefinition {
		return []ecstypes.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("app:1"), Memory: aws.Int32(32),
			PortMappings: []ecstypes.PortMapping{{ContainerPort: aws.Int32(port), HostPort: aws.Int32(0), Protocol: ecstypes.TransportProtocolTcp}}}}
	}
	bridgeDef := f.RegisterTaskDefinition(t, &awsecs.RegisterTaskDefinitionInput{Family: aws.String("bridge"), NetworkMode: ecstypes.NetworkModeBridge, ContainerDefinitions: container(9100)})
	vpcDef := f.RegisterTaskDefinition(t, &awsecs.RegisterTaskDefinitionInput{Family: aws.String("vpc"), NetworkMode: ecstypes.NetworkModeAwsvpc,
		Cpu: aws.String("256"), Memory: aws.String("512"), ContainerDefinitions: container(8080)})
	bridge := f.StartTask(t, &awsecs.StartTaskInput{Cluster: aws.String(cluster), TaskDefinition: &bridgeDef, ContainerInstances: []string{node.ARN}, Group: aws.String("service:exporter")})
	vpc := f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String(cluster), TaskDefinition: &vpcDef, Count: aws.Int32(1), NetworkConfiguration: network.AWSVPC(), Group: aws.String("service:web")})
	arns := []string{aws.ToString(bridge[0].TaskArn), aws.ToString(vpc[0].TaskArn)}
	described, raw := ecsProxy.DescribeTasksRaw(t, cluster, arns)
	for i := range raw { // moto's tasks have no version; AWS's start at 1 and grow with each change
		require.Zero(t, described[i].Version)
		described[i].Version = int64(2 + i)
		raw[i]["version"] = described[i].Version
	}
	require.NotEmpty(t, described[0].Containers[0].NetworkBindings, "the bridge task's dynamic host port")
	require.NotEmpty(t, testenv.TaskIP(described[1]), "the awsvpc task's address")

	// The Cloud Map instance ECS registers for the awsvpc task.
	ns := moto.CreateHTTPNamespace(t, "apps")
	serviceID, _ := moto.CreateService(t, ns, "web", nil)
	taskID := arns[1][strings.LastIndex(arns[1], "/")+1:]
	moto.RegisterTask(t, serviceID, testenv.Task{ID: taskID, IPv4: testenv.TaskIP(described[1]), Port: 8080, Cluster: cluster, Service: "web", Family: "vpc"})

	var entries []ebtypes.PutEventsRequestEntry
	for i, task := range raw {
		entries = append(entries, ebtypes.PutEventsRequestEntry{
			Source: aws.String("aws.ecs"), DetailType: aws.String("ECS Task State Change"), Resources: []string{arns[i]},
			Detail: aws.String(testenv.TaskEventDetail(t, task)), Time: aws.Time(time.Now()),
		})
	}
	entries = append(entries, testenv.CloudMapCall(t, OpRegisterInstance, serviceID, taskID))
	// A Cloud Map call the rule does not route, and an ECS event it does not route either.
	entries = append(entries,
		ebtypes.PutEventsRequestEntry{Source: aws.String("aws.servicediscovery"), DetailType: aws.String("AWS API Call via CloudTrail"), Detail: aws.String(`{"eventSource":"servicediscovery.amazonaws.com","eventName":"CreateService","requestParameters":{"name":"x"}}`)},
		ebtypes.PutEventsRequestEntry{Source: aws.String("aws.ecs"), DetailType: aws.String("ECS Service Action"), Detail: aws.String(`{"eventName":"SERVICE_STEADY_STATE"}`)},
	)
	q.Put(t, entries...)
	// What a broader rule, or a stray sender, would put on the queue.
	bad := q.Send(t, `{"version":"0","id":`)
	other := q.Send(t, string(fixture(t, "ec2-state-change.json")))

	// Started with every message in the queue, the consumer receives them together.
	handler := newRecordingHandler()
	var logs testenv.SyncBuffer
	c := runConsumer(t, awsclient.SQS(proxy.Config(t)), q, handler, &logs, nil)
	q.WaitEmpty(t, 10*time.Second)
	testenv.Eventually(t, 5*time.Second, 10*time.Millisecond, func() (bool, string) {
		n := testutil.ToFloat64(c.metrics.applied) + testutil.ToFloat64(c.metrics.ignored.WithLabelValues(ReasonMalformed)) + testutil.ToFloat64(c.metrics.ignored.WithLabelValues(ReasonUnknownSource))
		return n == 5, "events applied or ignored: " + logs.String()
	})
	calls := handler.recorded()
	require.Equal(t, 4, len(calls), "%v", calls)
	require.Equal(t, "Flush", calls[3].Method, "one batch, one Flush")
	require.ElementsMatch(t, []call{
		{Method: "TaskChanged", Task: arns[0], Version: described[0].Version, Status: "RUNNING"},
		{Method: "TaskChanged", Task: arns[1], Version: described[1].Version, Status: "RUNNING"},
		{Method: "CloudMapServiceChanged", Service: serviceID},
	}, calls[:3])
	for i, arn := range arns {
		require.Equal(t, described[i], handler.tasks[arn], "the event's task is the task DescribeTasks returns")
	}
	require.Zero(t, ecsProxy.Calls()["DescribeTasks"]-1, "only the test's own DescribeTasks")

	require.Equal(t, 3.0, testutil.ToFloat64(c.metrics.applied))
	require.Equal(t, 2.0, testutil.ToFloat64(c.metrics.received.WithLabelValues(TypeTask)))
	require.Equal(t, 1.0, testutil.ToFloat64(c.metrics.received.WithLabelValues(TypeCloudMap)))
	require.Equal(t, 2.0, testutil.ToFloat64(c.metrics.received.WithLabelValues(TypeOther)))
	require.Equal(t, 1.0, testutil.ToFloat64(c.metrics.ignored.WithLabelValues(ReasonMalformed)))
	require.Equal(t, 1.0, testutil.ToFloat64(c.metrics.ignored.WithLabelValues(ReasonUnknownSource)))
	require.Equal(t, uint64(3), histogram(t, c.metrics.latency).GetSampleCount(), "from SentTimestamp, which moto sets")
	require.Contains(t, logs.String(), `msg="Ignoring an event" message_id=`+bad+` event_id="" reason=malformed`)
	require.Contains(t, logs.String(), `msg="Ignoring an event" message_id=`+other+` event_id=3d6c7b8a-9f0e-41d2-4c3b-2a1f0e9d8c7b reason=unknown_source`)
	require.Equal(t, 1, strings.Count(logs.String(), "message_id="+bad))

	// Idle, it waits in long polls: no call in a loop.
	proxy.ResetCalls()
	time.Sleep(3 * time.Second)
	require.LessOrEqual(t, proxy.Calls()["ReceiveMessage"], 1, "an idle consumer waits in one long poll")

	// Later changes: the awsvpc task stops (a newer version), and the old RUNNING event comes again.
	stopped := raw[1]
	stopped["lastStatus"], stopped["desiredStatus"] = "STOPPED", "STOPPED"
	stopped["version"] = described[1].Version + 2
	q.Put(t, ebtypes.PutEventsRequestEntry{Source: aws.String("aws.ecs"), DetailType: aws.String("ECS Task State Change"), Detail: aws.String(testenv.TaskEventDetail(t, stopped))})
	q.Put(t, entries[0])
	q.WaitEmpty(t, 10*time.Second)
	testenv.Eventually(t, 5*time.Second, 10*time.Millisecond, func() (bool, string) {
		return testutil.ToFloat64(c.metrics.ignored.WithLabelValues(ReasonStale)) == 1 && handler.count("Flush") == 2, logs.String()
	})
	require.Equal(t, call{Method: "TaskChanged", Task: arns[1], Version: described[1].Version + 2, Status: "STOPPED"}, handler.recorded()[4])
}

// TestOnMotoSQSUnreachableThenResumes: while the queue's endpoint refuses connections, receives
// fail, are counted and retried after a back-off; events sent meanwhile are applied once it is
// back, and the consumer ends promptly in a long poll.
func TestOnMotoSQSUnreachableThenResumes(t *testing.T) {
	moto := testenv.StartMoto(t)
	// A message received by a long poll whose connection is cut is in flight until the
	// visibility timeout ends: 2 s here, 30 s by default.
	q := moto.CreateEventQueue(t, "ecs-sd-events", map[string]string{"VisibilityTimeout": "2"}, testenv.ECSTaskEventPattern)
	link := testenv.NewLink(t, moto.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	cfg, err := awsclient.Load(t.Context(), awsclient.Options{Region: testenv.Region, EndpointURL: link.URL, MaxAttempts: 1}, nil)
	require.NoError(t, err)

	handler := newRecordingHandler()
	var logs testenv.SyncBuffer
	c := runConsumer(t, awsclient.SQS(cfg), q, handler, &logs, func(c *Consumer) {
		c.backoffInitial, c.backoffMax = 50*time.Millisecond, 200*time.Millisecond
	})
	q.Put(t, ebtypes.PutEventsRequestEntry{Source: aws.String("aws.ecs"), DetailType: aws.String("ECS Task State Change"),
		Detail: aws.String(taskDetail(1, 1, "RUNNING"))})
	q.WaitEmpty(t, 10*time.Second)
	testenv.Eventually(t, 5*time.Second, 10*time.Millisecond, func() (bool, string) { return handler.count("Flush") == 1, logs.String() })

	link.Down()
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() (bool, string) {
		return testutil.ToFloat64(c.metrics.receiveErrors) >= 3, logs.String()
	})
	q.Put(t, ebtypes.PutEventsRequestEntry{Source: aws.String("aws.ecs"), DetailType: aws.String("ECS Task State Change"),
		Detail: aws.String(taskDetail(2, 1, "RUNNING"))})
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, 1, handler.count("TaskChanged"), "nothing is received while the endpoint is down")
	require.Contains(t, logs.String(), `level=ERROR msg="Receiving events failed; retrying"`)
	require.Contains(t, logs.String(), "connection refused")

	link.Up(t)
	// The long poll cut by the outage may still take the message on moto, for up to 20 s.
	q.WaitEmpty(t, 40*time.Second)
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() (bool, string) { return handler.count("TaskChanged") == 2, logs.String() })
	require.Contains(t, logs.String(), `level=INFO msg="Receiving events again"`)
	require.Equal(t, taskARN(2), handler.recorded()[2].Task)
}

// TestOnMotoCancellationEndsTheLongPoll: a consumer waiting in a 20 s long poll on an empty queue
// ends at once when its context ends.
func TestOnMotoCancellationEndsTheLongPoll(t *testing.T) {
	moto := testenv.StartMoto(t)
	q := moto.CreateEventQueue(t, "ecs-sd-events", nil)
	stop := run(t, New(awsclient.SQS(moto.Config(t)), newRecordingHandler(), Options{QueueURL: q.URL}))
	time.Sleep(time.Second)
	start := time.Now()
	stop()
	require.Less(t, time.Since(start), time.Second)
}

// taskDetail is the detail of taskEvent(n, version, status).
func taskDetail(n int, version int64, status string) string {
	var env struct{ Detail json.RawMessage }
	if err := json.Unmarshal([]byte(taskEvent(n, version, status)), &env); err != nil {
		panic(err)
	}
	return string(env.Detail)
}
