package events

import "time"

// Defaults of how long a task's version is remembered.
const (
	// DefaultStoppedRetention is how long the version of a task last seen STOPPED is kept: longer
	// than any redelivery or reordering of its events (SQS redelivers after the visibility
	// timeout, EventBridge retries for minutes), after which the task is over for good.
	DefaultStoppedRetention = time.Hour
	// DefaultIdleRetention is how long the version of a task that has had no event is kept, which
	// bounds the memory of tasks whose STOPPED event was lost. An event older than that which
	// arrives later would be applied; the periodic resync corrects it.
	DefaultIdleRetention = 24 * time.Hour
	// sweepInterval is how often expired versions are forgotten.
	sweepInterval = time.Minute
)

// versions holds, per task ARN, the highest task version applied, so that an event that arrives
// late or twice is not applied over a newer one. Memory is bounded: an entry is forgotten
// stoppedRetention after its task was seen STOPPED, or idleRetention after its last event.
// It is used by one goroutine.
type versions struct {
	stoppedRetention, idleRetention time.Duration
	byTask                          map[string]versionEntry
	lastSweep                       time.Time
}

type versionEntry struct {
	version int64
	expires time.Time
}

func newVersions(stoppedRetention, idleRetention time.Duration) *versions {
	return &versions{stoppedRetention: stoppedRetention, idleRetention: idleRetention, byTask: map[string]versionEntry{}}
}

// apply records version for task when it is newer than the one held and reports whether it was;
// stopped says whether the task's last status is STOPPED.
func (v *versions) apply(task string, version int64, stopped bool, now time.Time) bool {
	v.sweep(now)
	if e, ok := v.byTask[task]; ok && version <= e.version {
		return false
	}
	keep := v.idleRetention
	if stopped {
		keep = v.stoppedRetention
	}
	v.byTask[task] = versionEntry{version: version, expires: now.Add(keep)}
	return true
}

// sweep forgets the expired entries, at most once per sweepInterval.
func (v *versions) sweep(now time.Time) {
	if now.Sub(v.lastSweep) < sweepInterval {
		return
	}
	v.lastSweep = now
	for task, e := range v.byTask {
		if !now.Before(e.expires) {
			delete(v.byTask, task)
		}
	}
}

// len returns the number of tasks whose version is held.
func (v *versions) len() int { return len(v.byTask) }
