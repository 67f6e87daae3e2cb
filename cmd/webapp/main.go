// Command webapp is the sample web application of the ecs-sd system: the stateless service of
// the AWS blog post that Prometheus discovers through AWS Cloud Map and ecs-sd, and scrapes.
//
// It is instrumented with the Prometheus Go client library, as in the blog post, with two
// metrics, both labelled by path, method and code (the HTTP status code):
//
//   - http_requests_total, a counter of the requests served by the work endpoints;
//   - request_duration_milliseconds, a histogram of their latency in milliseconds, with buckets
//     of 50, 100, 250 and 500 ms (plus +Inf).
//
// The work endpoints simulate latency, randomised within bounds, so that the charts of the
// dashboard in deploy/grafana are not flat:
//
//	GET  /            10-40 ms
//	GET  /api/orders  30-300 ms, 5% of requests fail with 500
//	POST /api/orders  30-300 ms, 5% of requests fail with 500 (answers 201)
//	GET  /api/slow    200-800 ms
//
// Latencies are skewed towards the lower bound. HEAD is accepted wherever GET is; other methods
// get 405. Requests to any other path get 404 and are counted with path="unmatched", and
// methods outside the standard set are counted as method="other", so clients cannot create
// unbounded label values. A request whose client goes away during the simulated latency is
// counted with code="499". /metrics and /-/healthy are served on the same listener and are not
// counted.
//
// The listen address is set by --web.listen-address only (default ":3000", METRICS_PORT of the
// blog's sample deployment). The PORT environment variable is deliberately not honoured: ECS does
// not set it, and the port must match the one registered for the service in Cloud Map, which
// ecs-sd turns into the scrape target; one explicit setting in the task definition's command
// avoids a silent mismatch.
//
// With --load.rps greater than 0 a built-in load generator sends that many requests per second
// to the work endpoints (by default to the application's own listener, or to --load.target), so
// that the dashboards have data without an outside client.
//
// On SIGTERM or SIGINT the application stops the load generator, then shuts the HTTP server down
// gracefully, waiting at most 10 seconds for requests in flight, well within ECS's default 30
// second stop timeout. A second signal terminates it at once.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
)

const (
	programName = "webapp"
	// shutdownTimeout bounds the graceful shutdown of the HTTP server.
	shutdownTimeout = 10 * time.Second
)

func main() { os.Exit(run()) }

// run runs the application with the command-line arguments until SIGTERM or SIGINT, and returns
// the exit code.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// Restore the default behaviour once the first signal has arrived, so that a second one
		// ends the process at once.
		<-ctx.Done()
		stop()
	}()
	return runContext(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

// config is the parsed command line.
type config struct {
	listenAddress string
	loadRPS       float64
	loadTarget    string
	log           promslog.Config
}

// parseFlags parses args. It returns a non-negative exit code when the program must end at once
// (after --help, --version or a bad flag).
func parseFlags(args []string, stdout, stderr io.Writer) (cfg *config, exit int) {
	cfg = &config{log: promslog.Config{Writer: stderr}}
	exit = -1
	a := kingpin.New(programName, "Sample web application of ecs-sd, instrumented with the Prometheus Go client library.")
	a.UsageWriter(stdout)
	a.ErrorWriter(stderr)
	a.Terminate(func(code int) {
		if exit < 0 {
			exit = code
		}
	})
	a.Version(version.Print(programName))
	a.HelpFlag.Short('h')
	a.Flag("web.listen-address", "Address on which to serve the work endpoints, /metrics and /-/healthy.").
		Default(":3000").StringVar(&cfg.listenAddress)
	a.Flag("load.rps", "Requests per second the built-in load generator sends to the work endpoints; 0 disables it.").
		Default("0").Float64Var(&cfg.loadRPS)
	a.Flag("load.target", "Base URL the load generator sends requests to. Defaults to the application's own listener.").
		PlaceHolder("URL").StringVar(&cfg.loadTarget)
	promslogflag.AddFlags(a, &cfg.log)

	if _, err := a.Parse(args); err != nil {
		fmt.Fprintf(stderr, "%s: error: %v, try --help\n", programName, err)
		return nil, 2
	}
	if exit >= 0 {
		return nil, exit
	}
	if cfg.loadRPS < 0 || cfg.loadRPS > maxLoadRPS {
		fmt.Fprintf(stderr, "%s: error: --load.rps must be between 0 and %d, got %g\n", programName, maxLoadRPS, cfg.loadRPS)
		return nil, 2
	}
	if cfg.loadTarget != "" {
		if _, err := parseLoadTarget(cfg.loadTarget); err != nil {
			fmt.Fprintf(stderr, "%s: error: --load.target: %v\n", programName, err)
			return nil, 2
		}
	}
	return cfg, -1
}

// runContext runs the application with args until ctx is done, then shuts it down gracefully. It
// returns the process exit code.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, exit := parseFlags(args, stdout, stderr)
	if exit >= 0 {
		return exit
	}
	logger := promslog.New(&cfg.log)
	logger.Info("Starting "+programName, "version", version.Info())
	logger.Info("Build context", "build_context", version.BuildContext())

	if err := serve(ctx, logger, cfg); err != nil {
		logger.Error("Stopped with an error", "err", err)
		return 1
	}
	logger.Info("Stopped")
	return 0
}

// serve listens, serves and, with load, generates load until ctx is done.
func serve(ctx context.Context, logger *slog.Logger, cfg *config) error {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector(programName),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register runtime metrics: %w", err)
		}
	}
	handler, err := newHandler(options{logger: logger, registerer: reg, gatherer: reg})
	if err != nil {
		return fmt.Errorf("build handler: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.listenAddress)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("Listening", "address", ln.Addr().String())

	// The load generator gets its own context: it is stopped before the server, so that the
	// server's graceful shutdown does not wait on a client that keeps sending.
	loadCtx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	loadDone := make(chan struct{})
	if cfg.loadRPS > 0 {
		var target *url.URL
		if cfg.loadTarget != "" {
			target, err = parseLoadTarget(cfg.loadTarget)
		} else {
			target, err = defaultLoadTarget(ln.Addr())
		}
		if err != nil {
			_ = srv.Close()
			return err
		}
		gen := newLoadGenerator(logger.With("component", "loadgen"), target, cfg.loadRPS, nil)
		go func() {
			defer close(loadDone)
			gen.run(loadCtx)
		}()
	} else {
		close(loadDone)
	}

	select {
	case err := <-serveErr:
		stopLoad()
		<-loadDone
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	logger.Info("Shutting down", "reason", context.Cause(ctx))
	stopLoad()
	<-loadDone

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shut down http server: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}
