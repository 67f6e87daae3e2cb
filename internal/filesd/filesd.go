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

// Sink writes the rendered target list to one file, atomically and only when the content
// changes; the list is compared with the file and written as it is uncompressed, never held
// whole. Temporary files of writes that an earlier run did not finish (it was killed) are
// removed at start. The file an earlier run left is the refresh loop's baseline (Earlier): its
// targets stay in every output until every source has succeeded once, so a restart during an
// AWS fault does not shrink a good file.
type Sink struct {
	path   string
	logger *slog.Logger
	writes *prometheus.CounterVec
}

// New prepares the sink for path, removing the temporary files an interrupted write left.
func New(path string, logger *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	logger = refresh.LoggerOrDiscard(logger)
	removed, err := atomicfile.RemoveStale(path)
	for _, f := range removed {
		logger.Info("Removed a temporary file of an interrupted write", "file", f)
	}
	if err != nil {
		return nil, err
	}
	return &Sink{path: path, logger: logger, writes: newWrites(reg)}, nil
}

// Earlier returns the target list of the file at path that an earlier run wrote: nil when there
// is none, or when it is not valid (logged; the first write replaces it). The file is parsed as
// it is read (targets.Read), never held whole. An error means the file cannot be read.
func Earlier(path string, logger *slog.Logger) ([]*targets.Group, error) {
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	groups, err := targets.Read(f)
	if pathErr := (*fs.PathError)(nil); errors.As(err, &pathErr) {
		return nil, fmt.Errorf("read %s: %w", path, pathErr.Err)
	}
	if err == nil && slices.Contains(groups, nil) {
		err = errors.New("a target group is null")
	}
	if err != nil {
		refresh.LoggerOrDiscard(logger).Warn("Existing file_sd file is not valid; it will be replaced", "file", path, "err", err)
		return nil, nil
	}
	return groups, nil
}

// Name implements refresh.Sink.
func (s *Sink) Name() string { return "file_sd" }

// Update implements refresh.Sink: it writes the snapshot's rendered list as it is.
func (s *Sink) Update(_ context.Context, snap targets.Snapshot) error {
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
		if snap.Groups == nil { // held compressed only: the count is not at hand
			s.logger.Info("Wrote file_sd file", "file", s.path)
		} else {
			s.logger.Info("Wrote file_sd file", "file", s.path, "targets", len(snap.Groups))
		}
	default:
		s.writes.WithLabelValues("unchanged").Inc()
	}
	return nil
}
