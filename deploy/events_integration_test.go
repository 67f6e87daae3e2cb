//go:build integration

package deploy_test

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// isoTime is how ECS writes times in events.
const isoTime = "2006-01-02T15:04:05.000Z"

// taskEventDetail returns the detail of an "ECS Task State Change" event for a task of moto: the
// task as DescribeTasks returns it (raw JSON, through the CLI), with its times as ISO-8601 strings
// as ECS writes them in events (the API gives epoch seconds). moto's tasks have neither times nor
// a version: those an event of a running Fargate task carries are added.
func taskEventDetail(t *testing.T, m *testenv.Moto, cluster, taskARN string) map[string]any {
	t.Helper()
	var out struct {
		Tasks []map[string]any `json:"tasks"`
	}
	awsJSON(t, m, &out, "ecs", "describe-tasks", "--cluster", cluster, "--tasks", taskARN)
	for _, task := range out.Tasks {
		if task["taskArn"] != taskARN {
			continue
		}
		for k, v := range task {
			if secs, ok := v.(float64); ok && strings.HasSuffix(k, "At") {
				task[k] = time.UnixMilli(int64(secs * 1000)).UTC().Format(isoTime)
			}
		}
		now := time.Now().UTC()
		for k, v := range map[string]any{
			"version": 2, "connectivity": "CONNECTED", "cpu": "256", "memory": "512", "platformVersion": "1.4.0",
			"createdAt": now.Add(-30 * time.Second).Format(isoTime), "connectivityAt": now.Add(-25 * time.Second).Format(isoTime),
			"pullStartedAt": now.Add(-20 * time.Second).Format(isoTime), "pullStoppedAt": now.Add(-10 * time.Second).Format(isoTime),
			"startedAt": now.Add(-5 * time.Second).Format(isoTime), "updatedAt": now.Format(isoTime),
		} {
			if _, ok := task[k]; !ok {
				task[k] = v
			}
		}
		if task["clusterArn"] != cluster && !strings.HasSuffix(task["clusterArn"].(string), "/"+cluster) || task["lastStatus"] != "RUNNING" ||
			len(asSlice(task["attachments"])) == 0 || len(asSlice(task["containers"])) == 0 {
			t.Fatalf("moto's task %s lacks what an ECS event carries: %v", taskARN, task)
		}
		return task
	}
	t.Fatalf("describe-tasks does not return %s: %v", taskARN, out.Tasks)
	return nil
}

// queueAttributes returns every attribute of a queue.
func queueAttributes(t *testing.T, m *testenv.Moto, url string) map[string]string {
	t.Helper()
	var out struct{ Attributes map[string]string }
	awsJSON(t, m, &out, "sqs", "get-queue-attributes", "--queue-url", url, "--attribute-names", "All")
	return out.Attributes
}

type sqsMessage struct {
	MessageID     string `json:"MessageId"`
	ReceiptHandle string
	Body          string
}

// receive receives what the queue holds, without waiting (the queue itself asks for 20 s waits)
// and with the given visibility timeout.
func receive(t *testing.T, m *testenv.Moto, url, visibility string) []sqsMessage {
	t.Helper()
	var out struct{ Messages []sqsMessage }
	stdout := mustRun(t, motoEnv(m, m.URL, nil), "aws", "--region", region, "--endpoint-url", m.URL, "--output", "json",
		"sqs", "receive-message", "--queue-url", url, "--max-number-of-messages", "10", "--wait-time-seconds", "0",
		"--visibility-timeout", visibility)
	if strings.TrimSpace(stdout) == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("receive-message: %v\n%s", err, stdout)
	}
	return out.Messages
}

// putEvents sends entries to EventBridge's default bus and returns their event ids.
func putEvents(t *testing.T, m *testenv.Moto, entries []map[string]any) []string {
	t.Helper()
	data, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, t.TempDir(), "entries.json", string(data))
	var out struct {
		FailedEntryCount int
		Entries          []struct {
			EventID string `json:"EventId"`
		}
	}
	awsJSON(t, m, &out, "events", "put-events", "--entries", "file://"+file)
	if out.FailedEntryCount != 0 || len(out.Entries) != len(entries) {
		t.Fatalf("put-events: %+v", out)
	}
	ids := make([]string, len(out.Entries))
	for i, e := range out.Entries {
		ids[i] = e.EventID
	}
	return ids
}

func ecsEntry(t *testing.T, detail map[string]any) map[string]any {
	t.Helper()
	data, err := json.Marshal(detail)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"Source": "aws.ecs", "DetailType": "ECS Task State Change", "Detail": string(data),
		"Resources": []string{detail["taskArn"].(string)}}
}

func cloudTrailEntry(t *testing.T, eventName string) map[string]any {
	t.Helper()
	data, err := json.Marshal(cloudTrailEvent("aws.servicediscovery", "servicediscovery.amazonaws.com", eventName)["detail"])
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"Source": "aws.servicediscovery", "DetailType": "AWS API Call via CloudTrail", "Detail": string(data)}
}

// TestEventsStepOnMoto runs 03-events.sh on moto and sends through EventBridge (put-events) what
// ECS and CloudTrail would: a task state change of the watched cluster, built from moto's
// DescribeTasks, arrives in the queue as the EventBridge envelope with that task as its detail,
// and so does a Cloud Map RegisterInstance call; a task of another cluster and a Cloud Map call
// ecs-sd does not use arrive nowhere. A message received 5 times and never deleted moves to the
// dead-letter queue. Running the step again changes nothing.
//
// moto does not evaluate queue policies (the policy is checked as a document here and in
// events_test.go), and its envelope lacks the "account" field that AWS writes.
func TestEventsStepOnMoto(t *testing.T) {
	t.Parallel()
	requireTool(t, "aws", "the AWS CLI")
	requireTool(t, "bash", "the scripts are bash")
	m := testenv.StartPatchedMoto(t)
	f := m.ECS(t)
	network := f.CreateNetwork(t, 1)
	watched := f.CreateCluster(t, "ecs-sd", nil)
	other := f.CreateCluster(t, "batch", nil)
	def := f.RegisterTaskDefinition(t, &awsecs.RegisterTaskDefinitionInput{
		Family: aws.String("webapp"), NetworkMode: ecstypes.NetworkModeAwsvpc,
		RequiresCompatibilities: []ecstypes.Compatibility{ecstypes.CompatibilityFargate}, Cpu: aws.String("256"), Memory: aws.String("512"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{
			Name: aws.String("webapp"), Image: aws.String("webapp:1"), Memory: aws.Int32(128),
			PortMappings: []ecstypes.PortMapping{{ContainerPort: aws.Int32(3000)}},
		}},
	})
	runTask := func(cluster string) map[string]any {
		task := f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String(cluster), TaskDefinition: &def, LaunchType: ecstypes.LaunchTypeFargate,
			NetworkConfiguration: network.AWSVPC(), Group: aws.String("service:webapp")})[0]
		return taskEventDetail(t, m, cluster, aws.ToString(task.TaskArn))
	}
	watchedTask, otherTask := runTask(watched), runTask(other)
	if watchedTask["clusterArn"] != watched || otherTask["clusterArn"] != other {
		t.Fatalf("tasks of clusters %v and %v, want %s and %s", watchedTask["clusterArn"], otherTask["clusterArn"], watched, other)
	}

	out := runStep(t, m, m.URL, "03-events.sh", map[string]string{"CLUSTER_NAME": "ecs-sd"})
	for _, name := range []string{"EVENTS_QUEUE_URL", "EVENTS_QUEUE_ARN", "EVENTS_DEAD_LETTER_QUEUE_URL", "EVENTS_DEAD_LETTER_QUEUE_ARN",
		"EVENTS_ECS_RULE_ARN", "EVENTS_CLOUDMAP_RULE_ARN"} {
		if out[name] == "" {
			t.Fatalf("03-events.sh printed no %s: %v", name, out)
		}
	}
	queue, dlq := out["EVENTS_QUEUE_URL"], out["EVENTS_DEAD_LETTER_QUEUE_URL"]

	t.Run("queues", func(t *testing.T) {
		attrs := queueAttributes(t, m, queue)
		for k, want := range map[string]string{"VisibilityTimeout": "60", "MessageRetentionPeriod": "86400",
			"ReceiveMessageWaitTimeSeconds": "20", "SqsManagedSseEnabled": "true", "QueueArn": out["EVENTS_QUEUE_ARN"]} {
			if attrs[k] != want {
				t.Errorf("queue %s = %q, want %q", k, attrs[k], want)
			}
		}
		var redrive map[string]any
		if err := json.Unmarshal([]byte(attrs["RedrivePolicy"]), &redrive); err != nil ||
			redrive["deadLetterTargetArn"] != out["EVENTS_DEAD_LETTER_QUEUE_ARN"] || redrive["maxReceiveCount"] != float64(5) {
			t.Errorf("queue RedrivePolicy %q (%v), want the dead-letter queue after 5 receives", attrs["RedrivePolicy"], err)
		}
		var policy map[string]any
		if err := json.Unmarshal([]byte(attrs["Policy"]), &policy); err != nil {
			t.Fatalf("queue Policy %q: %v", attrs["Policy"], err)
		}
		checkQueuePolicy(t, "the queue's policy on moto", policy, out["EVENTS_QUEUE_ARN"],
			[]string{out["EVENTS_ECS_RULE_ARN"], out["EVENTS_CLOUDMAP_RULE_ARN"]})
		dlqAttrs := queueAttributes(t, m, dlq)
		if dlqAttrs["MessageRetentionPeriod"] != "1209600" || dlqAttrs["SqsManagedSseEnabled"] != "true" || dlqAttrs["RedrivePolicy"] != "" {
			t.Errorf("dead-letter queue %v, want SSE-SQS and 14 days' retention", dlqAttrs)
		}
	})

	t.Run("rules", func(t *testing.T) {
		patterns := map[string]map[string]any{}
		for _, arn := range []string{out["EVENTS_ECS_RULE_ARN"], out["EVENTS_CLOUDMAP_RULE_ARN"]} {
			name := arn[strings.LastIndex(arn, "/")+1:]
			var rule struct{ EventPattern, State string }
			awsJSON(t, m, &rule, "events", "describe-rule", "--name", name)
			var pattern map[string]any
			if err := json.Unmarshal([]byte(rule.EventPattern), &pattern); err != nil || rule.State != "ENABLED" {
				t.Fatalf("rule %s: state %s, pattern %q (%v)", name, rule.State, rule.EventPattern, err)
			}
			patterns[name] = pattern
			var targets struct{ Targets []map[string]any }
			awsJSON(t, m, &targets, "events", "list-targets-by-rule", "--rule", name)
			if want := []map[string]any{{"Id": "ecs-sd-events", "Arn": out["EVENTS_QUEUE_ARN"]}}; !reflect.DeepEqual(targets.Targets, want) {
				t.Errorf("rule %s targets %v, want %v (the queue, no role)", name, targets.Targets, want)
			}
		}
		checkRulePatterns(t, "the rules on moto", patterns["ecs-sd-ecs-task-state-change"], patterns["ecs-sd-cloud-map-instance-change"],
			[]string{watched})
	})

	t.Run("delivery", func(t *testing.T) {
		ids := putEvents(t, m, []map[string]any{
			ecsEntry(t, watchedTask), ecsEntry(t, otherTask),
			cloudTrailEntry(t, "RegisterInstance"), cloudTrailEntry(t, "GetInstance"),
		})
		// moto routes an event while PutEvents runs: the queue now holds all it will get.
		if n := queueAttributes(t, m, queue)["ApproximateNumberOfMessages"]; n != "2" {
			t.Fatalf("the queue holds %s messages after the four events, want 2 (the watched task's, RegisterInstance)", n)
		}
		messages := receive(t, m, queue, "60")
		if len(messages) != 2 {
			t.Fatalf("received %d messages, want 2: %+v", len(messages), messages)
		}
		envelopes := map[string]map[string]any{}
		for _, msg := range messages {
			var env map[string]any
			if err := json.Unmarshal([]byte(msg.Body), &env); err != nil {
				t.Fatalf("message %s is not an EventBridge envelope: %v\n%s", msg.MessageID, err, msg.Body)
			}
			envelopes[env["id"].(string)] = env
		}
		ecs, ok := envelopes[ids[0]]
		if !ok {
			t.Fatalf("the watched task's event %s is not in the queue: %v", ids[0], slices.Collect(maps.Keys(envelopes)))
		}
		for k, want := range map[string]any{"version": "0", "source": "aws.ecs", "detail-type": "ECS Task State Change",
			"region": region, "resources": []any{watchedTask["taskArn"]}} {
			if !reflect.DeepEqual(ecs[k], want) {
				t.Errorf("envelope %s = %v, want %v", k, ecs[k], want)
			}
		}
		if when, err := time.Parse(time.RFC3339, ecs["time"].(string)); err != nil || time.Since(when) > time.Hour {
			t.Errorf("envelope time %v (%v), want the ISO-8601 time of the event", ecs["time"], err)
		}
		// The detail is the task as sent, times as strings: what ecs-sd reads.
		sent, err := json.Marshal(watchedTask)
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := json.Unmarshal(sent, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ecs["detail"], want) {
			t.Errorf("envelope detail\n%v\nwant the task sent\n%v", ecs["detail"], want)
		}
		cloudMap, ok := envelopes[ids[2]]
		if !ok || cloudMap["source"] != "aws.servicediscovery" || cloudMap["detail"].(map[string]any)["eventName"] != "RegisterInstance" {
			t.Errorf("the RegisterInstance event %s is not in the queue as sent: %v", ids[2], cloudMap)
		}

		// ecs-sd deletes what it applied (DeleteMessageBatch).
		var entries []map[string]string
		for i, msg := range messages {
			entries = append(entries, map[string]string{"Id": string(rune('a' + i)), "ReceiptHandle": msg.ReceiptHandle})
		}
		data, err := json.Marshal(entries)
		if err != nil {
			t.Fatal(err)
		}
		var deleted struct{ Successful, Failed []map[string]any }
		awsJSON(t, m, &deleted, "sqs", "delete-message-batch", "--queue-url", queue, "--entries", string(data))
		if len(deleted.Successful) != 2 || len(deleted.Failed) != 0 {
			t.Errorf("delete-message-batch: %+v", deleted)
		}
	})

	t.Run("dead-letter queue", func(t *testing.T) {
		id := putEvents(t, m, []map[string]any{ecsEntry(t, watchedTask)})[0]
		// Received 5 times and never deleted (visibility 0: at once visible again), the next
		// receive finds nothing: the message is in the dead-letter queue.
		for i := 1; i <= 5; i++ {
			if got := receive(t, m, queue, "0"); len(got) != 1 {
				t.Fatalf("receive %d: %d messages, want the event again", i, len(got))
			}
		}
		if got := receive(t, m, queue, "0"); len(got) != 0 {
			t.Fatalf("a sixth receive returns %d messages, want none (moved to the dead-letter queue)", len(got))
		}
		moved := receive(t, m, dlq, "60")
		var env map[string]any
		if len(moved) != 1 || json.Unmarshal([]byte(moved[0].Body), &env) != nil || env["id"] != id {
			t.Fatalf("dead-letter queue holds %+v, want event %s", moved, id)
		}
	})

	t.Run("again", func(t *testing.T) {
		again := runStep(t, m, m.URL, "03-events.sh", map[string]string{"CLUSTER_NAME": "ecs-sd"})
		if !maps.Equal(again, out) {
			t.Errorf("second run printed %v, first %v", again, out)
		}
		var queues struct{ QueueUrls []string }
		awsJSON(t, m, &queues, "sqs", "list-queues", "--queue-name-prefix", "ecs-sd-events")
		var rules struct{ Rules []struct{ Name string } }
		awsJSON(t, m, &rules, "events", "list-rules", "--name-prefix", "ecs-sd")
		if len(queues.QueueUrls) != 2 || len(rules.Rules) != 2 {
			t.Errorf("after two runs: queues %v, rules %+v; want 2 of each", queues.QueueUrls, rules.Rules)
		}
	})
}
