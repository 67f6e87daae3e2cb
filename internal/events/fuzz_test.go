package events

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// FuzzParse: whatever a message holds, Parse does not panic, and either returns an event ecs-sd
// can apply (a task with its ARN, cluster and version, its network interface in DescribeTasks's
// form; a Cloud Map call with its service) or says why not, with a known reason. The seed corpus
// (testdata/fuzz/FuzzParse) holds the testdata events, compacted as EventBridge writes them, and
// malformed ones. Run: go test -fuzz FuzzParse ./internal/events/
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Parse(body)
		if !slices.Contains([]string{TypeTask, TypeCloudMap, TypeOther}, ev.Type) {
			t.Fatalf("type %q", ev.Type)
		}
		if err != nil {
			var ie *IgnoredError
			if !errors.As(err, &ie) || ie.Reason == ReasonStale || !slices.Contains(reasons, ie.Reason) {
				t.Fatalf("error %v: not an IgnoredError with a reason of Parse", err)
			}
			return
		}
		switch ev.Type {
		case TypeTask:
			task := ev.Task
			if aws.ToString(task.TaskArn) == "" || aws.ToString(task.ClusterArn) == "" || task.Version < 1 {
				t.Fatalf("task without ARN, cluster or version: %+v", task)
			}
			for _, a := range task.Attachments {
				if strings.EqualFold(aws.ToString(a.Type), attachmentENIEvent) {
					t.Fatalf("attachment type %q left as in the event", aws.ToString(a.Type))
				}
			}
		case TypeCloudMap:
			op := ev.CloudMap.Operation
			if ev.CloudMap.ServiceID == "" || (op != OpRegisterInstance && op != OpDeregisterInstance) {
				t.Fatalf("Cloud Map change %+v", ev.CloudMap)
			}
		default:
			t.Fatalf("an event of type %q without error", ev.Type)
		}
	})
}
