package refresh

import (
	"fmt"
	"strings"
)

// Resource names what a failed call was about. Kind is its kind and its key in logs
// ("namespace", "service", "cluster", "task_definition"), Name its name, and ID, when it has one
// beside its name, its id (logged as Kind + "_id").
type Resource struct {
	Kind, Name, ID string
}

// OpError is a failed step of a discovery: the AWS API operation, named as the operation label of
// ecs_sd_aws_api_calls_total names it, and the resource it was about. Sources return it (joined
// with the other errors of a cycle) and log it with LogAttrs, so that the error, its log line and
// the metric series of the failed call name the same operation.
type OpError struct {
	Op       string
	Resource Resource // zero when the call was about no single resource
	Err      error
}

func (e *OpError) Error() string {
	r := e.Resource
	if r.Kind == "" {
		return fmt.Sprintf("call %s: %v", e.Op, e.Err)
	}
	name := fmt.Sprintf("%s %q", strings.ReplaceAll(r.Kind, "_", " "), r.Name)
	if r.ID != "" {
		name += " (" + r.ID + ")"
	}
	return fmt.Sprintf("%s: %s: %v", name, e.Op, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// LogAttrs returns the key/value pairs of a log line about e: the operation, the resource under
// its kind, and the error.
func (e *OpError) LogAttrs() []any {
	attrs := []any{"operation", e.Op}
	if r := e.Resource; r.Kind != "" {
		attrs = append(attrs, r.Kind, r.Name)
		if r.ID != "" {
			attrs = append(attrs, r.Kind+"_id", r.ID)
		}
	}
	return append(attrs, "err", e.Err)
}
