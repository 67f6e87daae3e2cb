package testenv

import (
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/ecs-sd/ecs-sd/internal/harness/rig"
)

// The event patterns of ecs-sd's EventBridge rules: ECS task state changes, and Cloud Map's
// RegisterInstance and DeregisterInstance calls as CloudTrail reports them.
const (
	ECSTaskEventPattern  = `{"source":["aws.ecs"],"detail-type":["ECS Task State Change"]}`
	CloudMapEventPattern = `{"source":["aws.servicediscovery"],"detail-type":["AWS API Call via CloudTrail"],` +
		`"detail":{"eventSource":["servicediscovery.amazonaws.com"],"eventName":["RegisterInstance","DeregisterInstance"]}}`
)

// EventQueue is an SQS queue on moto to which EventBridge rules deliver events, as on AWS.
//
// What moto 5.2.1 does: a rule with an SQS target delivers each matching PutEvents entry as a
// message whose body is the EventBridge envelope (without "account"), with SentTimestamp; a long
// poll returns as soon as a message is visible. moto emits no AWS service event itself: tests
// publish them with Put. A patched moto (StartPatchedMoto) serves one request at a time, so a
// long poll there blocks every other call: keep the queue on a plain moto.
type EventQueue struct {
	URL, ARN string
	SQS      *sqs.Client
	events   *eventbridge.Client
}

// CreateEventQueue creates a queue with attributes (nil for SQS's defaults) and, for each event
// pattern, a rule named name-N that delivers the matching events of the default bus to it.
func (m *Moto) CreateEventQueue(tb testing.TB, name string, attributes map[string]string, patterns ...string) *EventQueue {
	tb.Helper()
	cfg := m.Config(tb)
	q := &EventQueue{SQS: sqs.NewFromConfig(cfg), events: eventbridge.NewFromConfig(cfg)}
	ctx, cancel := callContext(tb)
	defer cancel()
	created, err := q.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attributes})
	check(tb, err)
	q.URL = aws.ToString(created.QueueUrl)
	attrs, err := q.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &q.URL,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	check(tb, err)
	q.ARN = attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	for i, pattern := range patterns {
		rule := aws.String(name + "-" + strconv.Itoa(i+1))
		_, err := q.events.PutRule(ctx, &eventbridge.PutRuleInput{Name: rule, EventPattern: aws.String(pattern)})
		check(tb, err)
		_, err = q.events.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: rule, Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: &q.ARN}}})
		check(tb, err)
	}
	return q
}

// Put publishes events on the default event bus, as AWS services do.
func (q *EventQueue) Put(tb testing.TB, entries ...ebtypes.PutEventsRequestEntry) {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	check(tb, rig.PutEvents(ctx, q.events, entries...))
}

// CloudMapCall returns the event CloudTrail delivers to EventBridge for a successful Cloud Map
// call (op RegisterInstance or DeregisterInstance) that ECS made (rig.CloudMapCall).
func CloudMapCall(tb testing.TB, op, serviceID, instanceID string) ebtypes.PutEventsRequestEntry {
	tb.Helper()
	entry, err := rig.CloudMapCall(op, serviceID, instanceID)
	check(tb, err)
	return entry
}

// Send puts body on the queue directly, as a rule of other patterns or a stray sender would,
// and returns the message id.
func (q *EventQueue) Send(tb testing.TB, body string) string {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	out, err := q.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &q.URL, MessageBody: &body})
	check(tb, err)
	return aws.ToString(out.MessageId)
}

// WaitEmpty waits up to timeout until the queue holds no message, visible or in flight
// (GetQueueAttributes ApproximateNumberOfMessages and ApproximateNumberOfMessagesNotVisible).
func (q *EventQueue) WaitEmpty(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	Eventually(tb, timeout, 50*time.Millisecond, func() (bool, string) {
		ctx, cancel := callContext(tb)
		defer cancel()
		out, err := q.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &q.URL, AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		}})
		if err != nil {
			return false, err.Error()
		}
		visible, inFlight := out.Attributes["ApproximateNumberOfMessages"], out.Attributes["ApproximateNumberOfMessagesNotVisible"]
		return visible == "0" && inFlight == "0", "messages in the queue: " + visible + " visible, " + inFlight + " in flight"
	})
}
