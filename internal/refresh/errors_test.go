package refresh

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOpErrorNamesOperationAndResource(t *testing.T) {
	t.Parallel()
	cause := errors.New("AccessDeniedException: no")
	for _, tc := range []struct {
		err  *OpError
		text string
		log  []any
	}{
		{&OpError{Op: "DescribeClusters", Err: cause}, "call DescribeClusters: AccessDeniedException: no",
			[]any{"operation", "DescribeClusters", "err", cause}},
		{&OpError{Op: "ListTasks", Resource: Resource{Kind: "cluster", Name: "prod"}, Err: cause}, `cluster "prod": ListTasks: AccessDeniedException: no`,
			[]any{"operation", "ListTasks", "cluster", "prod", "err", cause}},
		{&OpError{Op: "ListServices", Resource: Resource{Kind: "namespace", Name: "ecs-services", ID: "ns-1"}, Err: cause},
			`namespace "ecs-services" (ns-1): ListServices: AccessDeniedException: no`,
			[]any{"operation", "ListServices", "namespace", "ecs-services", "namespace_id", "ns-1", "err", cause}},
		{&OpError{Op: "DescribeTaskDefinition", Resource: Resource{Kind: "task_definition", Name: "arn:td/web:3"}, Err: cause},
			`task definition "arn:td/web:3": DescribeTaskDefinition: AccessDeniedException: no`,
			[]any{"operation", "DescribeTaskDefinition", "task_definition", "arn:td/web:3", "err", cause}},
	} {
		require.EqualError(t, tc.err, tc.text)
		require.Equal(t, tc.log, tc.err.LogAttrs())
		wrapped := fmt.Errorf("source x: %w", errors.Join(errors.New("other"), tc.err))
		require.ErrorIs(t, wrapped, cause)
		var opErr *OpError
		require.ErrorAs(t, wrapped, &opErr)
		require.Equal(t, tc.err.Op, opErr.Op)
	}
}
