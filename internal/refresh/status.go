package refresh

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Health of a source, as the status shows it.
const (
	HealthUp      = "up"      // its last discovery ended without error
	HealthFailing = "failing" // its last discovery ended with an error (in full or in part)
	HealthPending = "pending" // no discovery of it has ended yet
)

// MaxChanges is how many of the latest changes of the target list the loop keeps for the status.
const MaxChanges = 100

// Skipper is a Source that tells the items it skipped at its last discovery (its Skips).
type Skipper interface {
	Skipped() []Skipped
}

// CallCounter makes a context in which the AWS calls made are counted, and the function that
// tells how many were made so far (awsclient.CountCalls).
type CallCounter func(ctx context.Context) (context.Context, func() int)

// SourceStatus is the state of one source (in one pair) as the status shows it.
type SourceStatus struct {
	Name    string `json:"name"`
	Account string `json:"account,omitempty"`
	Region  string `json:"region,omitempty"`
	Health  string `json:"health"`
	// LastSuccess is the end of the last discovery without error; nil before the first.
	LastSuccess *time.Time `json:"last_success"`
	// LastError is the error of the last discovery; empty when it had none.
	LastError string `json:"last_error"`
	// LastDuration is how long the last discovery took, in seconds.
	LastDuration float64 `json:"last_duration_seconds"`
	// Targets are the targets the source holds now.
	Targets int `json:"targets"`
	// AWSCalls are the AWS API calls its last discovery made (after retries, as
	// ecs_sd_aws_api_calls_total counts them); -1 when they are not counted.
	AWSCalls int `json:"aws_calls"`
}

// Change is a target added to the list or removed from it.
type Change struct {
	Time   time.Time `json:"time"`
	Change string    `json:"change"` // added or removed
	// Target is the endpoint Prometheus scrapes: scheme, address and metrics path.
	Target string `json:"target"`
	// Source names the sources that found it, comma-separated.
	Source string `json:"source"`
}

// Status is what the loop knows of its sources, what they skipped, and the latest changes of the
// target list. Lists that were cut say how many items they left out.
type Status struct {
	Sources        []SourceStatus `json:"sources"`
	Skipped        []Skipped      `json:"skipped"`
	SkippedOmitted int            `json:"skipped_omitted"`
	Changes        []Change       `json:"changes"` // newest first
	ChangesOmitted int            `json:"changes_omitted"`
}

// sourceState is what the loop remembers of a source's last discovery.
type sourceState struct {
	ended       bool
	lastErr     string
	lastSuccess time.Time
	duration    time.Duration
	calls       int
}

// Status returns the state of every source, in the order of the loop's sources, at most
// maxSkipped skipped items (by source, pair, reason and ids) and the changes of the list since
// start, newest first (at most MaxChanges).
func (l *Loop) Status(maxSkipped int) Status {
	st := Status{Sources: []SourceStatus{}, Skipped: []Skipped{}}
	l.mu.Lock()
	for _, s := range l.opts.Sources {
		k := keyOf(s)
		ss := l.states[k]
		at := locationOf(s)
		out := SourceStatus{Name: k.name, Account: at.Account, Region: at.Region, Health: HealthPending,
			LastError: ss.lastErr, LastDuration: ss.duration.Seconds(), Targets: len(l.last[k]), AWSCalls: -1}
		if l.opts.CountCalls != nil {
			out.AWSCalls = ss.calls
		}
		switch {
		case ss.ended && ss.lastErr == "":
			out.Health = HealthUp
		case ss.ended:
			out.Health = HealthFailing
		}
		if !ss.lastSuccess.IsZero() {
			t := ss.lastSuccess
			out.LastSuccess = &t
		}
		st.Sources = append(st.Sources, out)
	}
	l.mu.Unlock()

	for _, s := range l.opts.Sources {
		if sk, ok := s.(Skipper); ok {
			st.Skipped = append(st.Skipped, sk.Skipped()...)
		}
	}
	slices.SortFunc(st.Skipped, compareSkipped)
	if len(st.Skipped) > maxSkipped {
		st.SkippedOmitted = len(st.Skipped) - maxSkipped
		st.Skipped = slices.Clip(st.Skipped[:maxSkipped])
	}

	l.chMu.Lock()
	defer l.chMu.Unlock()
	st.Changes = make([]Change, len(l.changes))
	for i, c := range l.changes {
		st.Changes[len(l.changes)-1-i] = c
	}
	st.ChangesOmitted = l.changesDropped
	return st
}

// Targets returns the list last given to the sinks (with the earlier run's targets while the
// list is not complete); nil before the first.
func (l *Loop) Targets() ([]*targets.Group, error) {
	l.snapMu.Lock()
	snap := l.snap
	l.snapMu.Unlock()
	if snap.Gzip == nil {
		return nil, nil
	}
	return snap.List()
}

// endpoint is a target of the list as the changes compare them.
type endpoint struct {
	key    string // targets.Group.Key
	source string
}

// noteChanges records the targets of merged (the discovered list) that the previous list lacked
// and those it had that merged lacks, at now. Only keys are compared.
func (l *Loop) noteChanges(merged []*targets.Group, now time.Time) {
	eps := make([]endpoint, len(merged))
	for i, g := range merged {
		eps[i] = endpoint{g.Key(), strings.Trim(string(g.Labels[targets.LabelSource]), ",")}
	}
	slices.SortFunc(eps, func(a, b endpoint) int { return cmp.Compare(a.key, b.key) })
	eps = slices.CompactFunc(eps, func(a, b endpoint) bool { return a.key == b.key })

	l.chMu.Lock()
	defer l.chMu.Unlock()
	prev := l.endpoints
	l.endpoints = eps
	i, j := 0, 0
	for i < len(prev) || j < len(eps) {
		switch {
		case j == len(eps) || i < len(prev) && prev[i].key < eps[j].key:
			l.addChange(Change{now, "removed", prev[i].key, prev[i].source})
			i++
		case i == len(prev) || eps[j].key < prev[i].key:
			l.addChange(Change{now, "added", eps[j].key, eps[j].source})
			j++
		default:
			i++
			j++
		}
	}
}

// addChange appends c to the ring of changes, dropping the oldest beyond MaxChanges. l.chMu is
// held.
func (l *Loop) addChange(c Change) {
	if len(l.changes) == MaxChanges {
		copy(l.changes, l.changes[1:])
		l.changes = l.changes[:MaxChanges-1]
		l.changesDropped++
	}
	l.changes = append(l.changes, c)
}
