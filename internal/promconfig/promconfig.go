// Package promconfig is the seed's "config reloader": it keeps a Prometheus configuration file in
// step with an SSM parameter and asks Prometheus to reload when the file changes.
package promconfig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-sd/ecs-sd/internal/atomicfile"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/ssmparam"
)

// Options configures a Syncer.
type Options struct {
	// Parameter is the SSM parameter holding the whole Prometheus configuration.
	Parameter string
	// Path is the file written.
	Path string
	// ReloadURL, when set, receives a POST after the file changed (Prometheus's /-/reload, which
	// needs --web.enable-lifecycle).
	ReloadURL  string
	HTTPClient *http.Client
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Modes of the configuration file: a SecureString's value is not for everyone to read. The
// owner (ecs-sd) and its group read it; Prometheus must run as the same user or in that group
// (the deploy kit runs it in ecs-sd's group, 65532).
const (
	modePublic os.FileMode = 0o644
	modeSecret os.FileMode = 0o640
)

// Syncer runs once per refresh cycle.
type Syncer struct {
	api           ssmparam.API
	opts          Options
	reloadPending bool
	missingWarned bool
	metrics
}

// New creates a Syncer, and removes the temporary files that interrupted writes of the file
// left (a failure to is logged: the sync reports its own errors when it runs).
func New(api ssmparam.API, opts Options) *Syncer {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	opts.Logger = refresh.LoggerOrDiscard(opts.Logger)
	removed, err := atomicfile.RemoveStale(opts.Path)
	for _, f := range removed {
		opts.Logger.Info("Removed a temporary file of an interrupted write", "file", f)
	}
	if err != nil {
		opts.Logger.Warn("Cannot remove temporary files of interrupted writes", "err", err)
	}
	return &Syncer{api: api, opts: opts, metrics: newMetrics(opts.Registerer)}
}

// Name implements refresh.Job.
func (s *Syncer) Name() string { return "prometheus_config" }

// Run implements refresh.Job: read the parameter, rewrite the file when it differs, reload.
// A missing parameter is a warning (logged once until it appears), never an empty file. The file
// of a SecureString has no world access (0640); of another parameter type it is 0644.
func (s *Syncer) Run(ctx context.Context) error {
	param, err := ssmparam.Read(ctx, s.api, s.opts.Parameter)
	if errors.Is(err, ssmparam.ErrNotFound) {
		if !s.missingWarned {
			s.opts.Logger.Warn("Prometheus configuration parameter not found; leaving the configuration file as it is", "parameter", s.opts.Parameter)
			s.missingWarned = true
		}
		return nil
	}
	if err != nil {
		return err
	}
	s.missingWarned = false
	mode := modePublic
	if param.Secure {
		mode = modeSecret
	}
	changed, err := atomicfile.Write(s.opts.Path, []byte(param.Value), mode)
	if err != nil {
		return err
	}
	if changed {
		s.updates.Inc()
		s.opts.Logger.Info("Wrote Prometheus configuration", "file", s.opts.Path, "parameter", s.opts.Parameter)
		s.reloadPending = s.opts.ReloadURL != ""
	}
	if s.reloadPending {
		if err := s.reload(ctx); err != nil {
			s.reloads.WithLabelValues("error").Inc()
			return fmt.Errorf("reload prometheus: %w", err)
		}
		s.reloads.WithLabelValues("success").Inc()
		s.reloadPending = false
		s.opts.Logger.Info("Prometheus reloaded", "url", s.opts.ReloadURL)
	}
	return nil
}

func (s *Syncer) reload(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.ReloadURL, http.NoBody)
	if err != nil {
		return err
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: status %s: %s", s.opts.ReloadURL, resp.Status, body)
	}
	return nil
}
