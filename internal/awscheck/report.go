package awscheck

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/smithy-go"
)

// Write prints one line per result, under the title of its section when there are several
// pairs, and reports whether every action that was called was allowed:
//
//	ok  ecs:ListTasks  cluster prod
//	denied  ecs:ListTasks  cluster prod  AccessDeniedException: ...  add: {"Effect":"Allow",...}
//	failed  ecs:ListTasks  cluster prod  ClusterNotFoundException: Cluster not found.
//	skipped  ecs:DescribeTasks  no running task in cluster prod
func Write(w io.Writer, sections []Section) (passed bool, err error) {
	passed = true
	var b strings.Builder
	for i, s := range sections {
		if s.Title != "" {
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString("# " + s.Title + "\n")
		}
		for _, r := range s.Results {
			b.WriteString(r.Line() + "\n")
			passed = passed && (r.Status == OK || r.Status == Skipped)
		}
	}
	_, err = io.WriteString(w, b.String())
	return passed, err
}

// Line returns the result's line.
func (r Result) Line() string {
	fields := []string{string(r.Status), r.Action}
	if r.On != "" {
		fields = append(fields, r.On)
	}
	if r.Err != nil {
		fields = append(fields, errorText(r.Err))
	}
	if r.Statement != "" {
		fields = append(fields, "add: "+r.Statement)
	}
	return strings.Join(fields, "  ")
}

// errorText returns an AWS error as its code and message, another error as it is, on one line.
func errorText(err error) string {
	text := err.Error()
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		text = fmt.Sprintf("%s: %s", apiErr.ErrorCode(), apiErr.ErrorMessage())
	}
	return strings.Join(strings.Fields(text), " ")
}
