package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
)

// routes returns ecs-sd's HTTP handler: the http_sd list at the targets path (when targets is not
// nil), /metrics, /-/healthy, /-/ready (503 until ready) and, at /, exporter-toolkit's landing
// page linking them.
func routes(wc config.Web, targets http.Handler, reg *prometheus.Registry, ready func() bool) (http.Handler, error) {
	mux := http.NewServeMux()
	var links []web.LandingLinks
	if targets != nil {
		mux.Handle(wc.TargetsPath, targets)
		links = append(links, web.LandingLinks{Address: wc.TargetsPath, Text: "Targets", Description: "the target list, for Prometheus http_sd"})
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ecs-sd is healthy.")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "ecs-sd is not ready: no discovery has completed yet.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ecs-sd is ready.")
	})
	links = append(links,
		web.LandingLinks{Address: "/metrics", Text: "Metrics", Description: "ecs-sd's own metrics"},
		web.LandingLinks{Address: "/-/healthy", Text: "Health", Description: "200 while the process runs"},
		web.LandingLinks{Address: "/-/ready", Text: "Readiness", Description: "200 once every source has returned targets"},
	)
	if targets != nil && wc.TargetsPath == "/" {
		return mux, nil // the target list is the root page
	}
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "ecs-sd",
		Description: "Prometheus service discovery for Amazon ECS",
		Version:     version.Info(),
		Links:       links,
		Profiling:   "false",
	})
	if err != nil {
		return nil, fmt.Errorf("landing page: %w", err)
	}
	mux.Handle("/", landing)
	return mux, nil
}

// listenAndRun serves handler on the configured addresses (TLS and basic auth from the exporter-toolkit
// web configuration) and runs the loop, until ctx ends or the server fails; then it stops both.
func listenAndRun(ctx context.Context, wc config.Web, handler http.Handler, loop *refresh.Loop, logger *slog.Logger) error {
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	systemdSocket := false
	flags := &web.FlagConfig{WebListenAddresses: &wc.ListenAddresses, WebSystemdSocket: &systemdSocket, WebConfigFile: &wc.ConfigFile}
	serverErr := make(chan error, 1)
	go func() { serverErr <- web.ListenAndServe(server, flags, logger) }()

	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		_ = loop.Run(loopCtx)
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

// shutdown stops the server, giving requests in flight 5 s to finish.
func shutdown(server *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx)
}
