//go:build integration

package deploy_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ecs-sd/ecs-sd/internal/harness/promclient"
	"github.com/ecs-sd/ecs-sd/internal/harness/supervise"
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
func queueAttributes(t *testing.T, m *testenv.Moto, queueURL string) map[string]string {
	t.Helper()
	var out struct{ Attributes map[string]string }
	awsJSON(t, m, &out, "sqs", "get-queue-attributes", "--queue-url", queueURL, "--attribute-names", "All")
	return out.Attributes
}

type sqsMessage struct {
	MessageID     string `json:"MessageId"`
	ReceiptHandle string
	Body          string
}

// receive receives what the queue holds, without waiting (the queue itself asks for 20 s waits)
// and with the given visibility timeout.
func receive(t *testing.T, m *testenv.Moto, queueURL, visibility string) []sqsMessage {
	t.Helper()
	var out struct{ Messages []sqsMessage }
	stdout := mustRun(t, motoEnv(m, m.URL, nil), "aws", "--region", region, "--endpoint-url", m.URL, "--output", "json",
		"sqs", "receive-message", "--queue-url", queueURL, "--max-number-of-messages", "10", "--wait-time-seconds", "0",
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

// registerWebapp registers a task definition like the kit's webapp (task-definitions/webapp.json):
// awsvpc, Fargate, port 3000 marked by the PROMETHEUS_EXPORTER_PORT docker label. It returns its ARN.
func registerWebapp(t *testing.T, f *testenv.ECSFixtures) string {
	t.Helper()
	return f.RegisterTaskDefinition(t, &awsecs.RegisterTaskDefinitionInput{
		Family: aws.String("webapp"), NetworkMode: ecstypes.NetworkModeAwsvpc,
		RequiresCompatibilities: []ecstypes.Compatibility{ecstypes.CompatibilityFargate}, Cpu: aws.String("256"), Memory: aws.String("512"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{
			Name: aws.String("webapp"), Image: aws.String("webapp:1"), Memory: aws.Int32(256),
			PortMappings: []ecstypes.PortMapping{{ContainerPort: aws.Int32(3000), Protocol: ecstypes.TransportProtocolTcp}},
			DockerLabels: map[string]string{"PROMETHEUS_EXPORTER_PORT": "3000"},
		}},
	})
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
	def := registerWebapp(t, f)
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

// TestEventsStepFeedsEcsSd runs 03-events.sh on moto and the real ecs-sd configured as the
// stack's ECS-source variant configures it (evaluated from the template: --ecs.cluster of the
// watched cluster, --events.queue-url of the queue the step printed, --refresh.interval=5m, the
// kit's environment). A task of the watched cluster started after ecs-sd's first discovery, and
// announced by its "ECS Task State Change" event put to EventBridge, is in ecs-sd's file_sd file
// and http_sd list from the event: no discovery ran and the task was not described (the event
// carries it). Its STOPPED event removes it the same way.
//
// ECS runs on a patched moto, which serves one request at a time; the step's queue and rules on
// a plain moto of their own, whose long polls wait beside other calls. ecs-sd's one AWS endpoint
// is a router that sends SQS calls to the latter and every other call to the former. Both motos
// use account 123456789012, so the rule's cluster ARN is the task's.
func TestEventsStepFeedsEcsSd(t *testing.T) {
	t.Parallel()
	requireTool(t, "aws", "the AWS CLI")
	requireTool(t, "bash", "the scripts are bash")
	bin := testenv.BuildBinary(t, "./cmd/ecs-sd")
	ecsMoto, eventsMoto := testenv.StartPatchedMoto(t), testenv.StartMoto(t)

	// The cluster, a task definition like the kit's webapp (awsvpc, a PROMETHEUS_EXPORTER_PORT
	// docker label) and a first task; the Cloud Map namespace and the SSM parameters the kit's
	// environment names.
	f := ecsMoto.ECS(t)
	network := f.CreateNetwork(t, 1)
	watched := f.CreateCluster(t, "ecs-sd", nil)
	def := registerWebapp(t, f)
	runTask := func() (detail map[string]any, addr string) {
		task := f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String(watched), TaskDefinition: &def, LaunchType: ecstypes.LaunchTypeFargate,
			NetworkConfiguration: network.AWSVPC(), Group: aws.String("service:webapp")})[0]
		ip := testenv.TaskIP(task)
		if ip == "" {
			t.Fatalf("moto's task %s has no ENI address", aws.ToString(task.TaskArn))
		}
		return taskEventDetail(t, ecsMoto, watched, aws.ToString(task.TaskArn)), ip + ":3000"
	}
	_, firstAddr := runTask()
	const namespacesParameter, configParameter = "ECS-ServiceDiscovery-Namespaces", "ECS-Prometheus-Configuration"
	ecsMoto.CreateHTTPNamespace(t, "ecs-services")
	ecsMoto.PutParameter(t, namespacesParameter, "ecs-services", ssmtypes.ParameterTypeStringList)
	ecsMoto.PutParameter(t, configParameter, "global:\n  scrape_interval: 30s\n", ssmtypes.ParameterTypeString)

	out := runStep(t, eventsMoto, eventsMoto.URL, "03-events.sh", map[string]string{"CLUSTER_NAME": "ecs-sd"})
	queue := out["EVENTS_QUEUE_URL"]
	if queue == "" {
		t.Fatalf("03-events.sh printed no EVENTS_QUEUE_URL: %v", out)
	}

	// ecs-sd as the stack runs it, but on loopback and without the reload URL (no Prometheus
	// beside it here); its /etc/config is a temporary directory.
	command, kitEnv := stackEcsSd(t, newStack(t, loadTemplate(t), "ecs-sd", map[string]string{"EcsApiDiscovery": "Enabled"}))
	values := map[string]string{"{Cluster}": "ecs-sd", "{EventsQueue}": queue,
		"{DiscoveryNamespacesParameter}": namespacesParameter, "{PrometheusConfigParameter}": configParameter}
	fillValue := func(v string) string {
		filled := commandPlaceholder.ReplaceAllStringFunc(v, func(m string) string {
			if x, ok := values[m]; ok {
				return x
			}
			t.Fatalf("the stack's ecs-sd container has %s, which this test does not fill", m)
			return m
		})
		return filled
	}
	var args []string
	for _, a := range command {
		if !strings.HasPrefix(a, "--prometheus.reload-url=") {
			args = append(args, fillValue(a))
		}
	}
	for _, want := range []string{"--ecs.cluster=ecs-sd", "--events.queue-url=" + queue, "--refresh.interval=5m"} {
		if !slices.Contains(args, want) {
			t.Fatalf("the stack's ecs-sd command %v has no %s", command, want)
		}
	}
	dir := t.TempDir()
	env := testenv.AWSEnv(routeSQS(t, eventsMoto.URL, ecsMoto.URL))
	for k, v := range kitEnv {
		if k == "CONFIG_FILE_DIR" {
			v = dir
		}
		env = append(env, k+"="+fillValue(v))
	}
	proc, port, err := supervise.StartServer(t.Context(), supervise.ServerSpec{
		Name: "ecs-sd", Binary: bin, Env: env, LogPath: filepath.Join(dir, "ecs-sd.log"),
		Args: func(port int) []string {
			return append(slices.Clone(args), "--web.listen-address="+net.JoinHostPort(supervise.DefaultHost, strconv.Itoa(port)))
		},
		ReadyPath: "/-/ready", Timeout: time.Minute, Grace: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ecs-sd's log:\n%s", proc.LogTail(40))
		}
		proc.Stop(5 * time.Second)
	})
	base := "http://" + net.JoinHostPort(supervise.DefaultHost, strconv.Itoa(port))
	file := filepath.Join(dir, "ecs-services.json")
	inOutputs := func(addr string, want bool) func() (bool, string) {
		return func() (bool, string) {
			data, err := os.ReadFile(file)
			if err != nil {
				return false, err.Error()
			}
			served, err := promclient.Get(t.Context(), base+"/prometheus-targets")
			if err != nil {
				return false, err.Error()
			}
			inFile, inHTTP := strings.Contains(string(data), `"`+addr+`"`), strings.Contains(string(served), `"`+addr+`"`)
			return inFile == want && inHTTP == want, fmt.Sprintf("%s in the file_sd file: %v, in the http_sd list: %v; want %v\n%s", addr, inFile, inHTTP, want, data)
		}
	}
	metric := func(series string) float64 {
		v, err := promclient.Scrape(t.Context(), base+"/metrics", series)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	const (
		discoveries = `ecs_sd_refresh_duration_seconds_count{source="ecs"}`
		applied     = `ecs_sd_events_applied_total`
		described   = `ecs_sd_aws_api_calls_total{operation="DescribeTasks",outcome="success",service="ECS"}`
	)
	testenv.Eventually(t, time.Minute, 50*time.Millisecond, inOutputs(firstAddr, true))
	before := map[string]float64{discoveries: metric(discoveries), described: metric(described)}
	if before[discoveries] != 1 {
		t.Fatalf("%s = %v after start, want 1 (the first discovery)", discoveries, before[discoveries])
	}

	// A task started after the first discovery arrives by its event: the resync is 5 minutes off,
	// and the discovery count shows none ran (the wait is long only for a machine under load).
	detail, addr := runTask()
	put := time.Now()
	putEvents(t, eventsMoto, []map[string]any{ecsEntry(t, detail)})
	testenv.Eventually(t, time.Minute, 20*time.Millisecond, inOutputs(addr, true))
	t.Logf("%s was in ecs-sd's outputs %v after its event was put", addr, time.Since(put).Round(time.Millisecond))
	if ok, msg := inOutputs(firstAddr, true)(); !ok {
		t.Error(msg)
	}
	for series, was := range before {
		if now := metric(series); now != was {
			t.Errorf("%s = %v, was %v before the event: the target came from a discovery, not from the event", series, now, was)
		}
	}
	if n := metric(applied); n < 1 {
		t.Errorf("%s = %v, want the event counted", applied, n)
	}

	// Its STOPPED event (a newer version) removes it.
	detail["lastStatus"], detail["desiredStatus"] = "STOPPED", "STOPPED"
	switch v := detail["version"].(type) {
	case int:
		detail["version"] = v + 2
	case float64:
		detail["version"] = v + 2
	default:
		t.Fatalf("the event's task version is %T %v", v, v)
	}
	putEvents(t, eventsMoto, []map[string]any{ecsEntry(t, detail)})
	testenv.Eventually(t, time.Minute, 20*time.Millisecond, inOutputs(addr, false))
	if ok, msg := inOutputs(firstAddr, true)(); !ok {
		t.Error(msg)
	}
	if now := metric(discoveries); now != before[discoveries] {
		t.Errorf("%s = %v, was %v: a discovery ran", discoveries, now, before[discoveries])
	}
}

// routeSQS starts an AWS endpoint on 127.0.0.1 that forwards SQS calls (X-Amz-Target
// AmazonSQS.*) to sqsURL and every other call to otherURL, and returns its URL.
func routeSQS(t *testing.T, sqsURL, otherURL string) string {
	t.Helper()
	proxy := func(target string) *httputil.ReverseProxy {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		p := httputil.NewSingleHostReverseProxy(u)
		p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil { // not a call its client gave up, as ecs-sd's last long poll
				t.Logf("route %s %s to %s: %v", r.Method, r.Header.Get("X-Amz-Target"), target, err)
			}
			w.WriteHeader(http.StatusBadGateway)
		}
		return p
	}
	sqs, other := proxy(sqsURL), proxy(otherURL)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.") {
			sqs.ServeHTTP(w, r)
			return
		}
		other.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
