// Package events is ecs-sd's event consumer: it long-polls an SQS queue to which EventBridge
// rules deliver ECS task state changes and Cloud Map instance (de)registrations (through
// CloudTrail), reads each message's EventBridge envelope, and hands what changed to a Handler,
// which updates the outputs.
//
// Messages received together (one receive, and those arriving within the coalescing window
// after it) are handed on as one batch, followed by one Handler.Flush, so that a deployment of
// many tasks updates the outputs a few times, not once per task. A batch's messages are deleted
// after its Flush: a crash before then gets them delivered again, and applying an event twice is
// harmless (a task event no newer than one applied is ignored, a Cloud Map service is only read
// again). A message that cannot be read, or is of a kind ecs-sd does not use, is logged once,
// counted and deleted with its batch. A failed receive is counted, logged and retried after an
// exponential back-off with jitter; the consumer stops only when its context ends.
package events

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
)

// SQS limits of one receive, both the maxima SQS allows.
const (
	waitTimeSeconds = 20
	maxMessages     = 10
	// maxDeleteBatch is the most entries of one DeleteMessageBatch.
	maxDeleteBatch = 10
	// callSlack bounds a call beyond the long poll's own wait, so that a connection that hangs
	// cannot stall the consumer.
	callSlack = 10 * time.Second
)

// DefaultCoalesce is the default coalescing window.
const DefaultCoalesce = 150 * time.Millisecond

// SQS is the part of the SQS API the consumer calls; *sqs.Client implements it.
type SQS interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// Handler applies events. Its methods are called from one goroutine, never concurrently: for a
// batch, TaskChanged and CloudMapServiceChanged for each change in the order received, then
// Flush once. A batch in which nothing is to be applied calls nothing.
type Handler interface {
	// TaskChanged hands on a task's new state, newer than any handed on before for that task
	// ARN: any status, RUNNING, desired STOPPED and STOPPED among them; the handler decides.
	// The task is as DescribeTasks returns it (see ParseTask), with what the event holds: AWS
	// documents that it lacks the task's health status, and tags come only when it has them.
	TaskChanged(ctx context.Context, pair refresh.Pair, task ecstypes.Task)
	// CloudMapServiceChanged says that an instance of the Cloud Map service was registered or
	// deregistered; a service is named once per batch. pair is the event's account and region
	// (Event.Pair), in both calls.
	CloudMapServiceChanged(ctx context.Context, pair refresh.Pair, serviceID string)
	// Flush ends a batch: the handler publishes its outputs once.
	Flush(ctx context.Context)
}

// Options configures a Consumer.
type Options struct {
	// QueueURL is the queue's URL (validated by the configuration).
	QueueURL string
	// Coalesce is how long after a receive that returned messages further messages are awaited
	// before the batch is applied; 0 applies each receive on its own.
	Coalesce time.Duration
	Logger   *slog.Logger
	// Registerer registers the consumer's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Pairs are the accounts and regions whose events are handed on; the events of others are
	// ignored (ReasonUnknownPair). nil: every event, whatever its account and region.
	Pairs []refresh.Pair
}

// Consumer receives events from the queue and hands them to a Handler.
type Consumer struct {
	client   SQS
	handler  Handler
	queueURL string
	coalesce time.Duration
	logger   *slog.Logger
	metrics  *metrics
	versions *versions
	pairs    []refresh.Pair // nil: every pair

	backoffInitial, backoffMax time.Duration
	now                        func() time.Time
}

// New returns a consumer of the queue opts names that hands events to handler.
func New(client SQS, handler Handler, opts Options) *Consumer {
	return &Consumer{
		client:         client,
		handler:        handler,
		queueURL:       opts.QueueURL,
		coalesce:       max(opts.Coalesce, 0),
		logger:         refresh.LoggerOrDiscard(opts.Logger),
		metrics:        newMetrics(opts.Registerer),
		versions:       newVersions(DefaultStoppedRetention, DefaultIdleRetention),
		pairs:          opts.Pairs,
		backoffInitial: DefaultBackoffInitial,
		backoffMax:     DefaultBackoffMax,
		now:            time.Now,
	}
}

// Run receives and applies events until ctx ends; it returns only then. Receiving goes on while
// a batch is applied, in a goroutine that Run waits for before it returns.
func (c *Consumer) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	received := make(chan []sqstypes.Message)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before the wait
	wg.Go(func() { c.receive(ctx, received) })
	for {
		var batch []sqstypes.Message
		select {
		case <-ctx.Done():
			return
		case batch = <-received:
		}
		batch, ok := c.gather(ctx, received, batch)
		if !ok {
			return
		}
		c.apply(ctx, batch)
	}
}

// gather adds to batch the messages received within the coalescing window; it reports false
// when ctx ended.
func (c *Consumer) gather(ctx context.Context, received <-chan []sqstypes.Message, batch []sqstypes.Message) ([]sqstypes.Message, bool) {
	if c.coalesce <= 0 {
		return batch, true
	}
	window := time.NewTimer(c.coalesce)
	defer window.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, false
		case more := <-received:
			batch = append(batch, more...)
		case <-window.C:
			return batch, true
		}
	}
}

// receive long-polls the queue and sends every non-empty receive to out, until ctx ends. A failed
// receive is retried after a back-off.
func (c *Consumer) receive(ctx context.Context, out chan<- []sqstypes.Message) {
	b := backoff{initial: c.backoffInitial, max: c.backoffMax}
	for ctx.Err() == nil {
		msgs, err := c.receiveOnce(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.metrics.receiveErrors.Inc()
			wait := b.next()
			c.logger.Error("Receiving events failed; retrying", "queue", c.queueURL, "failures", b.failures, "retry_in", wait, "err", err)
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		if n := b.reset(); n > 0 {
			c.logger.Info("Receiving events again", "queue", c.queueURL, "failures", n)
		}
		if len(msgs) == 0 {
			continue
		}
		select {
		case out <- msgs:
		case <-ctx.Done():
			return
		}
	}
}

// receiveOnce is one long poll: up to 10 messages, waiting up to 20 s for the first.
func (c *Consumer) receiveOnce(ctx context.Context) ([]sqstypes.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, waitTimeSeconds*time.Second+callSlack)
	defer cancel()
	out, err := c.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(c.queueURL),
		MaxNumberOfMessages:         maxMessages,
		WaitTimeSeconds:             waitTimeSeconds,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameSentTimestamp},
	})
	if err != nil {
		return nil, &refresh.OpError{Op: "ReceiveMessage", Err: err}
	}
	return out.Messages, nil
}

// change is one event of a batch to hand on: the newest of its task, or the first of its Cloud
// Map service, with the arrival times of the messages it stands for.
type change struct {
	event     Event
	messageID string
	arrived   []time.Time
}

// apply hands a batch's changes to the handler, flushes, and deletes the batch's messages.
func (c *Consumer) apply(ctx context.Context, batch []sqstypes.Message) {
	var applied []time.Time
	for _, ch := range c.collect(ctx, batch) {
		ev := ch.event
		if ev.Type == TypeTask {
			t := ev.Task
			if !c.versions.apply(aws.ToString(t.TaskArn), t.Version, aws.ToString(t.LastStatus) == "STOPPED", c.now()) {
				c.stale(ctx, ch.messageID, ev)
				continue
			}
			c.handler.TaskChanged(ctx, ev.Pair, t)
		} else {
			c.handler.CloudMapServiceChanged(ctx, ev.Pair, ev.CloudMap.ServiceID)
		}
		applied = append(applied, ch.arrived...)
	}
	if len(applied) > 0 {
		c.handler.Flush(ctx)
		end := c.now()
		c.metrics.applied.Add(float64(len(applied)))
		for _, t := range applied {
			if !t.IsZero() {
				c.metrics.latency.Observe(max(end.Sub(t), 0).Seconds())
			}
		}
	}
	c.delete(ctx, batch)
}

// collect parses a batch's messages and returns its changes in the order received: per task
// the newest event (the others are stale), per Cloud Map service one. Every message is counted
// as received, and those ignored as such.
func (c *Consumer) collect(ctx context.Context, batch []sqstypes.Message) []*change {
	var changes []*change
	tasks := map[string]*change{}    // by task ARN
	services := map[string]*change{} // by Cloud Map service id
	for _, msg := range batch {
		id := aws.ToString(msg.MessageId)
		ev, err := Parse([]byte(aws.ToString(msg.Body)))
		c.metrics.received.WithLabelValues(ev.Type).Inc()
		if err == nil && c.pairs != nil && !slices.Contains(c.pairs, ev.Pair) {
			err = ignored(ReasonUnknownPair, "account %q, region %q: not discovered", ev.Pair.Account, ev.Pair.Region)
		}
		if err != nil {
			c.ignore(ctx, id, ev, err)
			continue
		}
		arrived := c.arrival(msg, ev)
		key, seen := aws.ToString(ev.Task.TaskArn), tasks
		if ev.Type == TypeCloudMap {
			key, seen = ev.Pair.String()+"/"+ev.CloudMap.ServiceID, services
		}
		prev, ok := seen[key]
		switch {
		case !ok:
			ch := &change{event: ev, messageID: id, arrived: []time.Time{arrived}}
			seen[key] = ch
			changes = append(changes, ch)
		case ev.Type == TypeCloudMap:
			prev.arrived = append(prev.arrived, arrived)
		case ev.Task.Version > prev.event.Task.Version:
			c.stale(ctx, prev.messageID, prev.event)
			prev.event, prev.messageID, prev.arrived = ev, id, []time.Time{arrived}
		default:
			c.stale(ctx, id, ev)
		}
	}
	return changes
}

// arrival returns when a message arrived in the queue (SQS's SentTimestamp, in milliseconds),
// or else the event's time, or else the zero time.
func (c *Consumer) arrival(msg sqstypes.Message, ev Event) time.Time {
	if ms, err := strconv.ParseInt(msg.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		return time.UnixMilli(ms)
	}
	return ev.Time
}

// ignore counts and logs a message that is not applied.
func (c *Consumer) ignore(ctx context.Context, messageID string, ev Event, err error) {
	reason := ReasonMalformed
	var ie *IgnoredError
	if errors.As(err, &ie) {
		reason = ie.Reason
	}
	c.metrics.ignored.WithLabelValues(reason).Inc()
	level := slog.LevelInfo
	if reason == ReasonMalformed {
		level = slog.LevelWarn
	}
	c.logger.Log(ctx, level, "Ignoring an event", "message_id", messageID, "event_id", ev.ID, "reason", reason, "err", err)
}

// stale counts and logs a task event no newer than one applied or in the same batch: normal when
// events are delivered twice or out of order.
func (c *Consumer) stale(ctx context.Context, messageID string, ev Event) {
	c.metrics.ignored.WithLabelValues(ReasonStale).Inc()
	c.logger.DebugContext(ctx, "Ignoring an event no newer than one applied", "message_id", messageID, "event_id", ev.ID,
		"task", aws.ToString(ev.Task.TaskArn), "version", ev.Task.Version)
}

// delete deletes a batch's messages, 10 per call. A message that could not be deleted is
// delivered again after the queue's visibility timeout, and applied again harmlessly.
func (c *Consumer) delete(ctx context.Context, batch []sqstypes.Message) {
	for start := 0; start < len(batch); start += maxDeleteBatch {
		chunk := batch[start:min(start+maxDeleteBatch, len(batch))]
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(chunk))
		for i, msg := range chunk {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: msg.ReceiptHandle}
		}
		callCtx, cancel := context.WithTimeout(ctx, callSlack)
		out, err := c.client.DeleteMessageBatch(callCtx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(c.queueURL), Entries: entries})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				c.logger.Warn("Deleting events failed; they will be received again", "queue", c.queueURL, "messages", len(chunk), "err", &refresh.OpError{Op: "DeleteMessageBatch", Err: err})
			}
			continue
		}
		for _, f := range out.Failed {
			i, _ := strconv.Atoi(aws.ToString(f.Id))
			id := ""
			if i >= 0 && i < len(chunk) {
				id = aws.ToString(chunk[i].MessageId)
			}
			c.logger.Warn("Deleting an event failed; it will be received again", "queue", c.queueURL, "message_id", id,
				"code", aws.ToString(f.Code), "err", cmp.Or(aws.ToString(f.Message), aws.ToString(f.Code)))
		}
	}
}
