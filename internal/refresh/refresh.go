// Package refresh runs ecs-sd's discovery: every interval each source is asked for its targets,
// and each time a source's discovery ends, its targets are merged with the latest of every other
// source into one list, which every sink (file_sd file, http_sd endpoint) is given. A source whose
// discovery is slow (a hung AWS call) so holds back no other source's changes.
//
// The loop never trades good data for an error. A source that fails outright keeps its previous
// targets; a source that fails in part returns what it has (its own last-known targets fill the
// failed parts) together with the error. Until the list is complete, that is until every source
// has succeeded without error at least once since start, the targets of the list an earlier run
// left (the baseline) that the discovery lacks are kept in it, so that a restart during an AWS
// fault shrinks no output. Every sink gets the same list, rendered once.
package refresh

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Source discovers targets.
//
// Discover returns every target the source knows of. When part of the discovery failed it returns
// the targets it could still vouch for (including its last-known targets for the failed part) and
// a non-nil error; when nothing could be discovered it returns nil groups and an error, and the
// loop keeps the source's previous targets. The loop never runs two discoveries of a source at
// once. Sources of one name (the same source in several AWS accounts and regions) are told apart
// by their Pair (Paired); their targets are merged under that name.
type Source interface {
	Name() string
	Discover(ctx context.Context) ([]*targets.Group, error)
}

// Progressive is a Source whose discovery is made of independent parts (Cloud Map's services),
// which can tell, while a discovery runs, what it holds already: a part that ends is published
// without waiting for a slow one.
type Progressive interface {
	Source
	// Progress returns, while a discovery runs, every target the source holds at that moment:
	// the parts the discovery has finished, fresh, and the last-known targets of the others,
	// as Discover would return them if it ended then. ok is false when no discovery runs or
	// the running one has nothing to tell yet. It is called while Discover runs.
	Progress() (groups []*targets.Group, ok bool)
}

// Applier is a Source that also takes changes between discoveries (event mode: a task that
// started or stopped) into its own state, and tells the targets that state gives at once.
//
// Current returns every target the source holds now: the last discovery's, with every change
// applied since. It must not wait for a running discovery. A change applied while a discovery
// runs must be in what that discovery's end leaves Current returning (the source keeps it in its
// state, or the discovery that ends after it is authoritative): the loop stores Current, not the
// discovery's result, when a discovery of an Applier ends, so an applied change is never lost
// to a discovery that began before it.
type Applier interface {
	Source
	Current() []*targets.Group
}

// Sink receives the merged target list each time a source has given new targets (and the
// baseline before the first), sorted and rendered once for every sink. The list is often the one
// it already has: a sink that writes only changes writes as often as the targets change.
type Sink interface {
	Name() string
	Update(ctx context.Context, snap targets.Snapshot) error
}

// Job is periodic work that runs once per interval beside discovery (the Prometheus
// configuration sync). It is not an ECS task.
type Job interface {
	Name() string
	Run(ctx context.Context) error
}

// Options configures a Loop.
type Options struct {
	Interval time.Duration
	// Timeout bounds one discovery of a source and one run of a job, so that a hung AWS call
	// cannot stall them; a source that runs out of time keeps its last targets. Default: twice
	// the interval, at least a minute.
	Timeout time.Duration
	// ProgressInterval is how often Run asks a Progressive source whose discovery is still
	// running what it holds, and publishes that when it changed. Default: a tenth of the
	// interval, from 100 ms to 1 s.
	ProgressInterval time.Duration
	Sources          []Source
	Sinks            []Sink
	Jobs             []Job
	// Baseline reads the target list an earlier run left (its file_sd file); nil, or a nil list,
	// when there is none. Until every source has had a discovery without error, the baseline's
	// targets that the discovery lacks (by endpoint, targets.Group.Key) stay in the list every
	// sink gets. It is read only when needed, at most once: by Prime, or else by the first cycle
	// that is not complete; it is then held compressed only, and its groups are decoded one at a
	// time as each list that is not complete is rendered (targets.WithLacking), never held beside
	// the discovered targets. Its groups are not modified.
	Baseline func() ([]*targets.Group, error)
	Logger   *slog.Logger
	// Metrics are the loop's metrics (NewMetrics); nil means unregistered ones.
	Metrics *Metrics
	// CountCalls, when not nil, counts the AWS calls of each discovery, for the status.
	CountCalls CallCounter
}

// Loop is the discovery loop.
type Loop struct {
	opts Options

	mu        sync.Mutex
	last      map[sourceKey][]*targets.Group // per source, the last groups it returned
	succeeded map[sourceKey]bool             // sources that had a discovery without error
	ready     bool                           // complete: every source has succeeded once
	states    map[sourceKey]sourceState      // per source, its last discovery, for the status
	wake      chan struct{}                  // Wake's asks, merged: one pending at most

	// The baseline, until the list is complete: read by earlier (nil once read), then held as
	// base, sorted and compressed only (no groups; zero when it is empty); read says it was read
	// and was a list.
	baseMu  sync.Mutex
	earlier func() ([]*targets.Group, error)
	base    targets.Snapshot
	baseLen int // its groups
	read    bool
	kept    int // baseline targets in the last list

	snapMu sync.Mutex
	snap   targets.Snapshot // the last list given to the sinks

	// The changes of the discovered list, for the status.
	chMu           sync.Mutex
	endpoints      []endpoint // the last list's, sorted by key
	diffed         []byte     // the Gzip of the last list compared
	changes        []Change   // oldest first, at most MaxChanges
	changesDropped int        // older changes dropped from changes

	metrics *Metrics
}

// New builds a loop.
func New(opts Options) *Loop {
	opts.Logger = LoggerOrDiscard(opts.Logger)
	if opts.Timeout <= 0 {
		opts.Timeout = max(2*opts.Interval, time.Minute)
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = min(max(opts.Interval/10, 100*time.Millisecond), time.Second)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	opts.Metrics.initLabels(opts)
	return &Loop{
		opts:      opts,
		last:      map[sourceKey][]*targets.Group{},
		succeeded: map[sourceKey]bool{},
		states:    map[sourceKey]sourceState{},
		earlier:   opts.Baseline,
		wake:      make(chan struct{}, 1),
		metrics:   opts.Metrics,
	}
}

// Wake asks Run to begin a discovery of every source at once, as an interval does but without the
// jobs: event mode's way to read a change without waiting for the next interval. A source whose
// discovery is running starts again as soon as it ends; asks made meanwhile are merged into
// that one discovery. It never blocks.
func (l *Loop) Wake() {
	select {
	case l.wake <- struct{}{}:
	default: // a wake is pending already
	}
}

// Publish gives every sink the merged list with the source's targets as it holds them now
// (Applier.Current): event mode's way to publish a change a source applied without a discovery.
// It is safe while a discovery of that source runs; nothing is published when the source's
// targets did not change. It returns the sinks' errors (logged and counted).
func (l *Loop) Publish(ctx context.Context, src Applier) []error {
	l.mu.Lock()
	changed := l.holdLocked(keyOf(src), src.Current())
	l.mu.Unlock()
	if !changed {
		return nil
	}
	return l.update(ctx)
}

// Ready reports whether the list is complete: every source has had a discovery without error
// since start. Until then the list may hold targets of the baseline, or lack targets that a
// failing part of a source (a denied namespace, say) has never returned.
func (l *Loop) Ready() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready
}

// Pending names the sources that have not had a discovery without error since start, sorted:
// "ecs", or with pairs "cloudmap in 111111111111/eu-west-1". Empty once the list is complete.
func (l *Loop) Pending() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.opts.Sources {
		if k := keyOf(s); !l.succeeded[k] {
			out = append(out, k.String())
		}
	}
	slices.Sort(out)
	return out
}

// Prime gives every sink the baseline (an empty list when there is none), before the first
// cycle: the outputs hold the earlier run's targets from the start, a missing file_sd file is
// created at once, and the http_sd endpoint never answers with fewer targets than the file.
//
// The baseline is held as the snapshot holds it, compressed, and its groups are decoded one at
// a time for each list that is not complete, never held: at 10 000 targets its label sets are
// about as large as those of the discovery, and a restart would otherwise hold both (Cloud Map's
// first discovery publishes the services it has finished while the others run, each such list
// with the baseline's targets it lacks).
func (l *Loop) Prime(ctx context.Context) error {
	l.baseMu.Lock()
	defer l.baseMu.Unlock()
	if err := l.loadBaseline(); err != nil {
		return err
	}
	snap := l.base
	l.kept = l.baseLen
	if l.kept > 0 {
		l.opts.Logger.Info("Serving the earlier target list until every source has succeeded", "targets", l.kept)
	} else {
		var err error
		if snap, err = targets.NewSnapshot(nil); err != nil {
			return err
		}
	}
	return errors.Join(l.publish(ctx, snap)...)
}

// loadBaseline reads the baseline if it was not read yet, and holds it compressed. l.baseMu is
// held.
func (l *Loop) loadBaseline() error {
	if l.earlier == nil {
		return nil
	}
	groups, err := l.earlier()
	if err != nil {
		return fmt.Errorf("read the earlier target list: %w", err)
	}
	var base targets.Snapshot
	if len(groups) > 0 {
		if base, err = targets.NewSnapshot(slices.Clone(groups)); err != nil {
			return err
		}
		base.Groups = nil // let go, here and in the sinks (List reads them back)
	}
	l.earlier, l.base, l.baseLen, l.read = nil, base, len(groups), groups != nil
	return nil
}

// list returns the snapshot of merged with the baseline's targets that it lacks (kept) while the
// list is not complete; once it is, the baseline is dropped and the snapshot is of merged as it
// is, with the number of the baseline's targets it lacks when the baseline had been read (-1
// otherwise).
func (l *Loop) list(merged []*targets.Group, complete bool) (snap targets.Snapshot, kept int, err error) {
	l.baseMu.Lock()
	defer l.baseMu.Unlock()
	if complete {
		kept = -1
		switch {
		case l.read && l.base.Gzip == nil:
			kept = 0
		case l.read:
			if kept, err = targets.CountLacking(merged, l.base); err != nil { // only logged: the list is complete
				l.opts.Logger.Error("Cannot read the earlier target list", "err", err)
				kept = -1
			}
		}
		l.earlier, l.base, l.baseLen, l.read = nil, targets.Snapshot{}, 0, false
		snap, err = l.snapshot(merged)
		return snap, kept, err
	}
	if err := l.loadBaseline(); err != nil {
		return targets.Snapshot{}, 0, err
	}
	if l.base.Gzip == nil {
		snap, err = l.snapshot(merged)
		return snap, 0, err
	}
	snap, kept, err = targets.WithLacking(merged, l.base)
	if err != nil {
		return targets.Snapshot{}, 0, fmt.Errorf("the earlier target list: %w", err)
	}
	l.snapMu.Lock()
	l.snap = snap
	l.snapMu.Unlock()
	return snap, kept, nil
}

// publish hands snap to every sink and returns their errors.
func (l *Loop) publish(ctx context.Context, snap targets.Snapshot) []error {
	var errs []error
	for _, sink := range l.opts.Sinks {
		if err := sink.Update(ctx, snap); err != nil {
			l.metrics.outputFailures.WithLabelValues(sink.Name()).Inc()
			l.opts.Logger.Error("Output update failed", "output", sink.Name(), "err", err)
			errs = append(errs, fmt.Errorf("output %s: %w", sink.Name(), err))
		}
	}
	return errs
}

// task is a source's discovery or a job, as Run schedules them.
type task struct {
	source  Source // a source, or
	job     Job
	running bool
	due     bool // an interval began while it ran: it runs again as soon as it ends
}

// ended is the end of the task at index i of Run's tasks, with the discovery's result when the
// task is a source's.
type ended struct {
	i      int
	result result
}

// Run discovers with every source and runs every job at once and then every interval, until ctx
// is done. Each source's result is published as soon as its discovery ends (and, for a
// Progressive source, while it runs: every ProgressInterval, when what it holds changed), merged
// with the latest result of every other source; sinks are given only that list, so one that
// writes only changes writes as often as the targets change.
//
// A source is never discovered twice at once, nor a job run twice at once: when an interval
// begins while its previous discovery (or run) has not ended, the next one starts as soon as
// that one ends, so a discovery that takes longer than the interval is followed by the next
// without a gap, and never overlaps it.
func (l *Loop) Run(ctx context.Context) error {
	tasks := make([]task, 0, len(l.opts.Sources)+len(l.opts.Jobs))
	for _, s := range l.opts.Sources {
		tasks = append(tasks, task{source: s})
	}
	for _, j := range l.opts.Jobs {
		tasks = append(tasks, task{job: j})
	}
	// Each task runs once at a time and ends once, so a send never blocks.
	endings := make(chan ended, len(tasks))
	var wg sync.WaitGroup
	defer wg.Wait()
	start := func(i int) {
		tasks[i].running, tasks[i].due = true, false
		source, job := tasks[i].source, tasks[i].job
		wg.Go(func() {
			if source != nil {
				endings <- ended{i, l.discover(ctx, source)}
				return
			}
			_ = l.runJob(ctx, job) // logged and counted
			endings <- ended{i: i}
		})
	}
	begin := func(jobs bool) {
		for i := range tasks {
			if tasks[i].job != nil && !jobs {
				continue
			}
			if tasks[i].running {
				tasks[i].due = true
			} else {
				start(i)
			}
		}
	}

	ticker := time.NewTicker(l.opts.Interval)
	defer ticker.Stop()
	progress := time.NewTicker(l.opts.ProgressInterval)
	defer progress.Stop()
	begin(true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			begin(true)
		case <-l.wake:
			begin(false)
		case e := <-endings:
			if ctx.Err() != nil {
				continue // shutting down: the discovery was cut short
			}
			t := &tasks[e.i]
			t.running = false
			if t.source != nil {
				_ = l.store(t.source, e.result) // logged and counted
				_ = l.update(ctx)               // logged and counted
			}
			if t.due {
				start(e.i)
			}
		case <-progress.C:
			l.progress(ctx, tasks)
		}
	}
}

// progress publishes what the Progressive sources whose discovery runs hold, when it changed.
func (l *Loop) progress(ctx context.Context, tasks []task) {
	changed := false
	for _, t := range tasks {
		p, ok := t.source.(Progressive)
		if !ok || !t.running {
			continue
		}
		if groups, ok := p.Progress(); ok && l.hold(keyOf(p), groups) {
			changed = true
		}
	}
	if changed {
		_ = l.update(ctx) // logged and counted
	}
}

// RunOnce runs one cycle: jobs and sources concurrently and, once every one has ended, the sinks
// once. It returns every error met, joined; the sinks are updated all the same.
func (l *Loop) RunOnce(ctx context.Context) error {
	results := make([]result, len(l.opts.Sources))
	jobErrs := make([]error, len(l.opts.Jobs))
	var wg sync.WaitGroup
	for i, s := range l.opts.Sources {
		wg.Go(func() { results[i] = l.discover(ctx, s) })
	}
	for i, j := range l.opts.Jobs {
		wg.Go(func() { jobErrs[i] = l.runJob(ctx, j) })
	}
	wg.Wait()

	var errs []error
	for i, s := range l.opts.Sources {
		errs = append(errs, l.store(s, results[i]))
	}
	errs = append(errs, l.update(ctx)...)
	return errors.Join(append(errs, jobErrs...)...)
}

// result is the outcome of one discovery.
type result struct {
	groups   []*targets.Group
	err      error
	duration time.Duration
	calls    int // AWS calls made, when counted
}

// discover runs one discovery of s, bounded by the timeout, and observes its duration.
func (l *Loop) discover(ctx context.Context, s Source) result {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	calls := func() int { return 0 }
	if l.opts.CountCalls != nil {
		ctx, calls = l.opts.CountCalls(ctx)
	}
	start := time.Now()
	groups, err := s.Discover(ctx)
	took := time.Since(start)
	l.metrics.duration.WithLabelValues(l.metrics.values(keyOf(s))...).Observe(took.Seconds())
	return result{groups, err, took, calls()}
}

// runJob runs j once, bounded by the timeout; its error is logged, counted and returned.
func (l *Loop) runJob(ctx context.Context, j Job) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	if err := j.Run(ctx); err != nil {
		l.metrics.jobFailures.WithLabelValues(j.Name()).Inc()
		l.opts.Logger.Error("Periodic job failed", "job", j.Name(), "err", err)
		return fmt.Errorf("%s: %w", j.Name(), err)
	}
	return nil
}

// store takes in the result of a discovery by the source s: its groups become the source's
// targets unless it failed outright. A failure is logged (with the source's pair) and counted,
// and returned.
func (l *Loop) store(s Source, r result) error {
	key := keyOf(s)
	name, values := key.name, l.metrics.values(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	if a, ok := s.(Applier); ok && r.groups != nil {
		r.groups = a.Current() // with the changes applied while the discovery ran
	}
	state := l.states[key]
	state.ended, state.duration, state.calls, state.lastErr = true, r.duration, r.calls, ""
	if r.err != nil {
		state.lastErr = r.err.Error()
	} else {
		state.lastSuccess = time.Now()
	}
	l.states[key] = state
	switch {
	case r.err == nil:
		l.last[key] = r.groups
		l.succeeded[key] = true
		l.metrics.lastSuccess.WithLabelValues(values...).SetToCurrentTime()
		l.metrics.consecutive.WithLabelValues(values...).Set(0)
	case r.groups != nil:
		l.last[key] = r.groups
	}
	l.metrics.targets.WithLabelValues(values...).Set(float64(len(l.last[key])))
	if r.err == nil {
		return nil
	}
	l.metrics.failures.WithLabelValues(values...).Inc()
	l.metrics.consecutive.WithLabelValues(values...).Inc()
	logger := key.pair.Logger(l.opts.Logger)
	if r.groups != nil {
		logger.Warn("Discovery failed in part; keeping last-known targets for the failed part", "discovery", name, "targets", len(r.groups), "err", r.err)
	} else {
		logger.Error("Discovery failed; keeping previous targets", "discovery", name, "targets", len(l.last[key]), "err", r.err)
	}
	return fmt.Errorf("source %s: %w", key, r.err)
}

// hold takes in what the running discovery of the source key holds (Progressive), and reports
// whether it differs from the source's targets, group by group.
func (l *Loop) hold(key sourceKey, groups []*targets.Group) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holdLocked(key, groups)
}

// holdLocked is hold with l.mu held.
func (l *Loop) holdLocked(key sourceKey, groups []*targets.Group) bool {
	if slices.Equal(groups, l.last[key]) {
		return false
	}
	l.last[key] = groups
	l.metrics.targets.WithLabelValues(l.metrics.values(key)...).Set(float64(len(groups)))
	return true
}

// update merges the targets of every source, with the baseline's that they lack until the list
// is complete, and hands the list to every sink. It returns the errors of the sinks (logged and
// counted), or why no list could be made: then the outputs keep what they have.
func (l *Loop) update(ctx context.Context) []error {
	l.mu.Lock()
	complete := len(l.succeeded) == len(l.opts.Sources)
	bySource := byName(l.last)
	l.mu.Unlock()

	merged := targets.Merge(bySource)
	snap, kept, err := l.list(merged, complete)
	if err != nil { // without the baseline the list could shrink the outputs: they keep what they have
		l.opts.Logger.Error("Cannot render the target list", "err", err)
		return []error{err}
	}
	errs := l.publish(ctx, snap)
	l.changed(merged, snap)

	l.mu.Lock()
	first := complete && !l.ready
	l.ready = l.ready || complete
	l.mu.Unlock()
	l.baseMu.Lock()
	defer l.baseMu.Unlock()
	switch {
	case first && kept >= 0:
		l.opts.Logger.Info("First complete discovery", "targets", len(merged), "earlier_targets_dropped", kept)
	case first:
		l.opts.Logger.Info("First complete discovery", "targets", len(merged))
	case !complete && kept != l.kept:
		l.opts.Logger.Info("Keeping targets of the earlier list until every source has succeeded", "targets", len(merged)+kept, "earlier_targets", kept)
	}
	l.kept = max(kept, 0)
	return errs
}

// changed records the changes of the discovered list merged, whose list (with the baseline's
// targets while it is not complete) is snap, unless snap is the list compared last.
func (l *Loop) changed(merged []*targets.Group, snap targets.Snapshot) {
	l.chMu.Lock()
	same := len(snap.Gzip) == len(l.diffed) && len(snap.Gzip) > 0 && &snap.Gzip[0] == &l.diffed[0]
	l.diffed = snap.Gzip
	l.chMu.Unlock()
	if !same {
		l.noteChanges(merged, time.Now())
	}
}

// byName returns the targets of every source by source name: those of the sources of one name in
// several pairs together, pair by pair in order.
func byName(last map[sourceKey][]*targets.Group) map[string][]*targets.Group {
	out := make(map[string][]*targets.Group, len(last))
	keys := slices.SortedFunc(maps.Keys(last), func(a, b sourceKey) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.pair.Account, b.pair.Account), strings.Compare(a.pair.Region, b.pair.Region))
	})
	for _, k := range keys {
		if out[k.name] == nil {
			out[k.name] = last[k] // one pair: no copy
			continue
		}
		out[k.name] = append(slices.Clip(out[k.name]), last[k]...)
	}
	return out
}

// snapshot returns the sorted and rendered list of groups: the last one, not rendered again, when
// the groups are the same (targets.Snapshot.Update).
func (l *Loop) snapshot(groups []*targets.Group) (targets.Snapshot, error) {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	snap, err := l.snap.Update(groups)
	if err == nil {
		l.snap = snap
	}
	return snap, err
}
