// Command ecs-sd discovers ECS tasks, registered in AWS Cloud Map or found with the ECS API, and
// hands them to Prometheus, as a file_sd file and an http_sd endpoint.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"

	"github.com/ecs-sd/ecs-sd/internal/awsclient"
	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
)

func main() { os.Exit(run(os.Args[1:], os.LookupEnv)) }

// run returns the process exit code: 0 on success, 1 when a --once discovery failed or the
// server stopped on an error (or an AWS check did not pass), 2 for bad configuration.
func run(args []string, lookupEnv func(string) (string, bool)) int {
	app := kingpin.New("ecs-sd", "Discovers ECS tasks, registered in AWS Cloud Map or found with the ECS API, and writes Prometheus file_sd and http_sd target lists.")
	app.Version(version.Print("ecs-sd"))
	app.HelpFlag.Short('h')
	app.UsageWriter(os.Stdout)
	fl := registerFlags(app)
	cmds := registerCommands(app)
	command, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ecs-sd: %v\n", err)
		return 2
	}
	if command == cmds.checkConfig.FullCommand() {
		return checkConfig(fl, *cmds.file, lookupEnv, os.Stdout, os.Stderr)
	}
	cfg, err := fl.resolve(lookupEnv)
	if err == nil {
		err = checkFormat(*fl.format, *fl.once)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ecs-sd: invalid configuration: %v\n", err)
		return 2
	}
	logger, err := newLogger(cfg.Log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ecs-sd: invalid configuration: %v\n", err)
		return 2
	}

	setGCPercent(lookupEnv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if command == cmds.checkAWS.FullCommand() {
		return checkAWS(ctx, cfg, logger, os.Stdout, os.Stderr)
	}
	mode := runMode{once: *fl.once}
	if *fl.format == formatTable {
		mode.table = os.Stdout
	}
	if err := serve(ctx, cfg, mode, logger); err != nil {
		logger.Error("Exiting", "err", err)
		if errors.As(err, new(configError)) {
			return 2
		}
		return 1
	}
	return 0
}

// gcPercent is the garbage collector's target that ecs-sd sets unless GOGC is set: the heap may
// grow to 1.25 times the data in use before a collection, instead of Go's default 2 times. ecs-sd
// holds its targets' label sets (about 1.2 KB per target) and makes short-lived garbage at every
// cycle (AWS answers): with Go's default, the heap's slack alone would double the memory of the
// data kept. At 10 000 targets this keeps the process under 64 MiB resident, for a few more
// collections per cycle (docs/benchmarks.md). GOMEMLIMIT, when set, applies as usual.
const gcPercent = 25

// setGCPercent sets the garbage collector's target to gcPercent unless GOGC is set.
func setGCPercent(lookupEnv func(string) (string, bool)) {
	if _, set := lookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}

// configError marks an error of the settings found only while starting (no AWS region, say): the
// process exits 2 as for any invalid configuration.
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

func newLogger(c config.Log) (*slog.Logger, error) {
	lvl := promslog.NewLevel()
	if err := lvl.Set(c.Level); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	format := promslog.NewFormat()
	if err := format.Set(c.Format); err != nil {
		return nil, fmt.Errorf("log format: %w", err)
	}
	return promslog.New(&promslog.Config{Level: lvl, Format: format}), nil
}

// serve wires sources, sinks and jobs into the discovery loop, and runs it with the HTTP server
// until ctx ends (or runs one cycle, with mode.once: writing the outputs, or printing the tables
// to mode.table).
func serve(ctx context.Context, cfg config.Config, mode runMode, logger *slog.Logger) error {
	once := mode.once
	logger.Info("Starting ecs-sd", "version", version.Info(), "build_context", version.BuildContext())
	reg := newRegistry()
	var (
		listeners []net.Listener
		err       error
	)
	if !once {
		// Bound before any file is touched: a second ecs-sd given the same address stops here,
		// with one error naming it, and leaves the first one's files alone.
		if listeners, err = listen(cfg.Web); err != nil {
			return err
		}
		defer closeAll(listeners) // those a failed server did not serve; the others are closed already
	}
	accs, err := newAccounts(ctx, cfg, once, reg, logger)
	if err != nil {
		return err
	}
	metrics := accs.refreshMetrics(reg)
	sources, err := newSources(cfg, accs, metrics)
	if err != nil {
		return err
	}
	if mode.table != nil {
		return printOnce(ctx, mode.table, cfg, sources, metrics, logger)
	}
	sinks, targetsHandler, baseline, err := newSinks(cfg.Output, reg, logger)
	if err != nil {
		return err
	}
	loop := refresh.New(refresh.Options{
		Interval: time.Duration(cfg.RefreshInterval),
		Sources:  sources,
		Sinks:    sinks,
		Jobs:     newJobs(cfg, accs.own, reg, logger),
		Baseline: baseline,
		Logger:   logger,
		Metrics:  metrics,
		// The status's count of each discovery's AWS calls.
		CountCalls: awsclient.CountCalls,
	})
	if once {
		if err := loop.RunOnce(ctx); err != nil {
			return fmt.Errorf("discovery failed: %w", err)
		}
		return nil
	}
	handler := routes(cfg.Web, targetsHandler, reg, loop)
	// The outputs hold the earlier run's list before the first request can be answered.
	if err := loop.Prime(ctx); err != nil {
		return err
	}
	return serveAndRun(ctx, cfg.Web, listeners, handler, newRunner(cfg, accs, loop, sources, reg, logger), logger)
}

// newRegistry returns the registry of ecs-sd's metrics, with the build, Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("ecs_sd"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}
