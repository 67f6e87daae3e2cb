package ecs

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/require"
)

// task returns a copy of the fake's task arn, as an ECS Task State Change event carries it.
func (f *fakeAWS) task(arn string) awstypes.Task {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tasks := range f.tasks {
		for _, t := range tasks {
			if aws.ToString(t.TaskArn) == arn {
				return *t
			}
		}
	}
	panic("no task " + arn)
}

func (e *testEnv) apply(t *testing.T, task awstypes.Task) bool {
	t.Helper()
	changed, err := e.src.ApplyTask(context.Background(), task)
	require.NoError(t, err)
	return changed
}

func TestApplyTask(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	ci, def, _ := e.bridgeService(t)
	require.Equal(t, []string{"10.0.0.10:32768/metrics"}, endpoints(e.src.Current()))

	// A RUNNING task's targets come from the event alone: nothing is read, all is cached.
	second := e.aws.runTask(run{cluster: "prod", taskDef: def, group: "service:web", instance: ci})
	e.aws.resetCalls()
	require.True(t, e.apply(t, e.aws.task(second)))
	require.Empty(t, e.aws.callCounts())
	require.Equal(t, []string{"10.0.0.10:32768/metrics", "10.0.0.10:32769/metrics"}, endpoints(e.src.Current()))
	require.False(t, e.apply(t, e.aws.task(second)), "the same event twice changes nothing")

	// The next discovery keeps it without describing it.
	require.Equal(t, []string{"10.0.0.10:32768/metrics", "10.0.0.10:32769/metrics"}, endpoints(e.discover(t)))
	require.Zero(t, e.aws.callCounts()["DescribeTasks"])

	// An older event than the task held is ignored; a stopping or stopped task loses its targets.
	stopping := e.aws.task(second)
	stopping.Version = 3
	stopping.DesiredStatus = aws.String(statusStopped)
	older := e.aws.task(second)
	older.Version = 2
	require.True(t, e.apply(t, stopping))
	require.Equal(t, []string{"10.0.0.10:32768/metrics"}, endpoints(e.src.Current()))
	stopped := stopping
	stopped.Version, stopped.LastStatus = 4, aws.String(statusStopped)
	require.False(t, e.apply(t, stopped), "already gone")

	e.aws.resetCalls()
	third := e.aws.task(e.aws.runTask(run{cluster: "prod", taskDef: def, group: "service:web", instance: ci}))
	third.Version = 5
	require.True(t, e.apply(t, third))
	older = third
	older.Version, older.LastStatus, older.DesiredStatus = 4, aws.String(statusStopped), aws.String(statusStopped)
	require.False(t, e.apply(t, older), "an older event never overwrites a newer state")
	require.Equal(t, []string{"10.0.0.10:32768/metrics", "10.0.0.10:32770/metrics"}, endpoints(e.src.Current()))

	// A task not running yet changes nothing.
	pending := e.aws.task(e.aws.runTask(run{cluster: "prod", taskDef: def, group: "service:web", instance: ci, lastStatus: "PENDING"}))
	require.False(t, e.apply(t, pending))
	require.Empty(t, e.aws.callCounts())
}

func TestApplyTaskReadsWhatIsMissingOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	e.aws.addCluster("prod", nil)
	first := e.aws.addTaskDef("first", awstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("8080")))
	e.aws.runTask(run{cluster: "prod", taskDef: first, launchType: awstypes.LaunchTypeFargate})
	require.Len(t, e.discover(t), 1)

	// A task of a task definition not seen before: the definition is read, once; the task is
	// not described.
	e.aws.resetCalls()
	def := e.aws.addTaskDef("new", awstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100")))
	a := e.aws.task(e.aws.runTask(run{cluster: "prod", taskDef: def, launchType: awstypes.LaunchTypeFargate}))
	b := e.aws.task(e.aws.runTask(run{cluster: "prod", taskDef: def, launchType: awstypes.LaunchTypeFargate}))
	require.True(t, e.apply(t, a))
	require.True(t, e.apply(t, b))
	require.Equal(t, map[string]int{"DescribeTaskDefinition": 1}, e.aws.callCounts())
	require.Len(t, e.src.Current(), 3)

	// When it cannot be read the task gets no targets, and the error names the definition.
	e.aws.resetCalls()
	broken := e.aws.addTaskDef("broken", awstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100")))
	e.aws.setFail("DescribeTaskDefinition/"+broken, errInjected)
	changed, err := e.src.ApplyTask(context.Background(), e.aws.task(e.aws.runTask(run{cluster: "prod", taskDef: broken, launchType: awstypes.LaunchTypeFargate})))
	require.ErrorIs(t, err, errInjected)
	require.ErrorContains(t, err, broken)
	require.False(t, changed)
	require.Len(t, e.src.Current(), 3)
}

func TestApplyTaskIgnoresUnwatchedClusters(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	e.aws.addCluster("prod", nil)
	e.aws.addCluster("other", nil)
	def := e.aws.addTaskDef("fam", awstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("8080")))
	other := e.aws.task(e.aws.runTask(run{cluster: "other", taskDef: def, launchType: awstypes.LaunchTypeFargate}))

	// Before the first discovery no cluster is known yet: ignored, the discovery finds it.
	require.False(t, e.apply(t, other))
	require.Empty(t, e.discover(t))
	e.aws.resetCalls()
	require.False(t, e.apply(t, other))
	require.Empty(t, e.aws.callCounts())
	require.Empty(t, e.src.Current())
}
