package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
)

const (
	testQueue   = "https://sqs.eu-west-1.amazonaws.com/111122223333/ecs-sd-events"
	testCluster = "arn:aws:ecs:eu-west-1:111122223333:cluster/apps"
)

func taskARN(n int) string {
	return fmt.Sprintf("arn:aws:ecs:eu-west-1:111122223333:task/apps/%032x", n)
}

// taskEvent returns an ECS task state change event for task n at version, with lastStatus status.
func taskEvent(n int, version int64, status string) string {
	desired := "RUNNING"
	if status == "STOPPED" {
		desired = "STOPPED"
	}
	return fmt.Sprintf(`{"version":"0","id":"task-%d-v%d","detail-type":"ECS Task State Change","source":"aws.ecs",
"account":"111122223333","time":"2026-03-02T09:14:27Z","region":"eu-west-1","resources":[%[3]q],
"detail":{"taskArn":%[3]q,"clusterArn":%[4]q,"lastStatus":%[5]q,"desiredStatus":%[6]q,"version":%[2]d,
"group":"service:web","launchType":"FARGATE","taskDefinitionArn":"arn:aws:ecs:eu-west-1:111122223333:task-definition/web:7",
"attachments":[{"id":"a","type":"eni","status":"ATTACHED","details":[{"name":"privateIPv4Address","value":"10.0.0.%[1]d"}]}],
"containers":[{"name":"web","lastStatus":%[5]q,"taskArn":%[3]q}]}}`, n, version, taskARN(n), testCluster, status, desired)
}

// cloudMapEvent returns the CloudTrail event of a Cloud Map call on service.
func cloudMapEvent(op, service, instance string) string {
	return fmt.Sprintf(`{"version":"0","id":"cm-%[1]s-%[3]s","detail-type":"AWS API Call via CloudTrail","source":"aws.servicediscovery",
"account":"111122223333","time":"2026-03-02T09:14:31Z","region":"eu-west-1","resources":[],
"detail":{"eventSource":"servicediscovery.amazonaws.com","eventName":%[1]q,"requestParameters":{"serviceId":%[2]q,"instanceId":%[3]q}}}`, op, service, instance)
}

// harness runs a consumer of a fake queue with a recording handler.
type harness struct {
	sqs     *fakeSQS
	handler *recordingHandler
	c       *Consumer
	logs    *testenv.SyncBuffer
	stop    func() // cancels Run and waits for it
}

// startConsumer runs a consumer; configure runs before it starts.
func startConsumer(t *testing.T, coalesce time.Duration, configure ...func(*harness)) *harness {
	t.Helper()
	h := &harness{sqs: newFakeSQS(), handler: newRecordingHandler(), logs: &testenv.SyncBuffer{}}
	h.c = New(h.sqs, h.handler, Options{
		QueueURL:   testQueue,
		Coalesce:   coalesce,
		Logger:     slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: prometheus.NewRegistry(),
	})
	for _, f := range configure {
		f(h)
	}
	h.stop = run(t, h.c)
	return h
}

// run runs c until the test ends; stop ends it sooner, and fails the test unless Run returns
// within 5 s of its context's end.
func run(t *testing.T, c *Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5 s of its context's end")
		}
	})
	t.Cleanup(stop)
	return stop
}

// waitFlushes waits for n more flushes.
func (h *harness) waitFlushes(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-h.handler.flushes:
		case <-time.After(10 * time.Second):
			t.Fatalf("flush %d of %d did not come; calls: %v", i+1, n, h.handler.recorded())
		}
	}
}

// waitDeleted waits until n messages are deleted.
func (h *harness) waitDeleted(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		deleted, _, _ := h.sqs.state()
		if len(deleted) >= n {
			return deleted
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages deleted", len(deleted), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) received(typ string) float64 {
	return testutil.ToFloat64(h.c.metrics.received.WithLabelValues(typ))
}

func (h *harness) ignored(reason string) float64 {
	return testutil.ToFloat64(h.c.metrics.ignored.WithLabelValues(reason))
}

func (h *harness) latency(t *testing.T) *dto.Histogram {
	t.Helper()
	return histogram(t, h.c.metrics.latency)
}

// histogram returns the state of h.
func histogram(t *testing.T, h prometheus.Histogram) *dto.Histogram {
	t.Helper()
	var m dto.Metric
	require.NoError(t, h.Write(&m))
	return m.GetHistogram()
}

// TestBatchIsAppliedFlushedAndDeleted: a task event and a Cloud Map event are handed on, then
// one Flush; a malformed message and one of another kind are logged once with their message id,
// counted, and deleted with the batch; every message is counted once, as applied or ignored.
func TestBatchIsAppliedFlushedAndDeleted(t *testing.T) {
	sent := time.Now().Add(-2 * time.Second)
	var task, service, bad, other string
	h := startConsumer(t, 50*time.Millisecond, func(h *harness) {
		task = h.sqs.send(taskEvent(1, 3, "RUNNING"), sent)
		service = h.sqs.send(cloudMapEvent(OpRegisterInstance, "srv-a", "t1"), sent)
		bad = h.sqs.send("{not json", sent)
		other = h.sqs.send(string(fixture(t, "ecs-service-action.json")), sent)
	})
	h.waitFlushes(t, 1)
	deleted := h.waitDeleted(t, 4)

	require.Equal(t, []call{
		{Method: "TaskChanged", Task: taskARN(1), Version: 3, Status: "RUNNING"},
		{Method: "CloudMapServiceChanged", Service: "srv-a"},
		{Method: "Flush"},
	}, h.handler.recorded())
	require.ElementsMatch(t, []string{task, service, bad, other}, deleted)
	_, visible, inFlight := h.sqs.state()
	require.Zero(t, visible+inFlight)

	require.Equal(t, 1.0, h.received(TypeTask))
	require.Equal(t, 1.0, h.received(TypeCloudMap))
	require.Equal(t, 2.0, h.received(TypeOther))
	require.Equal(t, 1.0, h.ignored(ReasonMalformed))
	require.Equal(t, 1.0, h.ignored(ReasonUnknownDetailType))
	require.Equal(t, 2.0, testutil.ToFloat64(h.c.metrics.applied))
	hist := h.latency(t)
	require.Equal(t, uint64(2), hist.GetSampleCount())
	require.InDelta(t, 4.0, hist.GetSampleSum(), 2.0, "each about 2 s after its SentTimestamp")

	logs := h.logs.String()
	require.Equal(t, 1, strings.Count(logs, "message_id="+bad), logs)
	require.Contains(t, logs, `level=WARN msg="Ignoring an event" message_id=`+bad+` event_id="" reason=malformed`)
	require.Contains(t, logs, `level=INFO msg="Ignoring an event" message_id=`+other+` event_id=2c5b6a7f-8e9d-40c1-3b2a-1f0e9d8c7b6a reason=unknown_detail_type`)

	in := h.sqs.receiveInputs()[0]
	require.Equal(t, testQueue, aws.ToString(in.QueueUrl))
	require.Equal(t, int32(20), in.WaitTimeSeconds)
	require.Equal(t, int32(10), in.MaxNumberOfMessages)
	require.Equal(t, []sqstypes.MessageSystemAttributeName{"SentTimestamp"}, in.MessageSystemAttributeNames)
}

// TestOnlyIgnoredEventsFlushNothing: a batch with nothing to apply calls no handler method and is
// deleted all the same.
func TestOnlyIgnoredEventsFlushNothing(t *testing.T) {
	h := startConsumer(t, 0)
	h.sqs.send(string(fixture(t, "cloudmap-register-failed.json")), time.Time{})
	h.sqs.send(string(fixture(t, "ec2-state-change.json")), time.Time{})
	h.waitDeleted(t, 2)
	require.Empty(t, h.handler.recorded())
	require.Equal(t, 1.0, h.ignored(ReasonFailedCall))
	require.Equal(t, 1.0, h.ignored(ReasonUnknownSource))
	require.Equal(t, 0.0, testutil.ToFloat64(h.c.metrics.applied))
}

// TestOlderAndDuplicateTaskEventsAreStale: per task ARN only an event newer than the newest
// applied is handed on, across batches and within one.
func TestOlderAndDuplicateTaskEventsAreStale(t *testing.T) {
	h := startConsumer(t, 0)
	h.sqs.send(taskEvent(1, 5, "RUNNING"), time.Now())
	h.waitFlushes(t, 1)
	h.sqs.send(taskEvent(1, 4, "PENDING"), time.Now()) // late
	h.waitDeleted(t, 2)
	h.sqs.send(taskEvent(1, 5, "RUNNING"), time.Now()) // twice
	h.waitDeleted(t, 3)
	h.sqs.send(taskEvent(1, 6, "STOPPED"), time.Now())
	h.waitFlushes(t, 1)
	require.Equal(t, []call{
		{Method: "TaskChanged", Task: taskARN(1), Version: 5, Status: "RUNNING"},
		{Method: "Flush"},
		{Method: "TaskChanged", Task: taskARN(1), Version: 6, Status: "STOPPED"},
		{Method: "Flush"},
	}, h.handler.recorded())
	require.Equal(t, 2.0, h.ignored(ReasonStale))
	require.Contains(t, h.logs.String(), `level=DEBUG msg="Ignoring an event no newer than one applied" message_id=msg-2 event_id=task-1-v4`)
	h.stop()

	// Within one batch: the newest of each task, once; the others are stale.
	h = startConsumer(t, 0, func(h *harness) { // queued before the consumer starts: one receive
		for _, body := range []string{taskEvent(2, 2, "PENDING"), taskEvent(3, 1, "PENDING"), taskEvent(2, 4, "RUNNING"), taskEvent(2, 3, "ACTIVATING"), taskEvent(3, 1, "PENDING")} {
			h.sqs.send(body, time.Now())
		}
	})
	h.waitFlushes(t, 1)
	h.waitDeleted(t, 5)
	require.Equal(t, []call{
		{Method: "TaskChanged", Task: taskARN(2), Version: 4, Status: "RUNNING"},
		{Method: "TaskChanged", Task: taskARN(3), Version: 1, Status: "PENDING"},
		{Method: "Flush"},
	}, h.handler.recorded())
	require.Equal(t, 3.0, h.ignored(ReasonStale))
	require.Equal(t, 2.0, testutil.ToFloat64(h.c.metrics.applied))
}

// TestADeploymentOf200TasksFlushesAFewTimes: 200 task events and their Cloud Map registrations
// arrive together (20 receives of 10); every task is handed on once, each service once per
// batch, and the outputs are published a few times, not 200.
func TestADeploymentOf200TasksFlushesAFewTimes(t *testing.T) {
	h := startConsumer(t, DefaultCoalesce)
	for i := range 200 {
		h.sqs.send(taskEvent(i, 2, "RUNNING"), time.Now())
		h.sqs.send(cloudMapEvent(OpRegisterInstance, fmt.Sprintf("srv-%d", i%2), fmt.Sprint(i)), time.Now())
	}
	h.waitDeleted(t, 400)
	tasks, flushes, services := h.handler.count("TaskChanged"), h.handler.count("Flush"), h.handler.count("CloudMapServiceChanged")
	t.Logf("400 events: %d receives, %d flushes, %d Cloud Map service reads", len(h.sqs.receiveInputs()), flushes, services)
	require.Equal(t, 200, tasks)
	require.LessOrEqual(t, flushes, 3)
	require.LessOrEqual(t, services, 2*flushes)
	require.Equal(t, 400.0, testutil.ToFloat64(h.c.metrics.applied))
	for _, n := range h.sqs.deleteBatchSizes() {
		require.LessOrEqual(t, n, 10, "DeleteMessageBatch takes 10 entries at most")
	}
}

// TestWithoutCoalescingEachReceiveIsABatch: a window of 0 flushes after every receive.
func TestWithoutCoalescingEachReceiveIsABatch(t *testing.T) {
	h := startConsumer(t, 0)
	for i := range 3 {
		h.sqs.send(taskEvent(i, 1, "RUNNING"), time.Now())
		h.waitFlushes(t, 1)
	}
	require.Equal(t, 3, h.handler.count("Flush"))
}

// TestReceiveErrorsBackOffAndDiscoveryResumes: failed receives are counted, logged and retried
// after growing waits; once the queue answers, events are applied again.
func TestReceiveErrorsBackOffAndDiscoveryResumes(t *testing.T) {
	start := time.Now()
	h := startConsumer(t, 0, func(h *harness) {
		h.c.backoffInitial, h.c.backoffMax = 20*time.Millisecond, 80*time.Millisecond
		h.sqs.failReceives, h.sqs.receiveErr = 5, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
		h.sqs.send(taskEvent(1, 1, "RUNNING"), time.Now())
	})
	h.waitFlushes(t, 1)
	require.Equal(t, 5.0, testutil.ToFloat64(h.c.metrics.receiveErrors))
	require.GreaterOrEqual(t, len(h.sqs.receiveInputs()), 6, "5 failed, 1 returned the event (and the next one waits)")
	// Waits of 20, 40, 80, 80 and 80 ms, each drawn from its upper half at least.
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	logs := h.logs.String()
	require.Contains(t, logs, `level=ERROR msg="Receiving events failed; retrying" queue=`+testQueue+` failures=1`)
	require.Contains(t, logs, `failures=5`)
	require.Contains(t, logs, `err="call ReceiveMessage: dial tcp 127.0.0.1:1: connect: connection refused"`)
	require.Contains(t, logs, `level=INFO msg="Receiving events again" queue=`+testQueue+` failures=5`)
	require.Equal(t, 1, h.handler.count("TaskChanged"))
}

// TestCancellationEndsRunPromptly: Run returns soon after its context ends, whether it waits in
// a long poll, in a back-off, or in a coalescing window.
func TestCancellationEndsRunPromptly(t *testing.T) {
	for name, configure := range map[string]func(*harness){
		"long poll": func(*harness) {},
		"back-off": func(h *harness) {
			h.sqs.failReceives, h.sqs.receiveErr = 1000, errors.New("down")
		},
		"window": func(h *harness) { h.sqs.send(taskEvent(1, 1, "RUNNING"), time.Time{}) },
	} {
		t.Run(name, func(t *testing.T) {
			h := startConsumer(t, time.Hour, func(h *harness) {
				h.c.backoffInitial, h.c.backoffMax = time.Hour, time.Hour
				configure(h)
			})
			time.Sleep(20 * time.Millisecond)
			start := time.Now()
			h.stop()
			require.Less(t, time.Since(start), time.Second)
			require.Empty(t, h.handler.recorded())
		})
	}
}

// TestRedeliveredMessagesAreHarmless: when deleting fails, the messages come back after the
// visibility timeout; the task event is then stale, the Cloud Map service is read once more.
func TestRedeliveredMessagesAreHarmless(t *testing.T) {
	h := startConsumer(t, 0, func(h *harness) {
		h.sqs.failDeletes = true
		h.sqs.send(taskEvent(1, 2, "RUNNING"), time.Now())
		h.sqs.send(cloudMapEvent(OpRegisterInstance, "srv-a", "t1"), time.Now())
	})
	h.waitFlushes(t, 1)
	require.Eventually(t, func() bool {
		return strings.Contains(h.logs.String(), `msg="Deleting an event failed; it will be received again"`)
	}, 5*time.Second, time.Millisecond)
	require.Contains(t, h.logs.String(), "message_id=msg-1 code=InternalError")

	h.sqs.mu.Lock()
	h.sqs.failDeletes = false
	h.sqs.mu.Unlock()
	h.sqs.redeliver()
	h.waitFlushes(t, 1)
	h.waitDeleted(t, 2)
	require.Equal(t, []call{
		{Method: "TaskChanged", Task: taskARN(1), Version: 2, Status: "RUNNING"},
		{Method: "CloudMapServiceChanged", Service: "srv-a"},
		{Method: "Flush"},
		{Method: "CloudMapServiceChanged", Service: "srv-a"},
		{Method: "Flush"},
	}, h.handler.recorded())
	require.Equal(t, 1.0, h.ignored(ReasonStale))
}

// TestLatencyFallsBackToTheEventTime: without SentTimestamp the envelope's time is the start.
func TestLatencyFallsBackToTheEventTime(t *testing.T) {
	h := startConsumer(t, 0)
	sent := time.Now().Add(-3 * time.Second).UTC().Format(time.RFC3339)
	h.sqs.send(strings.Replace(taskEvent(1, 1, "RUNNING"), "2026-03-02T09:14:27Z", sent, 1), time.Time{})
	h.sqs.send(`{"source":"aws.servicediscovery","detail-type":"AWS API Call via CloudTrail","detail":{"eventName":"RegisterInstance","requestParameters":{"serviceId":"s"}}}`, time.Time{})
	h.waitFlushes(t, 1)
	h.waitDeleted(t, 2)
	hist := h.latency(t)
	require.Equal(t, uint64(1), hist.GetSampleCount(), "an event with neither time is applied but not timed")
	require.InDelta(t, 3.5, hist.GetSampleSum(), 1.0)
	require.Equal(t, 2.0, testutil.ToFloat64(h.c.metrics.applied))
}

// TestMetricsAreRegisteredAtZero: every series exists from the start, with the shared names.
func TestMetricsAreRegisteredAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	New(newFakeSQS(), newRecordingHandler(), Options{QueueURL: testQueue, Registerer: reg})
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP ecs_sd_events_applied_total Events handed to the sources, followed by an update of the outputs (tasks and services ecs-sd does not discover among them: they change nothing).
# TYPE ecs_sd_events_applied_total counter
ecs_sd_events_applied_total 0
# HELP ecs_sd_events_ignored_total Events received but not applied, by reason; their messages are deleted.
# TYPE ecs_sd_events_ignored_total counter
ecs_sd_events_ignored_total{reason="failed_call"} 0
ecs_sd_events_ignored_total{reason="malformed"} 0
ecs_sd_events_ignored_total{reason="stale"} 0
ecs_sd_events_ignored_total{reason="unknown_detail_type"} 0
ecs_sd_events_ignored_total{reason="unknown_operation"} 0
ecs_sd_events_ignored_total{reason="unknown_pair"} 0
ecs_sd_events_ignored_total{reason="unknown_source"} 0
# HELP ecs_sd_events_receive_errors_total Failed receives from the events queue (each is retried after a back-off).
# TYPE ecs_sd_events_receive_errors_total counter
ecs_sd_events_receive_errors_total 0
# HELP ecs_sd_events_received_total Messages received from the events queue, by event type (ecs_task, cloudmap_instance, other).
# TYPE ecs_sd_events_received_total counter
ecs_sd_events_received_total{type="cloudmap_instance"} 0
ecs_sd_events_received_total{type="ecs_task"} 0
ecs_sd_events_received_total{type="other"} 0
`), "ecs_sd_events_applied_total", "ecs_sd_events_ignored_total", "ecs_sd_events_receive_errors_total", "ecs_sd_events_received_total"))
	n, err := testutil.GatherAndCount(reg, "ecs_sd_event_latency_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

// TestEventsOfOtherPairsAreIgnored: with Pairs set, an event is handed on with its envelope's
// account and region when they are among them, and ignored (unknown_pair) otherwise.
func TestEventsOfOtherPairsAreIgnored(t *testing.T) {
	known := refresh.Pair{Account: "111122223333", Region: "eu-west-1"}
	h := startConsumer(t, 50*time.Millisecond, func(h *harness) {
		h.c.pairs = []refresh.Pair{known, {Account: "444455556666", Region: "us-east-1"}}
		h.sqs.send(taskEvent(1, 3, "RUNNING"), time.Now())
		h.sqs.send(strings.Replace(taskEvent(2, 3, "RUNNING"), `"account":"111122223333"`, `"account":"999999999999"`, 1), time.Now())
		h.sqs.send(strings.Replace(cloudMapEvent(OpRegisterInstance, "srv-a", "t1"), `"region":"eu-west-1"`, `"region":"us-east-1"`, 1), time.Now())
		h.sqs.send(cloudMapEvent(OpRegisterInstance, "srv-b", "t2"), time.Now())
	})
	h.waitFlushes(t, 1)
	h.waitDeleted(t, 4)
	require.Equal(t, []call{
		{Method: "TaskChanged", Task: taskARN(1), Version: 3, Status: "RUNNING"},
		{Method: "CloudMapServiceChanged", Service: "srv-b"},
		{Method: "Flush"},
	}, h.handler.recorded())
	h.handler.mu.Lock()
	require.Equal(t, []refresh.Pair{known, known}, h.handler.pairs)
	h.handler.mu.Unlock()
	require.Equal(t, 2.0, h.ignored(ReasonUnknownPair))
}
