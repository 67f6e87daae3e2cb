package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/ecs-sd/ecs-sd/internal/config"
)

// routes returns ecs-sd's HTTP handler: the http_sd list at the targets path (when targets is not
// nil), /metrics, /-/healthy, /-/ready (503 until every source has had a discovery without
// error: until then the list may hold an earlier run's targets, or lack those of a failing part;
// the 503's body names the sources not there yet, one a line), /api/v1/status (the sources,
// skipped items and latest changes, as JSON) and, at /, the status page, which links them all.
func routes(wc config.Web, targets http.Handler, reg *prometheus.Registry, view statusView) http.Handler {
	mux := http.NewServeMux()
	var links []pageLink
	if targets != nil {
		mux.Handle(wc.TargetsPath, targets)
		links = append(links, pageLink{wc.TargetsPath, "Targets", "the target list, for Prometheus http_sd"})
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ecs-sd is healthy.")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !view.Ready() {
			msg := "ecs-sd is not ready: not every source has had a discovery without error yet."
			if names := view.Pending(); len(names) > 0 {
				msg += " Waiting for:\n" + strings.Join(names, "\n")
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ecs-sd is ready.")
	})
	mux.Handle("/api/v1/status", statusAPI(view))
	links = append(links,
		pageLink{"/api/v1/status", "Status API", "the sources, skipped items and latest changes, as JSON"},
		pageLink{"/metrics", "Metrics", "ecs-sd's own metrics"},
		pageLink{"/-/healthy", "Health", "200 while the process runs"},
		pageLink{"/-/ready", "Readiness", "200 once every source has had a discovery without error"},
	)
	if targets != nil && wc.TargetsPath == "/" {
		return mux // the target list is the root page
	}
	mux.Handle("/", statusPageHandler(view, links))
	return mux
}

// listen checks the web configuration file (TLS, basic auth) and binds every listen address, so
// that a bad file, or an address in use (or that cannot be had), is one clear error at start,
// naming the file or the address.
func listen(wc config.Web) ([]net.Listener, error) {
	if err := web.Validate(wc.ConfigFile); err != nil {
		return nil, configError{fmt.Errorf("web config file %s: %w", wc.ConfigFile, err)}
	}
	var listeners []net.Listener
	for _, addr := range wc.ListenAddresses {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll(listeners)
			return nil, fmt.Errorf("web listen address: %w", err)
		}
		listeners = append(listeners, l)
	}
	return listeners, nil
}

func closeAll(listeners []net.Listener) {
	for _, l := range listeners {
		_ = l.Close()
	}
}

// serveAndRun serves handler on listeners (TLS and basic auth from the exporter-toolkit web
// configuration) and runs the discovery (run, which returns when its context ends), until ctx
// ends or the server fails; then it stops both.
func serveAndRun(ctx context.Context, wc config.Web, listeners []net.Listener, handler http.Handler, run func(context.Context), logger *slog.Logger) error {
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog(logger)}
	systemdSocket := false
	flags := &web.FlagConfig{WebListenAddresses: &wc.ListenAddresses, WebSystemdSocket: &systemdSocket, WebConfigFile: &wc.ConfigFile}
	serverErr := make(chan error, 1)
	go func() { serverErr <- web.ServeMultiple(listeners, server, flags, logger) }()

	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		run(loopCtx)
	}()

	var err error
	select {
	case <-ctx.Done():
		logger.Info("Shutting down")
	case err = <-serverErr:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	stopLoop()
	shutdown(server)
	<-loopDone
	if err != nil {
		return fmt.Errorf("web server: %w", err)
	}
	return nil
}

// errorLog is the HTTP server's log of what it cannot hand to a handler (TLS handshake errors,
// say): every line goes to the structured logger, at warn level, as the constant message "HTTP
// server error" with the server's text as err.
func errorLog(logger *slog.Logger) *log.Logger {
	return log.New(errorLogWriter{logger}, "", 0)
}

type errorLogWriter struct{ logger *slog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	w.logger.Warn("HTTP server error", "err", strings.TrimSpace(string(p)))
	return len(p), nil
}

// shutdown stops the server, giving requests in flight 5 s to finish.
func shutdown(server *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx)
}
