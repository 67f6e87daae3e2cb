//go:build integration

package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// eventRig is ECS on a patched moto and, on a plain moto (whose long polls do not hold other
// calls), one queue per ecs-sd fed by a real EventBridge rule of ECS task state changes: every
// event reaches every queue, as with one rule per ecs-sd on AWS.
type eventRig struct {
	ecsMoto, sqsMoto *testenv.Moto
	f                *testenv.ECSFixtures
	raw              *testenv.Proxy // the test's own DescribeTasks, whose answers become events
	network          testenv.Network
	def              string // task definition "cart": port 8080 by docker label, awsvpc
}

func newEventRig(t testing.TB) *eventRig {
	t.Helper()
	r := &eventRig{ecsMoto: testenv.StartPatchedMoto(t), sqsMoto: testenv.StartMoto(t)}
	r.f = r.ecsMoto.ECS(t)
	r.raw = testenv.NewProxy(t, r.ecsMoto.URL)
	r.network = r.f.CreateNetwork(t, 1)
	r.def = r.f.RegisterTaskDefinition(t, cartDefinition("cart"))
	return r
}

// cartDefinition is an awsvpc task definition of one container whose docker label marks port 8080.
func cartDefinition(family string) *awsecs.RegisterTaskDefinitionInput {
	return &awsecs.RegisterTaskDefinitionInput{
		Family: aws.String(family), NetworkMode: ecstypes.NetworkModeAwsvpc,
		RequiresCompatibilities: []ecstypes.Compatibility{ecstypes.CompatibilityFargate}, Cpu: aws.String("256"), Memory: aws.String("512"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{
			Name: aws.String("app"), Image: aws.String(family + ":1"), Memory: aws.Int32(64),
			DockerLabels: map[string]string{"PROMETHEUS_EXPORTER_PORT": "8080"},
			PortMappings: []ecstypes.PortMapping{{ContainerPort: aws.Int32(8080)}},
		}},
	}
}

// cluster creates an ECS cluster with a service of the cart definition.
func (r *eventRig) cluster(t testing.TB, name, service string) {
	t.Helper()
	r.f.CreateCluster(t, name, nil)
	r.f.CreateService(t, name, service, r.def, nil)
}

// eventTask is a task running on moto, its target, and its description as DescribeTasks
// answered it, from which its events are built.
type eventTask struct {
	arn, target string
	raw         map[string]any
}

// run starts a task of service (with definition def) in cluster and describes it.
func (r *eventRig) run(t testing.TB, cluster, service, def string) eventTask {
	t.Helper()
	started := r.f.RunTask(t, &awsecs.RunTaskInput{Cluster: &cluster, TaskDefinition: &def, Count: aws.Int32(1),
		LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: r.network.AWSVPC(), Group: aws.String("service:" + service)})
	arn := aws.ToString(started[0].TaskArn)
	described, raw := r.raw.DescribeTasksRaw(t, cluster, []string{arn})
	require.NotEmpty(t, testenv.TaskIP(described[0]), "task %s has no address", arn)
	return eventTask{arn: arn, target: testenv.TaskIP(described[0]) + ":8080", raw: raw[0]}
}

// event is the task's state change event of the given version and statuses.
func (e eventTask) event(t testing.TB, version int64, lastStatus, desiredStatus string) ebtypes.PutEventsRequestEntry {
	t.Helper()
	return testenv.TaskEvent(t, e.raw, version, lastStatus, desiredStatus)
}

// eventDaemon is an ecs-sd in event mode: ECS calls through ecs (a counting proxy), SQS calls to
// sqsURL, events from q.
type eventDaemon struct {
	*daemon
	ecs *testenv.Proxy
	q   *testenv.EventQueue
	sqs *testenv.Proxy // nil when SQS calls do not go through a proxy
}

// startEventDaemon starts ecs-sd discovering the ECS cluster with the ECS API (Cloud Map off)
// in event mode on q, its SQS calls to sqsURL, with the given refresh interval, and waits until
// both outputs hold exactly want.
func startEventDaemon(t testing.TB, r *eventRig, q *testenv.EventQueue, sqsURL, cluster, interval string, want []string) *eventDaemon {
	t.Helper()
	d := startECSDaemon(t, r, sqsURL, "--refresh.interval="+interval, "--events.queue-url="+q.URL, "--ecs.cluster="+cluster)
	d.q = q
	waitOutputs(t, d.daemon, want, 30*time.Second)
	return d
}

// startECSDaemon starts ecs-sd with the ECS source alone and args, its ECS and EC2 calls through
// a counting proxy of its own, its SQS calls (if any) to sqsURL.
func startECSDaemon(t testing.TB, r *eventRig, sqsURL string, args ...string) *eventDaemon {
	t.Helper()
	d := &eventDaemon{ecs: testenv.NewProxy(t, r.ecsMoto.URL)}
	d.daemon = startDaemon(t, serviceEndpoints(d.ecs.URL, sqsURL), append([]string{"--no-cloudmap.enable", "--no-prometheus.config-sync"}, args...)...)
	return d
}

// serviceEndpoints returns the environment of an ecs-sd whose AWS calls go to ecsURL, but for
// SQS's, which go to sqsURL (if any): AWS_ENDPOINT_URL and the SDK's AWS_ENDPOINT_URL_SQS, which
// wins over it for SQS.
func serviceEndpoints(ecsURL, sqsURL string) []string {
	env := testenv.AWSEnv(ecsURL)
	if sqsURL != "" {
		env = append(env, "AWS_ENDPOINT_URL_SQS="+sqsURL)
	}
	return env
}

// received returns how many messages the daemon received of an event type.
func (d *eventDaemon) received(t testing.TB, typ string) float64 {
	t.Helper()
	return d.metric(t, fmt.Sprintf(`ecs_sd_events_received_total{type=%q}`, typ))
}

// ignored returns how many events the daemon ignored for a reason.
func (d *eventDaemon) ignored(t testing.TB, reason string) float64 {
	t.Helper()
	return d.metric(t, fmt.Sprintf(`ecs_sd_events_ignored_total{reason=%q}`, reason))
}

// handled waits until the daemon's queue is empty (every message applied or ignored, and
// deleted) and the received counter of typ reached n.
func (d *eventDaemon) handled(t testing.TB, typ string, n float64) {
	t.Helper()
	d.q.WaitEmpty(t, 20*time.Second)
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() (bool, string) {
		got := d.received(t, typ)
		return got == n, fmt.Sprintf("%s messages received: %v, want %v", typ, got, n)
	})
}

// TestEventModeECS runs ecs-sd in event mode against ECS on moto, with events as AWS sends them
// through a real EventBridge rule. One ecs-sd ("events") discovers cluster shop once at start
// (an hour between resyncs), so that only events change its outputs, and makes no DescribeTasks
// call after that; another ("resync") discovers cluster batch every 3 s, for what only a resync
// finds: a lost event, and changes while SQS cannot be reached. Every step checks the file_sd
// file and the http_sd answer for exactly the targets expected.
func TestEventModeECS(t *testing.T) {
	t.Parallel()
	r := newEventRig(t)
	r.cluster(t, "shop", "cart")
	r.cluster(t, "batch", "jobs")
	s1, s2 := r.run(t, "shop", "cart", r.def), r.run(t, "shop", "cart", r.def)
	b1 := r.run(t, "batch", "jobs", r.def)

	qEvents := r.sqsMoto.CreateEventQueue(t, "events", nil, testenv.ECSTaskEventPattern)
	// A message that a long poll cut by the outage took stays invisible for the visibility timeout.
	qResync := r.sqsMoto.CreateEventQueue(t, "resync", map[string]string{"VisibilityTimeout": "3"}, testenv.ECSTaskEventPattern)
	sqs := testenv.NewProxy(t, r.sqsMoto.URL)
	link := testenv.NewLink(t, r.sqsMoto.URL)

	events := startEventDaemon(t, r, qEvents, sqs.URL, "shop", "1h", []string{s1.target, s2.target})
	resync := startEventDaemon(t, r, qResync, link.URL, "batch", "3s", []string{b1.target})
	events.ecs.ResetCalls() // the start-up discovery is over: from now on only events
	tasks := 0.0            // task events put, all of which reach both queues
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	var s3, s5 eventTask
	step("running", func(t *testing.T) {
		s3 = r.run(t, "shop", "cart", r.def)
		qEvents.Put(t, s3.event(t, 2, "RUNNING", "RUNNING"))
		tasks++
		waitOutputs(t, events.daemon, []string{s1.target, s2.target, s3.target}, 10*time.Second)
		require.Zero(t, events.ecs.Calls()["DescribeTasks"], "the event's task is not described")
	})

	step("stopped", func(t *testing.T) {
		r.f.StopTask(t, "shop", s1.arn)
		qEvents.Put(t, s1.event(t, 4, "STOPPED", "STOPPED"))
		tasks++
		waitOutputs(t, events.daemon, []string{s2.target, s3.target}, 10*time.Second)
		// Stopping: desired STOPPED, still RUNNING.
		r.f.StopTask(t, "shop", s2.arn)
		qEvents.Put(t, s2.event(t, 3, "RUNNING", "STOPPED"))
		tasks++
		waitOutputs(t, events.daemon, []string{s3.target}, 10*time.Second)
	})

	step("duplicate and out of order", func(t *testing.T) {
		stale := events.ignored(t, "stale")
		// Delivered twice.
		qEvents.Put(t, s3.event(t, 2, "RUNNING", "RUNNING"))
		// The RUNNING event of a stopped task, arriving after its STOPPED one.
		qEvents.Put(t, s1.event(t, 2, "RUNNING", "RUNNING"))
		// A task that started and stopped: both events in one batch, the newer first.
		s4 := r.run(t, "shop", "cart", r.def)
		r.f.StopTask(t, "shop", s4.arn)
		qEvents.Put(t, s4.event(t, 3, "STOPPED", "STOPPED"), s4.event(t, 2, "RUNNING", "RUNNING"))
		tasks += 4
		events.handled(t, "ecs_task", tasks)
		require.Equal(t, stale+3, events.ignored(t, "stale"))
		waitOutputs(t, events.daemon, []string{s3.target}, time.Second)
	})

	step("unwatched cluster", func(t *testing.T) {
		qEvents.Put(t, b1.event(t, 2, "RUNNING", "RUNNING"))
		tasks++
		events.handled(t, "ecs_task", tasks)
		waitOutputs(t, events.daemon, []string{s3.target}, time.Second)
	})

	step("malformed", func(t *testing.T) {
		malformed, other := events.ignored(t, "malformed"), events.received(t, "other")
		id := qEvents.Send(t, `{"version":"0","id":`)
		events.handled(t, "other", other+1)
		require.Equal(t, malformed+1, events.ignored(t, "malformed"))
		waitOutputs(t, events.daemon, []string{s3.target}, time.Second)
		require.Equal(t, 1, strings.Count(events.logs.String(), "message_id="+id), events.logs.String())
	})

	step("task definition not cached", func(t *testing.T) {
		late := r.f.RegisterTaskDefinition(t, cartDefinition("late"))
		before := events.ecs.Calls()["DescribeTaskDefinition"]
		s5 = r.run(t, "shop", "cart", late)
		qEvents.Put(t, s5.event(t, 2, "RUNNING", "RUNNING"))
		tasks++
		waitOutputs(t, events.daemon, []string{s3.target, s5.target}, 10*time.Second)
		require.Equal(t, before+1, events.ecs.Calls()["DescribeTaskDefinition"])
		require.Zero(t, events.ecs.Calls()["DescribeTasks"], "the event's task is not described")
	})

	var b2, b3, b4 eventTask
	step("lost event found by the resync", func(t *testing.T) {
		b2 = r.run(t, "batch", "jobs", r.def) // no event
		waitOutputs(t, resync.daemon, []string{b1.target, b2.target}, 15*time.Second)
	})

	step("SQS unreachable", func(t *testing.T) {
		failures := resync.metric(t, "ecs_sd_events_receive_errors_total")
		applied := resync.metric(t, "ecs_sd_events_applied_total")
		link.Down()
		testenv.Eventually(t, 15*time.Second, 50*time.Millisecond, func() (bool, string) {
			v := resync.metric(t, "ecs_sd_events_receive_errors_total")
			return v >= failures+2, fmt.Sprintf("receive errors %v, want %v", v, failures+2)
		})
		// Started, and announced, while the queue cannot be read: found by polling.
		b3 = r.run(t, "batch", "jobs", r.def)
		qResync.Put(t, b3.event(t, 2, "RUNNING", "RUNNING"))
		tasks++
		waitOutputs(t, resync.daemon, []string{b1.target, b2.target, b3.target}, 15*time.Second)
		require.Equal(t, applied, resync.metric(t, "ecs_sd_events_applied_total"), "no event applied while SQS is unreachable")

		link.Up(t)
		// The event sent during the outage is applied once the queue is back (after the
		// visibility timeout if a long poll cut by the outage took it).
		qResync.WaitEmpty(t, 40*time.Second)
		testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() (bool, string) {
			v := resync.metric(t, "ecs_sd_events_applied_total")
			return v == applied+1, fmt.Sprintf("events applied %v, want %v", v, applied+1)
		})
		require.Contains(t, resync.logs.String(), `msg="Receiving events again"`)
		// New events apply.
		b4 = r.run(t, "batch", "jobs", r.def)
		r.f.StopTask(t, "batch", b2.arn)
		qResync.Put(t, b4.event(t, 2, "RUNNING", "RUNNING"), b2.event(t, 2, "STOPPED", "STOPPED"))
		tasks += 2
		waitOutputs(t, resync.daemon, []string{b1.target, b3.target, b4.target}, 10*time.Second)
		qResync.WaitEmpty(t, 10*time.Second)
		testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() (bool, string) {
			v := resync.metric(t, "ecs_sd_events_applied_total")
			return v == applied+3, fmt.Sprintf("events applied %v, want %v", v, applied+3)
		})
	})

	step("nothing lost nothing duplicated", func(t *testing.T) {
		// The events ecs-sd received every event, those of the other cluster too, and changed
		// nothing for them.
		events.handled(t, "ecs_task", tasks)
		waitOutputs(t, events.daemon, []string{s3.target, s5.target}, time.Second)
		waitOutputs(t, resync.daemon, []string{b1.target, b3.target, b4.target}, time.Second)
		calls := events.ecs.Calls()
		require.Zero(t, calls["DescribeTasks"], "no task described after the start-up discovery: %v", calls)
		require.Zero(t, calls["ListTasks"], "no discovery after the start-up one: %v", calls)
		require.Equal(t, tasks-events.ignored(t, "stale"), events.metric(t, "ecs_sd_events_applied_total"),
			"every task event not stale is handed on")
		require.Positive(t, sqs.Calls()["ReceiveMessage"], "SQS calls go to their own endpoint")
		require.Zero(t, calls["ReceiveMessage"], "SQS calls go to their own endpoint")
	})
}
