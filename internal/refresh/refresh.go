// Package refresh runs ecs-sd's discovery cycle: every source is asked for its targets, the
// results are merged into one list, and every sink (file_sd file, http_sd endpoint) is given it.
//
// The loop never trades good data for an error. A source that fails outright keeps its previous
// targets; a source that fails in part returns what it has (its own last-known targets fill the
// failed parts) together with the error. Until the list is complete, that is until every source
// has succeeded without error at least once since start, the targets of the list an earlier run
// left (the baseline) that the discovery lacks are kept in it, so that a restart during an AWS
// fault shrinks no output. Every sink gets the same list, rendered once.
package refresh

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Source discovers targets.
//
// Discover returns every target the source knows of. When part of the discovery failed it returns
// the targets it could still vouch for (including its last-known targets for the failed part) and
// a non-nil error; when nothing could be discovered it returns nil groups and an error, and the
// loop keeps the source's previous targets.
type Source interface {
	Name() string
	Discover(ctx context.Context) ([]*targets.Group, error)
}

// Sink receives the merged target list after every cycle (and the baseline before the first),
// sorted and rendered once for every sink.
type Sink interface {
	Name() string
	Update(ctx context.Context, snap targets.Snapshot) error
}

// Job is periodic work that runs once per cycle beside discovery (the Prometheus configuration
// sync). It is not an ECS task.
type Job interface {
	Name() string
	Run(ctx context.Context) error
}

// Options configures a Loop.
type Options struct {
	Interval time.Duration
	// Timeout bounds one cycle, so that a hung AWS call cannot stall discovery; a source that
	// runs out of time keeps its last targets. Default: twice the interval, at least a minute.
	Timeout time.Duration
	Sources []Source
	Sinks   []Sink
	Jobs    []Job
	// Baseline reads the target list an earlier run left (its file_sd file); nil, or a nil list,
	// when there is none. Until every source has had a discovery without error, the baseline's
	// targets that the discovery lacks (by endpoint, targets.Group.Key) stay in the list every
	// sink gets. It is read only when needed, at most once: by Prime, or else by the first cycle
	// that is not complete. A first discovery that is complete (the usual case) thus never holds
	// the baseline beside the discovered targets. Its groups are not modified.
	Baseline func() ([]*targets.Group, error)
	Logger   *slog.Logger
	// Metrics are the loop's metrics (NewMetrics); nil means unregistered ones.
	Metrics *Metrics
}

// Loop is the discovery cycle.
type Loop struct {
	opts Options

	mu        sync.Mutex
	last      map[string][]*targets.Group // per source, the last groups it returned
	succeeded map[string]bool             // sources that had a fully successful cycle
	ready     bool                        // complete: every source has succeeded once

	// The baseline, until the list is complete: read by earlier (nil once read), held as
	// baseline (nil until read).
	baseMu   sync.Mutex
	earlier  func() ([]*targets.Group, error)
	baseline []*targets.Group
	kept     int // baseline targets in the last list

	snapMu sync.Mutex
	snap   targets.Snapshot // the last list given to the sinks

	metrics *Metrics
}

// New builds a loop.
func New(opts Options) *Loop {
	opts.Logger = LoggerOrDiscard(opts.Logger)
	if opts.Timeout <= 0 {
		opts.Timeout = max(2*opts.Interval, time.Minute)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	opts.Metrics.initLabels(opts)
	return &Loop{
		opts:      opts,
		last:      map[string][]*targets.Group{},
		succeeded: map[string]bool{},
		earlier:   opts.Baseline,
		metrics:   opts.Metrics,
	}
}

// Ready reports whether the list is complete: every source has had a discovery without error
// since start. Until then the list may hold targets of the baseline, or lack targets that a
// failing part of a source (a denied namespace, say) has never returned.
func (l *Loop) Ready() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready
}

// Prime gives every sink the baseline (an empty list when there is none), before the first
// cycle: the outputs hold the earlier run's targets from the start, a missing file_sd file is
// created at once, and the http_sd endpoint never answers with fewer targets than the file.
//
// The baseline is then held as the snapshot holds it, compressed, and read back from there only
// if a cycle is not complete: at 10 000 targets its label sets are about as large as those of
// the discovery, and a restart would otherwise hold both.
func (l *Loop) Prime(ctx context.Context) error {
	l.baseMu.Lock()
	defer l.baseMu.Unlock()
	groups, err := l.loadBaseline()
	if err != nil {
		return err
	}
	snap, err := targets.NewSnapshot(slices.Clone(groups))
	if err != nil {
		return err
	}
	l.kept = len(groups)
	if l.kept > 0 {
		l.opts.Logger.Info("Serving the earlier target list until every source has succeeded", "targets", l.kept)
		compressed := snap.Gzip // not snap: its groups are let go
		l.baseline, l.earlier = nil, func() ([]*targets.Group, error) { return readCompressed(compressed) }
	}
	return errors.Join(l.publish(ctx, snap)...)
}

// loadBaseline returns the baseline, reading it first if it was not read yet. l.baseMu is held.
func (l *Loop) loadBaseline() ([]*targets.Group, error) {
	if l.earlier == nil {
		return l.baseline, nil
	}
	groups, err := l.earlier()
	if err != nil {
		return nil, fmt.Errorf("read the earlier target list: %w", err)
	}
	l.earlier, l.baseline = nil, groups
	return groups, nil
}

// withBaseline returns merged with the baseline's targets that it lacks (kept) while the list is
// not complete; once it is, the baseline is dropped and merged returned as it is, with the
// number of the baseline's targets it lacks when the baseline had been read (-1 otherwise).
func (l *Loop) withBaseline(merged []*targets.Group, complete bool) (out []*targets.Group, kept int, err error) {
	l.baseMu.Lock()
	defer l.baseMu.Unlock()
	if complete {
		kept = -1
		if l.baseline != nil {
			kept = len(lacking(merged, l.baseline))
		}
		l.earlier, l.baseline = nil, nil
		return merged, kept, nil
	}
	baseline, err := l.loadBaseline()
	if err != nil {
		return nil, 0, err
	}
	add := lacking(merged, baseline)
	return append(merged, add...), len(add), nil
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

// Run runs a cycle at once and then every interval until ctx is done.
func (l *Loop) Run(ctx context.Context) error {
	ticker := time.NewTicker(l.opts.Interval)
	defer ticker.Stop()
	for {
		// Errors are logged and counted inside RunOnce; the loop carries on.
		_ = l.RunOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// RunOnce runs one cycle: jobs and sources concurrently, then the sinks. It returns every error
// met, joined; the sinks are updated all the same.
func (l *Loop) RunOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	type result struct {
		groups []*targets.Group
		err    error
	}
	results := make([]result, len(l.opts.Sources))
	jobErrs := make([]error, len(l.opts.Jobs))
	var wg sync.WaitGroup
	for i, s := range l.opts.Sources {
		wg.Go(func() {
			start := time.Now()
			groups, err := s.Discover(ctx)
			l.metrics.duration.WithLabelValues(s.Name()).Observe(time.Since(start).Seconds())
			results[i] = result{groups, err}
		})
	}
	for i, j := range l.opts.Jobs {
		wg.Go(func() {
			if err := j.Run(ctx); err != nil {
				l.metrics.jobFailures.WithLabelValues(j.Name()).Inc()
				l.opts.Logger.Error("Periodic job failed", "job", j.Name(), "err", err)
				jobErrs[i] = fmt.Errorf("%s: %w", j.Name(), err)
			}
		})
	}
	wg.Wait()

	var errs []error
	l.mu.Lock()
	for i, s := range l.opts.Sources {
		r := results[i]
		name := s.Name()
		switch {
		case r.err == nil:
			l.last[name] = r.groups
			l.succeeded[name] = true
			l.metrics.lastSuccess.WithLabelValues(name).SetToCurrentTime()
		case r.groups != nil:
			l.last[name] = r.groups
		}
		if r.err != nil {
			l.metrics.failures.WithLabelValues(name).Inc()
			errs = append(errs, fmt.Errorf("source %s: %w", name, r.err))
			if r.groups != nil {
				l.opts.Logger.Warn("Discovery failed in part; keeping last-known targets for the failed part", "discovery", name, "targets", len(r.groups), "err", r.err)
			} else {
				l.opts.Logger.Error("Discovery failed; keeping previous targets", "discovery", name, "targets", len(l.last[name]), "err", r.err)
			}
		}
		l.metrics.targets.WithLabelValues(name).Set(float64(len(l.last[name])))
	}
	complete := len(l.succeeded) == len(l.opts.Sources)
	bySource := make(map[string][]*targets.Group, len(l.last))
	for k, v := range l.last {
		bySource[k] = v
	}
	l.mu.Unlock()

	merged, kept, err := l.withBaseline(targets.Merge(bySource), complete)
	if err != nil { // without it the list could shrink the outputs: they keep what they have
		l.opts.Logger.Error("Cannot read the earlier target list", "err", err)
		return errors.Join(append(errs, err)...)
	}
	snap, err := l.snapshot(merged)
	if err != nil { // label sets always encode; the outputs keep what they have
		l.opts.Logger.Error("Cannot render the target list", "err", err)
		return errors.Join(append(errs, err)...)
	}
	errs = append(errs, l.publish(ctx, snap)...)

	l.mu.Lock()
	first := complete && !l.ready
	l.ready = l.ready || complete
	l.mu.Unlock()
	l.baseMu.Lock()
	switch {
	case first && kept >= 0:
		l.opts.Logger.Info("First complete discovery", "targets", len(snap.Groups), "earlier_targets_dropped", kept)
	case first:
		l.opts.Logger.Info("First complete discovery", "targets", len(snap.Groups))
	case !complete && kept != l.kept:
		l.opts.Logger.Info("Keeping targets of the earlier list until every source has succeeded", "targets", len(snap.Groups), "earlier_targets", kept)
	}
	l.kept = max(kept, 0)
	l.baseMu.Unlock()
	for _, err := range jobErrs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// lacking returns the baseline groups whose endpoints groups lack.
func lacking(groups, baseline []*targets.Group) []*targets.Group {
	if len(baseline) == 0 {
		return nil
	}
	have := make(map[string]bool, len(groups))
	for _, g := range groups {
		have[g.Key()] = true
	}
	var out []*targets.Group
	for _, g := range baseline {
		if !have[g.Key()] {
			out = append(out, g)
		}
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

// readCompressed parses a snapshot's compressed list (targets.Snapshot.Gzip).
func readCompressed(data []byte) ([]*targets.Group, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read compressed target list: %w", err)
	}
	return targets.Read(zr)
}
