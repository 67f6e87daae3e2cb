// Package filesd writes the target list as a Prometheus file_sd file.
package filesd

import (
	"context"
	"errors"
	"fmt"
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
// restart during an AWS fault does not shrink a good file. When no file exists at start, "[]" is
// written at once so that Prometheus starts with a valid (empty) file.
type Sink struct {
	path     string
	logger   *slog.Logger
	baseline []*targets.Group
	writes   *prometheus.CounterVec
}

// New prepares the sink for path, reading or creating the file.
func New(path string, logger *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	logger = refresh.LoggerOrDiscard(logger)
	s := &Sink{path: path, logger: logger, writes: newWrites(reg)}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		empty, err := targets.NewSnapshot(nil)
		if err != nil {
			return nil, err
		}
		if err := s.write(empty.JSON, 0); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	default:
		groups, err := targets.Unmarshal(data)
		if err != nil {
			logger.Warn("Existing file_sd file is not valid; it will be replaced", "file", path, "err", err)
		}
		s.baseline = groups
	}
	return s, nil
}

// Name implements refresh.Sink.
func (s *Sink) Name() string { return "file_sd" }

// Update implements refresh.Sink. It writes the snapshot's rendered list as it is, unless
// baseline targets must be kept beside it (until the first complete discovery).
func (s *Sink) Update(_ context.Context, snap targets.Snapshot, complete bool) error {
	if complete {
		s.baseline = nil
	}
	data, n := snap.JSON, len(snap.Groups)
	if kept := lacking(snap.Groups, s.baseline); len(kept) > 0 {
		groups := append(slices.Clone(snap.Groups), kept...)
		var err error
		if data, err = targets.Marshal(groups); err != nil {
			s.writes.WithLabelValues("error").Inc()
			return err
		}
		n = len(groups)
	}
	return s.write(data, n)
}

// write writes data, the rendered list of n targets.
func (s *Sink) write(data []byte, n int) error {
	changed, err := atomicfile.Write(s.path, data, 0o644)
	switch {
	case err != nil:
		s.writes.WithLabelValues("error").Inc()
		return err
	case changed:
		s.writes.WithLabelValues("written").Inc()
		s.logger.Info("Wrote file_sd file", "file", s.path, "targets", n)
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
