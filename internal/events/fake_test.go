package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/goleak"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
)

// TestMain checks that no test leaves a goroutine behind. The SDK's idle HTTP connections of the
// integration tests are no consumer's goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

// fakeSQS is a queue in memory with SQS's receive semantics that matter here: a receive waits
// until a message is visible (or its context ends) and takes up to MaxNumberOfMessages of them,
// which stay in flight until deleted or given back with redeliver. Receives can be made to fail.
type fakeSQS struct {
	mu       sync.Mutex
	cond     chan struct{} // closed and replaced when a message becomes visible
	visible  []sqstypes.Message
	inFlight map[string]sqstypes.Message // by receipt handle
	deleted  []string                    // message ids
	sent     int                         // messages sent, for their ids
	next     int                         // receipt handles given, for their names

	receives     []*sqs.ReceiveMessageInput
	deleteSizes  []int
	failReceives int   // the next receives that fail
	receiveErr   error // their error
	failDeletes  bool  // every delete entry fails
}

func newFakeSQS() *fakeSQS {
	return &fakeSQS{cond: make(chan struct{}), inFlight: map[string]sqstypes.Message{}}
}

// send enqueues body as a message sent at sent (no SentTimestamp when zero) and returns its id.
func (f *fakeSQS) send(body string, sent time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent++
	id := fmt.Sprintf("msg-%d", f.sent)
	msg := sqstypes.Message{MessageId: aws.String(id), Body: aws.String(body), Attributes: map[string]string{}}
	if !sent.IsZero() {
		msg.Attributes["SentTimestamp"] = strconv.FormatInt(sent.UnixMilli(), 10)
	}
	f.visible = append(f.visible, msg)
	f.wake()
	return id
}

func (f *fakeSQS) wake() {
	close(f.cond)
	f.cond = make(chan struct{})
}

func (f *fakeSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	f.mu.Lock()
	f.receives = append(f.receives, in)
	if f.failReceives > 0 {
		f.failReceives--
		f.mu.Unlock()
		return nil, f.receiveErr
	}
	for len(f.visible) == 0 {
		wait := f.cond
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait:
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	n := min(int(in.MaxNumberOfMessages), len(f.visible))
	out := slices.Clone(f.visible[:n])
	f.visible = f.visible[n:]
	for i := range out {
		f.next++
		out[i].ReceiptHandle = aws.String(fmt.Sprintf("rh-%d", f.next))
		f.inFlight[*out[i].ReceiptHandle] = out[i]
	}
	return &sqs.ReceiveMessageOutput{Messages: out}, nil
}

func (f *fakeSQS) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.Entries) > 10 {
		return nil, errors.New("TooManyEntriesInBatchRequest")
	}
	f.deleteSizes = append(f.deleteSizes, len(in.Entries))
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		if f.failDeletes {
			out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), SenderFault: false})
			continue
		}
		msg, ok := f.inFlight[aws.ToString(e.ReceiptHandle)]
		if !ok {
			out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid"), SenderFault: true})
			continue
		}
		delete(f.inFlight, aws.ToString(e.ReceiptHandle))
		f.deleted = append(f.deleted, aws.ToString(msg.MessageId))
		out.Successful = append(out.Successful, sqstypes.DeleteMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

// redeliver makes every message in flight visible again, as the visibility timeout would.
func (f *fakeSQS) redeliver() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for rh, msg := range f.inFlight {
		delete(f.inFlight, rh)
		msg.ReceiptHandle = nil
		f.visible = append(f.visible, msg)
	}
	f.wake()
}

// receiveInputs returns the input of every receive so far.
func (f *fakeSQS) receiveInputs() []*sqs.ReceiveMessageInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.receives)
}

// deleteBatchSizes returns the number of entries of every DeleteMessageBatch so far.
func (f *fakeSQS) deleteBatchSizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deleteSizes)
}

// state returns the ids deleted, and how many messages are visible and in flight.
func (f *fakeSQS) state() (deleted []string, visible, inFlight int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deleted), len(f.visible), len(f.inFlight)
}

// call is one call of a recordingHandler.
type call struct {
	Method  string // TaskChanged, CloudMapServiceChanged, Flush
	Task    string // task ARN
	Version int64
	Status  string // last status
	Service string // Cloud Map service id
}

// recordingHandler records its calls; flushes receives a value per Flush.
type recordingHandler struct {
	mu      sync.Mutex
	calls   []call
	tasks   map[string]ecstypes.Task // the last task handed on, by ARN
	pairs   []refresh.Pair           // the pair of each TaskChanged and CloudMapServiceChanged
	flushes chan struct{}
}

func newRecordingHandler() *recordingHandler {
	return &recordingHandler{tasks: map[string]ecstypes.Task{}, flushes: make(chan struct{}, 1000)}
}

func (h *recordingHandler) TaskChanged(_ context.Context, pair refresh.Pair, task ecstypes.Task) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pairs = append(h.pairs, pair)
	arn := aws.ToString(task.TaskArn)
	h.tasks[arn] = task
	h.calls = append(h.calls, call{Method: "TaskChanged", Task: arn, Version: task.Version, Status: aws.ToString(task.LastStatus)})
}

func (h *recordingHandler) CloudMapServiceChanged(_ context.Context, pair refresh.Pair, serviceID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pairs = append(h.pairs, pair)
	h.calls = append(h.calls, call{Method: "CloudMapServiceChanged", Service: serviceID})
}

func (h *recordingHandler) Flush(context.Context) {
	h.mu.Lock()
	h.calls = append(h.calls, call{Method: "Flush"})
	h.mu.Unlock()
	h.flushes <- struct{}{}
}

func (h *recordingHandler) recorded() []call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// count returns how many calls of method were recorded.
func (h *recordingHandler) count(method string) int {
	n := 0
	for _, c := range h.recorded() {
		if c.Method == method {
			n++
		}
	}
	return n
}
