// Package filesd writes the target list as a Prometheus file_sd file.
package filesd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

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
		if err := s.write([]*targets.Group{}); err != nil {
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

// Update implements refresh.Sink.
func (s *Sink) Update(_ context.Context, groups []*targets.Group, complete bool) error {
	if complete {
		s.baseline = nil
	} else if len(s.baseline) > 0 {
		groups = withBaseline(groups, s.baseline)
	}
	return s.write(groups)
}

func (s *Sink) write(groups []*targets.Group) error {
	data, err := targets.Marshal(groups)
	if err != nil {
		s.writes.WithLabelValues("error").Inc()
		return err
	}
	changed, err := atomicfile.Write(s.path, data, 0o644)
	switch {
	case err != nil:
		s.writes.WithLabelValues("error").Inc()
		return err
	case changed:
		s.writes.WithLabelValues("written").Inc()
		s.logger.Info("Wrote file_sd file", "file", s.path, "targets", len(groups))
	default:
		s.writes.WithLabelValues("unchanged").Inc()
	}
	return nil
}

// withBaseline adds to groups every baseline group whose endpoint groups lack.
func withBaseline(groups, baseline []*targets.Group) []*targets.Group {
	have := make(map[string]bool, len(groups))
	for _, g := range groups {
		have[g.Key()] = true
	}
	out := append([]*targets.Group(nil), groups...)
	for _, g := range baseline {
		if !have[g.Key()] {
			out = append(out, g)
		}
	}
	return out
}
