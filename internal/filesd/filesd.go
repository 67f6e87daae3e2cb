// Package filesd writes the target list as a Prometheus file_sd file.
package filesd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-sd/ecs-sd/internal/atomicfile"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Sink writes target groups to one file, atomically and only when the content changes.
//
// A file left by an earlier run is the baseline: until the first complete discovery (every
// source succeeded once), targets of the baseline that the current discovery lacks are kept, so a
// restart during an AWS fault does not shrink a good file. The baseline is read only when a
// discovery is not complete: nothing writes the file before, and when the first discovery is
// complete (the usual case) it is never needed, nor held beside the discovered targets. When no
// file exists at start, "[]" is written at once so that Prometheus starts with a valid (empty)
// file.
type Sink struct {
	path     string
	logger   *slog.Logger
	earlier  bool             // a file of an earlier run is the baseline, not read yet
	baseline []*targets.Group // read
	writes   *prometheus.CounterVec
}

// New prepares the sink for path, reading or creating the file.
func New(path string, logger *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	logger = refresh.LoggerOrDiscard(logger)
	s := &Sink{path: path, logger: logger, writes: newWrites(reg)}
	_, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		empty, err := targets.NewSnapshot(nil)
		if err != nil {
			return nil, err
		}
		if err := s.write(empty); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	default:
		s.earlier = true
	}
	return s, nil
}

// Name implements refresh.Sink.
func (s *Sink) Name() string { return "file_sd" }

// Update implements refresh.Sink. It writes the snapshot's rendered list as it is, unless
// baseline targets must be kept beside it (until the first complete discovery).
func (s *Sink) Update(_ context.Context, snap targets.Snapshot, complete bool) error {
	switch {
	case complete:
		s.earlier, s.baseline = false, nil
	case s.earlier:
		s.earlier, s.baseline = false, s.readBaseline()
	}
	if kept := lacking(snap.Groups, s.baseline); len(kept) > 0 {
		var err error
		if snap, err = targets.NewSnapshot(append(slices.Clone(snap.Groups), kept...)); err != nil {
			s.writes.WithLabelValues("error").Inc()
			return err
		}
	}
	return s.write(snap)
}

// readBaseline reads the file of the earlier run; nil when it cannot be read or is not valid
// (logged: it is replaced).
func (s *Sink) readBaseline() []*targets.Group {
	f, err := os.Open(s.path)
	if err == nil {
		defer f.Close()
		var groups []*targets.Group
		if groups, err = targets.Read(f); err == nil {
			return groups
		}
	}
	s.logger.Warn("Existing file_sd file is not valid; it will be replaced", "file", s.path, "err", err)
	return nil
}

// write writes the list of snap, uncompressed on the way.
func (s *Sink) write(snap targets.Snapshot) error {
	changed, err := atomicfile.WriteFrom(s.path, snap.Size, 0o644, func(w io.Writer) error {
		_, err := snap.WriteTo(w)
		return err
	})
	switch {
	case err != nil:
		s.writes.WithLabelValues("error").Inc()
		return err
	case changed:
		s.writes.WithLabelValues("written").Inc()
		s.logger.Info("Wrote file_sd file", "file", s.path, "targets", len(snap.Groups))
	default:
		s.writes.WithLabelValues("unchanged").Inc()
	}
	return nil
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
