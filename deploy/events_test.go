package deploy_test

import (
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Event mode in the deploy kit: the queue, its dead-letter queue and policy, the EventBridge
// rules, the task role's grant and ecs-sd's flags, in the template (evaluated as a stack) and in
// the CLI path's files. The integration test (events_integration_test.go) runs the CLI step on
// moto and sends events through it.

// eventsFlags are the ecs-sd arguments of event mode in the template: the queue's URL (Ref of a
// queue) and the resync interval.
var eventsFlags = []string{"--events.queue-url={EventsQueue}", "--refresh.interval=5m"}

// ecsSdCommand returns the evaluated command of the ecs-sd container.
func ecsSdCommand(t *testing.T, s *stack) []string {
	t.Helper()
	command, _ := stackEcsSd(t, s)
	return command
}

// stackEcsSd returns the evaluated command and environment of the stack's ecs-sd container.
func stackEcsSd(t *testing.T, s *stack) (command []string, env map[string]string) {
	t.Helper()
	for _, ct := range s.resource("PrometheusTaskDefinition")["ContainerDefinitions"].([]any) {
		ct := ct.(map[string]any)
		if ct["Name"] != "ecs-sd" {
			continue
		}
		env := map[string]string{}
		for _, e := range asSlice(ct["Environment"]) {
			e := e.(map[string]any)
			env[e["Name"].(string)], _ = e["Value"].(string)
		}
		return strs(ct["Command"]), env
	}
	t.Fatal("the stack's task definition has no ecs-sd container")
	return nil, nil
}

// patternMatches tells whether an EventBridge event pattern matches an event, for patterns made
// of exact values: every key of the pattern must be in the event; a list matches when the
// event's value (or one element of an array value) equals one of its items; an object matches
// the event's object of the same key. Other pattern forms (prefix, anything-but, ...) fail the
// test: the rules use none.
func patternMatches(t *testing.T, pattern, event map[string]any) bool {
	t.Helper()
	for key, want := range pattern {
		got, ok := event[key]
		if !ok {
			return false
		}
		switch w := want.(type) {
		case map[string]any:
			g, ok := got.(map[string]any)
			if !ok || !patternMatches(t, w, g) {
				return false
			}
		case []any:
			values := []any{got}
			if list, ok := got.([]any); ok {
				values = list
			}
			found := false
			for _, item := range w {
				if _, ok := item.(string); !ok {
					t.Fatalf("pattern %s: %v is not an exact value, which this test's matcher does not know", key, item)
				}
				found = found || slices.Contains(values, item)
			}
			if !found {
				return false
			}
		default:
			t.Fatalf("pattern %s: %v is neither a list nor an object", key, want)
		}
	}
	return true
}

func TestPatternMatches(t *testing.T) {
	t.Parallel()
	pattern := map[string]any{"source": []any{"a", "b"}, "detail": map[string]any{"x": []any{"1"}}}
	for _, tc := range []struct {
		event map[string]any
		want  bool
	}{
		{map[string]any{"source": "b", "detail": map[string]any{"x": "1", "y": "2"}}, true},
		{map[string]any{"source": "b", "detail": map[string]any{"x": []any{"0", "1"}}}, true},
		{map[string]any{"source": "c", "detail": map[string]any{"x": "1"}}, false},
		{map[string]any{"source": "a", "detail": map[string]any{"x": "2"}}, false},
		{map[string]any{"source": "a", "detail": map[string]any{}}, false},
		{map[string]any{"source": "a"}, false},
		{map[string]any{"source": "a", "detail": "x"}, false},
	} {
		if got := patternMatches(t, pattern, tc.event); got != tc.want {
			t.Errorf("pattern %v on %v = %v, want %v", pattern, tc.event, got, tc.want)
		}
	}
}

// Sample events, in the shape EventBridge delivers them (the fields the rules look at).
func ecsTaskEvent(clusterARN, lastStatus string) map[string]any {
	return map[string]any{
		"version": "0", "source": "aws.ecs", "detail-type": "ECS Task State Change", "account": "123456789012",
		"region": region, "resources": []any{"arn:aws:ecs:us-east-1:123456789012:task/c/0123"},
		"detail": map[string]any{"clusterArn": clusterARN, "lastStatus": lastStatus, "desiredStatus": "RUNNING", "version": 3.0},
	}
}

func cloudTrailEvent(source, eventSource, eventName string) map[string]any {
	return map[string]any{
		"version": "0", "source": source, "detail-type": "AWS API Call via CloudTrail", "account": "123456789012", "region": region,
		"detail": map[string]any{
			"eventSource": eventSource, "eventName": eventName,
			"requestParameters": map[string]any{"serviceId": "srv-0123", "instanceId": "0123"},
		},
	}
}

// checkRulePatterns checks an ECS task rule's and a Cloud Map rule's patterns against events:
// what ecs-sd uses is sent, nothing else (other clusters, other sources and calls).
func checkRulePatterns(t *testing.T, where string, ecs, cloudMap map[string]any, watched []string) {
	t.Helper()
	for _, tc := range []struct {
		name    string
		event   map[string]any
		ecs, cm bool
	}{
		{name: "task of a watched cluster running", event: ecsTaskEvent(watched[0], "RUNNING"), ecs: true},
		{name: "task of a watched cluster stopped", event: ecsTaskEvent(watched[len(watched)-1], "STOPPED"), ecs: true},
		{name: "task of another cluster", event: ecsTaskEvent("arn:aws:ecs:us-east-1:123456789012:cluster/other", "RUNNING")},
		{name: "container instance change", event: func() map[string]any {
			e := ecsTaskEvent(watched[0], "RUNNING")
			e["detail-type"] = "ECS Container Instance State Change"
			return e
		}()},
		{name: "RegisterInstance", event: cloudTrailEvent("aws.servicediscovery", "servicediscovery.amazonaws.com", "RegisterInstance"), cm: true},
		{name: "DeregisterInstance", event: cloudTrailEvent("aws.servicediscovery", "servicediscovery.amazonaws.com", "DeregisterInstance"), cm: true},
		{name: "GetInstance", event: cloudTrailEvent("aws.servicediscovery", "servicediscovery.amazonaws.com", "GetInstance")},
		{name: "CreateService", event: cloudTrailEvent("aws.servicediscovery", "servicediscovery.amazonaws.com", "CreateService")},
		{name: "ECS RegisterTaskDefinition", event: cloudTrailEvent("aws.ecs", "ecs.amazonaws.com", "RegisterTaskDefinition")},
	} {
		if got := patternMatches(t, ecs, tc.event); got != tc.ecs {
			t.Errorf("%s: the ECS task rule's pattern %v on %s: %v, want %v", where, ecs, tc.name, got, tc.ecs)
		}
		if got := patternMatches(t, cloudMap, tc.event); got != tc.cm {
			t.Errorf("%s: the Cloud Map rule's pattern %v on %s: %v, want %v", where, cloudMap, tc.name, got, tc.cm)
		}
	}
}

// checkQueuePolicy checks a queue policy: one statement letting EventBridge send to the queue,
// only for the rules given (aws:SourceArn), and nothing else.
func checkQueuePolicy(t *testing.T, where string, doc map[string]any, queueARN string, ruleARNs []string) {
	t.Helper()
	sts := asSlice(doc["Statement"])
	if len(sts) != 1 {
		t.Fatalf("%s: %d statements, want 1: %v", where, len(sts), doc)
	}
	st := sts[0].(map[string]any)
	want := map[string]any{
		"Effect":    "Allow",
		"Principal": map[string]any{"Service": "events.amazonaws.com"},
		"Action":    []string{"sqs:SendMessage"},
		"Resource":  []string{queueARN},
		"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": slices.Sorted(slices.Values(ruleARNs))}},
	}
	got := map[string]any{
		"Effect": st["Effect"], "Principal": st["Principal"], "Action": strs(st["Action"]), "Resource": strs(st["Resource"]),
	}
	if cond, ok := st["Condition"].(map[string]any); ok && len(cond) == 1 {
		if eq, ok := cond["ArnEquals"].(map[string]any); ok && len(eq) == 1 {
			got["Condition"] = map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": slices.Sorted(slices.Values(strs(eq["aws:SourceArn"])))}}
		}
	}
	if _, ok := got["Condition"]; !ok {
		got["Condition"] = st["Condition"]
	}
	for k, v := range st {
		if _, known := want[k]; !known && k != "Sid" {
			got[k] = v
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: queue policy statement\n%v\nwant\n%v", where, got, want)
	}
}

// TestEventModeResources checks the stack's event mode: the queue with its dead-letter queue,
// the rules and what they send, the queue policy, the task role's grant and ecs-sd's flags.
func TestEventModeResources(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	if def := c.section("Parameters")["EventMode"].(map[string]any)["Default"]; def != "Enabled" {
		t.Errorf("EventMode defaults to %v, want Enabled (event mode is the recommended way to run ecs-sd)", def)
	}
	s := newStack(t, c, "ecs-sd", nil)

	queue, dlq := s.resource("EventsQueue"), s.resource("EventsDeadLetterQueue")
	if queue == nil || dlq == nil {
		t.Fatal("the default stack has no event queue or dead-letter queue")
	}
	wantQueue := map[string]any{
		"SqsManagedSseEnabled": true, "VisibilityTimeout": 60, "MessageRetentionPeriod": 86400, "ReceiveMessageWaitTimeSeconds": 20,
		"RedrivePolicy": map[string]any{"deadLetterTargetArn": "{EventsDeadLetterQueue.Arn}", "maxReceiveCount": 5},
	}
	if !reflect.DeepEqual(queue, wantQueue) {
		t.Errorf("EventsQueue %v, want %v", queue, wantQueue)
	}
	// A message moved to the dead-letter queue keeps its first enqueue time: the dead-letter queue
	// must keep messages longer than the queue.
	if dlq["SqsManagedSseEnabled"] != true || dlq["MessageRetentionPeriod"] != 1209600 || dlq["RedrivePolicy"] != nil {
		t.Errorf("EventsDeadLetterQueue %v, want SSE-SQS, 14 days' retention and no redrive of its own", dlq)
	}

	// The rules: each sends to the queue alone, with no role (SQS targets are authorised by the
	// queue policy).
	rules := map[string]map[string]any{}
	for name, r := range c.section("Resources") {
		if r.(map[string]any)["Type"] == "AWS::Events::Rule" {
			rules[name] = s.resource(name)
		}
	}
	if got := slices.Sorted(maps.Keys(rules)); !slices.Equal(got, []string{"CloudMapInstanceChangeRule", "EcsTaskStateChangeRule"}) {
		t.Fatalf("rules %v, want the ECS task and the Cloud Map rules", got)
	}
	var ruleARNs []string
	for name, rule := range rules {
		ruleARNs = append(ruleARNs, "{"+name+".Arn}")
		want := []any{map[string]any{"Id": "ecs-sd-events", "Arn": "{EventsQueue.Arn}"}}
		if rule["State"] != "ENABLED" || !reflect.DeepEqual(rule["Targets"], want) {
			t.Errorf("%s: state %v, targets %v; want ENABLED and the queue alone, without a role", name, rule["State"], rule["Targets"])
		}
	}
	checkRulePatterns(t, "template", rules["EcsTaskStateChangeRule"]["EventPattern"].(map[string]any),
		rules["CloudMapInstanceChangeRule"]["EventPattern"].(map[string]any), []string{"{Cluster.Arn}"})

	policy := s.resource("EventsQueuePolicy")
	if !slices.Equal(strs(policy["Queues"]), []string{"{EventsQueue}"}) {
		t.Errorf("EventsQueuePolicy applies to %v, want the event queue", policy["Queues"])
	}
	checkQueuePolicy(t, "template EventsQueuePolicy", policy["PolicyDocument"].(map[string]any), "{EventsQueue.Arn}", ruleARNs)

	// The task role receives and deletes on the queue alone; no other role has an SQS grant.
	consumer := statements(t, s, "PrometheusTaskRole")["events-consumer"]
	if len(consumer) != 1 || !slices.Equal(slices.Sorted(slices.Values(strs(consumer[0]["Action"]))), eventsConsumerActions) ||
		!slices.Equal(strs(consumer[0]["Resource"]), []string{"{EventsQueue.Arn}"}) || consumer[0]["Condition"] != nil {
		t.Errorf("events-consumer policy %v, want %v on the event queue's ARN only", consumer, eventsConsumerActions)
	}
	for role, r := range c.section("Resources") {
		if r.(map[string]any)["Type"] != "AWS::IAM::Role" || s.resource(role)["Policies"] == nil {
			continue
		}
		for name, sts := range statements(t, s, role) {
			for _, st := range sts {
				if name != "events-consumer" && slices.ContainsFunc(strs(st["Action"]), func(a string) bool { return strings.HasPrefix(a, "sqs:") }) {
					t.Errorf("%s policy %s grants %v: only events-consumer may name SQS actions", role, name, st["Action"])
				}
			}
		}
	}

	if cmd := ecsSdCommand(t, s); !slices.Equal(cmd[len(cmd)-2:], eventsFlags) {
		t.Errorf("ecs-sd command %v, want it to end with %v", cmd, eventsFlags)
	}
	for name, want := range map[string]map[string]any{
		"EventsQueueUrl":           {"Condition": "UseEvents", "Value": map[string]any{"Ref": "EventsQueue"}},
		"EventsQueueArn":           {"Condition": "UseEvents", "Value": map[string]any{"Fn::GetAtt": []any{"EventsQueue", "Arn"}}},
		"EventsDeadLetterQueueUrl": {"Condition": "UseEvents", "Value": map[string]any{"Ref": "EventsDeadLetterQueue"}},
	} {
		out, _ := c.section("Outputs")[name].(map[string]any)
		if out["Condition"] != want["Condition"] || !reflect.DeepEqual(out["Value"], want["Value"]) {
			t.Errorf("output %s = %v, want %v", name, out, want)
		}
	}

	// With the ECS source too, both sets of flags.
	both := ecsSdCommand(t, newStack(t, c, "ecs-sd", map[string]string{"EcsApiDiscovery": "Enabled"}))
	if want := append([]string{"--prometheus.reload-url=http://localhost:9090/-/reload", "--ecs.cluster={Cluster}"}, eventsFlags...); !slices.Equal(both, want) {
		t.Errorf("with EcsApiDiscovery: ecs-sd command %v, want %v", both, want)
	}
}

// TestEventModeDisabled: without event mode the stack has none of its resources, grants or flags,
// and ecs-sd polls at its default interval.
func TestEventModeDisabled(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	s := newStack(t, c, "ecs-sd", map[string]string{"EventMode": "Disabled"})
	for name, r := range c.section("Resources") {
		r := r.(map[string]any)
		typ, _ := r["Type"].(string)
		if strings.HasPrefix(typ, "AWS::SQS::") || strings.HasPrefix(typ, "AWS::Events::") {
			if s.resource(name) != nil {
				t.Errorf("without event mode the stack still has %s (%s)", name, typ)
			}
		}
	}
	if policies := statements(t, s, "PrometheusTaskRole"); policies["events-consumer"] != nil {
		t.Errorf("without event mode the task role still has the events-consumer policy")
	}
	if cmd := ecsSdCommand(t, s); !slices.Equal(cmd, []string{"--prometheus.reload-url=http://localhost:9090/-/reload"}) {
		t.Errorf("without event mode ecs-sd runs with %v, want the reload URL alone", cmd)
	}
}

// TestEventModeCLIFilesMatchTheTemplate: the CLI path's rule patterns, queue policy, task role
// policy and task definition are the template's.
func TestEventModeCLIFilesMatchTheTemplate(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	s := newStack(t, c, "ecs-sd", nil)
	const cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/ecs-sd"
	vars := map[string]string{"EVENTS_CLUSTER_ARNS_JSON": `"` + cluster + `", "arn:aws:ecs:us-east-1:123456789012:cluster/batch"`}
	maps.Copy(vars, policyVars)
	load := func(file string) map[string]any {
		var doc map[string]any
		if err := json.Unmarshal([]byte(render(t, file, vars)), &doc); err != nil {
			t.Fatalf("rendered %s is not JSON: %v", file, err)
		}
		return doc
	}

	ecs, cloudMap := load("events/ecs-task-state-change.json"), load("events/cloud-map-instance-change.json")
	checkRulePatterns(t, "events/*.json", ecs, cloudMap, []string{cluster, "arn:aws:ecs:us-east-1:123456789012:cluster/batch"})
	// The same patterns as the stack's, but for the clusters.
	fromTemplate := func(rule string) string {
		p, err := json.Marshal(s.resource(rule)["EventPattern"])
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(p), "{Cluster.Arn}", cluster)
	}
	ecs["detail"].(map[string]any)["clusterArn"] = []any{cluster}
	for rule, doc := range map[string]map[string]any{"EcsTaskStateChangeRule": ecs, "CloudMapInstanceChangeRule": cloudMap} {
		if p, _ := json.Marshal(doc); string(p) != fromTemplate(rule) {
			t.Errorf("the CLI pattern of %s is %s, the template's %s", rule, p, fromTemplate(rule))
		}
	}

	checkQueuePolicy(t, "iam/events-queue-policy.json", load("iam/events-queue-policy.json"), policyVars["EVENTS_QUEUE_ARN"],
		[]string{policyVars["EVENTS_ECS_RULE_ARN"], policyVars["EVENTS_CLOUDMAP_RULE_ARN"]})
	consumer := asSlice(load("iam/events-consumer-policy.json")["Statement"])
	if len(consumer) != 1 || !slices.Equal(strs(consumer[0].(map[string]any)["Resource"]), []string{policyVars["EVENTS_QUEUE_ARN"]}) {
		t.Errorf("iam/events-consumer-policy.json %v, want one statement on the queue's ARN", consumer)
	}

	// The task definition's placeholders are inside strings: it is JSON as it is.
	data, err := os.ReadFile("task-definitions/prometheus.json")
	if err != nil {
		t.Fatal(err)
	}
	var td map[string]any
	if err := json.Unmarshal(data, &td); err != nil {
		t.Fatal(err)
	}
	for _, ct := range asSlice(td["containerDefinitions"]) {
		if ct := ct.(map[string]any); ct["name"] == "ecs-sd" {
			cmd := strs(ct["command"])
			if want := []string{"--events.queue-url=${EVENTS_QUEUE_URL}", "--refresh.interval=5m"}; !slices.Equal(cmd[len(cmd)-2:], want) {
				t.Errorf("task-definitions/prometheus.json: ecs-sd command %v, want it to end with %v", cmd, want)
			}
		}
	}
}
