package testenv

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	smithytime "github.com/aws/smithy-go/time"
)

// DescribeTasksRaw describes tasks through the proxy and returns them twice: as the SDK decodes
// them, and as the JSON objects DescribeTasks answered (the stuff of task state change events:
// TaskEvent). It sets and then removes the proxy's response hook: use a proxy of its own.
func (p *Proxy) DescribeTasksRaw(tb testing.TB, cluster string, arns []string) ([]ecstypes.Task, []map[string]any) {
	tb.Helper()
	var mu sync.Mutex
	var raw []byte
	p.SetResponseHook(func(op string, _, body []byte) []byte {
		if op == "DescribeTasks" {
			mu.Lock()
			raw = body
			mu.Unlock()
		}
		return body
	})
	defer p.SetResponseHook(nil)
	ctx, cancel := callContext(tb)
	defer cancel()
	out, err := awsecs.NewFromConfig(p.Config(tb)).DescribeTasks(ctx, &awsecs.DescribeTasksInput{Cluster: &cluster, Tasks: arns})
	check(tb, err)
	var answer struct{ Tasks []map[string]any }
	mu.Lock()
	defer mu.Unlock()
	check(tb, json.Unmarshal(raw, &answer))
	// moto matches task ids across clusters: keep the tasks asked for, in the order asked.
	tasks := make([]ecstypes.Task, len(arns))
	objects := make([]map[string]any, len(arns))
	for i, arn := range arns {
		j := slices.IndexFunc(out.Tasks, func(t ecstypes.Task) bool { return aws.ToString(t.TaskArn) == arn })
		k := slices.IndexFunc(answer.Tasks, func(t map[string]any) bool { return t["taskArn"] == arn })
		if j < 0 || k < 0 {
			tb.Fatalf("describe tasks: %s not in the answer", arn)
		}
		tasks[i], objects[i] = out.Tasks[j], answer.Tasks[k]
	}
	return tasks, objects
}

// TaskEventDetail turns a task as DescribeTasks answers it (DescribeTasksRaw) into the detail of
// its ECS task state change event, as ECS writes it: times as ISO-8601 strings (DescribeTasks
// gives epoch seconds), the network interface attachment of type "eni", and updatedAt, which
// DescribeTasks lacks. task is changed in place.
func TaskEventDetail(tb testing.TB, task map[string]any) string {
	tb.Helper()
	iso := func(m map[string]any, key string) {
		if v, ok := m[key].(float64); ok {
			m[key] = smithytime.ParseEpochSeconds(v).Format(time.RFC3339Nano)
		}
	}
	for _, key := range []string{"createdAt", "startedAt", "stoppedAt", "stoppingAt", "pullStartedAt", "pullStoppedAt", "connectivityAt", "executionStoppedAt"} {
		iso(task, key)
	}
	for _, c := range asSlice(task["containers"]) {
		for _, agent := range asSlice(c.(map[string]any)["managedAgents"]) {
			iso(agent.(map[string]any), "lastStartedAt")
		}
	}
	for _, a := range asSlice(task["attachments"]) {
		if a := a.(map[string]any); a["type"] == "ElasticNetworkInterface" {
			a["type"] = "eni"
		}
	}
	task["updatedAt"] = time.Now().UTC().Format(time.RFC3339Nano)
	detail, err := json.Marshal(task)
	check(tb, err)
	return string(detail)
}

// TaskEvent returns the "ECS Task State Change" event ECS publishes on the default event bus for
// a task as DescribeTasks answers it (DescribeTasksRaw), with the given version, last status and
// desired status; EventBridge wraps it in the envelope (version "0", id, detail-type, source,
// account, time, region, resources, detail). task is not changed.
func TaskEvent(tb testing.TB, task map[string]any, version int64, lastStatus, desiredStatus string) ebtypes.PutEventsRequestEntry {
	tb.Helper()
	data, err := json.Marshal(task)
	check(tb, err)
	var detail map[string]any
	check(tb, json.Unmarshal(data, &detail))
	detail["version"], detail["lastStatus"], detail["desiredStatus"] = version, lastStatus, desiredStatus
	arn, _ := detail["taskArn"].(string)
	return ebtypes.PutEventsRequestEntry{
		Source: aws.String("aws.ecs"), DetailType: aws.String("ECS Task State Change"), Resources: []string{arn},
		Detail: aws.String(TaskEventDetail(tb, detail)), Time: aws.Time(time.Now()),
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
