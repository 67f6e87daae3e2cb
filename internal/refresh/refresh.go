// Package refresh runs ecs-sd's discovery cycle: every source is asked for its targets, the
// results are merged into one list, and every sink (file_sd file, http_sd endpoint) is given it.
//
// The loop never trades good data for an error. A source that fails outright keeps its previous
// targets; a source that fails in part returns what it has (its own last-known targets fill the
// failed parts) together with the error. Sinks are told whether the list is complete, that is
// whether every source has succeeded without error at least once since start, so that a file
// written by an earlier run is not shrunk by a first cycle that failed.
package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// Sink receives the merged target list after every cycle, sorted and rendered once for every
// sink. complete is false until every source has had one fully successful cycle.
type Sink interface {
	Name() string
	Update(ctx context.Context, snap targets.Snapshot, complete bool) error
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
	Logger  *slog.Logger
	// Metrics are the loop's metrics (NewMetrics); nil means unregistered ones.
	Metrics *Metrics
}

// Loop is the discovery cycle.
type Loop struct {
	opts Options

	mu        sync.Mutex
	last      map[string][]*targets.Group // per source, the last groups it returned
	succeeded map[string]bool             // sources that had a fully successful cycle
	ready     bool

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
		metrics:   opts.Metrics,
	}
}

// Ready reports whether every source has returned live targets at least once.
func (l *Loop) Ready() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready
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
	live := true
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
		if _, ok := l.last[name]; !ok {
			live = false
		}
		l.metrics.targets.WithLabelValues(name).Set(float64(len(l.last[name])))
	}
	complete := len(l.succeeded) == len(l.opts.Sources)
	bySource := make(map[string][]*targets.Group, len(l.last))
	for k, v := range l.last {
		bySource[k] = v
	}
	l.mu.Unlock()

	snap, err := l.snapshot(targets.Merge(bySource))
	if err != nil { // label sets always encode; the outputs keep what they have
		l.opts.Logger.Error("Cannot render the target list", "err", err)
		return errors.Join(append(errs, err)...)
	}
	for _, sink := range l.opts.Sinks {
		if err := sink.Update(ctx, snap, complete); err != nil {
			l.metrics.outputFailures.WithLabelValues(sink.Name()).Inc()
			l.opts.Logger.Error("Output update failed", "output", sink.Name(), "err", err)
			errs = append(errs, fmt.Errorf("output %s: %w", sink.Name(), err))
		}
	}
	if live {
		l.mu.Lock()
		if !l.ready {
			l.opts.Logger.Info("First discovery done", "targets", len(snap.Groups))
		}
		l.ready = true
		l.mu.Unlock()
	}
	for _, err := range jobErrs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
