package ecs

import (
	"context"
	"testing"
	"time"

	awstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/hold"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// TestHungCallCostsOnlyItsCluster: while one cluster's ListTasks hangs, the other cluster is
// listed; when the hung call ends (the AWS client's call timeout), that cluster keeps its last
// targets and a new task of the other cluster is in the same cycle's result.
func TestHungCallCostsOnlyItsCluster(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(o *Config) { o.Clusters = []string{"alpha", "beta"} })
	e.seed("alpha", 3)
	e.seed("beta", 3)
	want := endpoints(e.discover(t))
	require.Len(t, want, 6)

	release := e.aws.holds.Hold("ListTasks/alpha")
	def := e.aws.addTaskDef("new", awstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("7000")))
	e.aws.runTask(run{cluster: "beta", taskDef: def, launchType: awstypes.LaunchTypeFargate})
	type result struct {
		groups []*targets.Group
		err    error
	}
	done := make(chan result, 1)
	go func() {
		groups, err := e.src.Discover(context.Background())
		done <- result{groups, err}
	}()
	require.Equal(t, "ListTasks/alpha", e.aws.holds.Next(t))
	require.Eventually(t, func() bool { return e.aws.callCounts()[opListTasks] >= 4 }, 5*time.Second, 5*time.Millisecond,
		"beta is listed while alpha's call hangs")
	release()
	got := <-done
	require.ErrorIs(t, got.err, hold.ErrReleased)
	require.EqualError(t, got.err, `cluster "alpha": ListTasks: no answer within the call timeout`)
	require.Len(t, got.groups, 7)
	require.Subset(t, endpoints(got.groups), want)
}
