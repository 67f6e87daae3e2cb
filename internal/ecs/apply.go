package ecs

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Task statuses, as ECS writes them.
const (
	statusRunning = "RUNNING"
	statusStopped = "STOPPED"
)

// Current implements refresh.Applier: the targets of the last discovery with every task applied
// since (ApplyTask).
func (s *Source) Current() []*targets.Group {
	s.curMu.Lock()
	defer s.curMu.Unlock()
	return s.current
}

func (s *Source) setCurrent(groups []*targets.Group) {
	s.curMu.Lock()
	defer s.curMu.Unlock()
	s.current = groups
}

// ApplyTask takes in a task as an ECS Task State Change event describes it (the whole task), and
// reports whether the source's targets changed (Current then tells them).
//
// A task of a cluster the source does not discover (or has not discovered yet) is ignored. A
// RUNNING task whose desired status is not STOPPED gets its targets built from the event's task
// as a discovery builds a described task, with no DescribeTasks call: its task definition,
// container instance, EC2 instance and service come from the caches, read only when missing or
// due. A task that is STOPPED, or whose desired status is STOPPED, loses its targets. Other
// states (PENDING, say) change nothing: the task is described when a discovery lists it. An
// event older than the task the source holds (a lower version) is ignored.
//
// The task is kept in the source's per-task state, so the next discovery keeps its targets
// without describing it again; that discovery is authoritative: a stopped task that ListTasks
// still lists is described again, and a running task it no longer lists is forgotten.
// ApplyTask waits for a running discovery to end. When something the task needs cannot be read,
// the task keeps the targets it had, and the error is returned.
func (s *Source) ApplyTask(ctx context.Context, t awstypes.Task) (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entry, st := s.watching(aws.ToString(t.ClusterArn))
	arn := aws.ToString(t.TaskArn)
	if st == nil || arn == "" {
		return false, nil
	}
	prev := st.tasks[arn]
	if prev != nil && prev.task.Version > t.Version {
		return false, nil // an older event than what is held
	}
	switch {
	case aws.ToString(t.LastStatus) == statusStopped || aws.ToString(t.DesiredStatus) == statusStopped:
		if prev == nil {
			return false, nil
		}
		delete(st.tasks, arn)
	case aws.ToString(t.LastStatus) == statusRunning:
		ts := &taskState{task: t, described: s.opts.now()}
		if prev != nil {
			ts.groups = prev.groups
			if t.Tags == nil { // events carry no tags: the described task's stand
				ts.task.Tags = prev.task.Tags
			}
		}
		st.tasks[arn] = ts
		one := &clusterRun{entry: entry, state: &clusterState{tasks: map[string]*taskState{arn: ts}}}
		err = s.readFacts(ctx, []*clusterRun{one}, s.opts.now())
	default:
		return false, nil
	}
	before := st.groups
	st.groups = s.build(ctx, &clusterRun{entry: entry, state: st})
	s.targetsGauge.WithLabelValues(arnName(entry)).Set(float64(len(st.groups)))
	changed = !slices.Equal(before, st.groups)
	if changed {
		var out []*targets.Group
		for _, c := range s.clusters {
			out = append(out, c.groups...)
		}
		s.setCurrent(out)
	}
	return changed, err
}

// watching returns the entry and state of the discovered cluster whose ARN is clusterARN (nil
// when the source does not discover it).
func (s *Source) watching(clusterARN string) (string, *clusterState) {
	for entry, st := range s.clusters {
		if info := s.clusterInfo[entry]; entry == clusterARN || (info != nil && info.value.arn == clusterARN) {
			return entry, st
		}
	}
	return "", nil
}

// readFacts reads what the tasks of run need that is not cached (or is due), as a discovery
// does after DescribeTasks.
func (s *Source) readFacts(ctx context.Context, runs []*clusterRun, now time.Time) error {
	return errors.Join(
		s.readTaskDefinitions(ctx, runs),
		s.readContainerInstances(ctx, runs, now),
		s.readInstances(ctx, runs, now),
		s.readServices(ctx, runs, now),
	)
}
