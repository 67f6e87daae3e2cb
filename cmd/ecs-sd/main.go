// Command ecs-sd discovers ECS tasks, registered in AWS Cloud Map or found with the ECS API, and
// hands them to Prometheus, as a file_sd file and an http_sd endpoint.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/ecs-sd/ecs-sd/internal/awsclient"
	"github.com/ecs-sd/ecs-sd/internal/cloudmap"
	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/ecs"
	"github.com/ecs-sd/ecs-sd/internal/filesd"
	"github.com/ecs-sd/ecs-sd/internal/httpsd"
	"github.com/ecs-sd/ecs-sd/internal/promconfig"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/ssmparam"
)

func main() { os.Exit(run(os.Args[1:], os.LookupEnv)) }

// run returns the process exit code: 0 on success, 1 when a --once discovery failed or the
// server stopped on an error, 2 for bad configuration.
func run(args []string, lookupEnv func(string) (string, bool)) int {
	app := kingpin.New("ecs-sd", "Discovers ECS tasks, registered in AWS Cloud Map or found with the ECS API, and writes Prometheus file_sd and http_sd target lists.")
	app.Version(version.Print("ecs-sd"))
	app.HelpFlag.Short('h')
	app.UsageWriter(os.Stdout)
	fl := registerFlags(app)
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "ecs-sd: %v\n", err)
		return 2
	}
	cfg, err := fl.resolve(lookupEnv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ecs-sd: invalid configuration: %v\n", err)
		return 2
	}
	logger, err := newLogger(cfg.Log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ecs-sd: invalid configuration: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, *fl.once, logger); err != nil {
		logger.Error("Exiting", "err", err)
		if errors.As(err, new(configError)) {
			return 2
		}
		return 1
	}
	return 0
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

// serve wires sources, sinks and the HTTP server, and runs until ctx ends (or one cycle with once).
func serve(ctx context.Context, cfg config.Config, once bool, logger *slog.Logger) error {
	logger.Info("Starting ecs-sd", "version", version.Info(), "build_context", version.BuildContext())
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("ecs_sd"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	awsCfg, err := awsclient.Load(ctx, awsclient.Options{Region: cfg.AWS.Region, EndpointURL: cfg.AWS.EndpointURL}, awsclient.NewMetrics(reg))
	if err != nil {
		return configError{err}
	}
	ssmClient := awsclient.SSM(awsCfg)
	metrics := refresh.NewMetrics(reg)

	var sources []refresh.Source
	if cfg.CloudMap.Enabled {
		namespaces := ssmparam.List(ssmClient, cfg.CloudMap.NamespacesParameter)
		if len(cfg.CloudMap.Namespaces) > 0 {
			static := cfg.CloudMap.Namespaces
			namespaces = func(context.Context) ([]string, error) { return static, nil }
		}
		sources = append(sources, cloudmap.New(awsclient.CloudMap(awsCfg), cloudmap.Options{
			Namespaces:          namespaces,
			IncludeUnhealthy:    cfg.CloudMap.IncludeUnhealthy,
			TagsRefreshInterval: time.Duration(cfg.CloudMap.TagsRefreshInterval),
			Logger:              logger.With("discovery", cloudmap.Name),
			Metrics:             metrics,
			Registerer:          reg,
		}))
	}
	if cfg.ECS.Enabled() {
		src, err := ecs.New(awsclient.ECS(awsCfg), awsclient.EC2(awsCfg), cfg.ECS, ecs.Options{
			Region:     awsCfg.Region,
			Logger:     logger.With("discovery", ecs.Name),
			Metrics:    metrics,
			Registerer: reg,
		})
		if err != nil {
			return err
		}
		sources = append(sources, src)
	}

	var sinks []refresh.Sink
	if cfg.Output.FileSD {
		sink, err := filesd.New(filepath.Join(cfg.Output.Dir, cfg.Output.FileName), logger, reg)
		if err != nil {
			return err
		}
		sinks = append(sinks, sink)
	}
	targetsHandler := httpsd.New()
	if cfg.Output.HTTPSD {
		sinks = append(sinks, targetsHandler)
	}

	var jobs []refresh.Job
	if cfg.PrometheusConfig.Enabled {
		jobs = append(jobs, promconfig.New(ssmClient, promconfig.Options{
			Parameter:  cfg.PrometheusConfig.Parameter,
			Path:       filepath.Join(cfg.Output.Dir, cfg.PrometheusConfig.FileName),
			ReloadURL:  cfg.PrometheusConfig.ReloadURL,
			Logger:     logger,
			Registerer: reg,
		}))
	}

	loop := refresh.New(refresh.Options{
		Interval: time.Duration(cfg.RefreshInterval),
		Sources:  sources,
		Sinks:    sinks,
		Jobs:     jobs,
		Logger:   logger,
		Metrics:  metrics,
	})
	if once {
		if err := loop.RunOnce(ctx); err != nil {
			return fmt.Errorf("discovery failed: %w", err)
		}
		return nil
	}

	mux := http.NewServeMux()
	if cfg.Output.HTTPSD {
		mux.Handle(cfg.Web.TargetsPath, targetsHandler)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ecs-sd is healthy.")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !loop.Ready() {
			http.Error(w, "ecs-sd is not ready: no discovery has completed yet.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ecs-sd is ready.")
	})
	if cfg.Output.HTTPSD && cfg.Web.TargetsPath != "/" {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			fmt.Fprintf(w, "<html><head><title>ecs-sd</title></head><body><h1>ecs-sd</h1><p><a href=%q>Targets</a> · <a href=\"/metrics\">Metrics</a></p></body></html>\n", cfg.Web.TargetsPath)
		})
	}

	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	systemdSocket := false
	flags := &web.FlagConfig{WebListenAddresses: &cfg.Web.ListenAddresses, WebSystemdSocket: &systemdSocket, WebConfigFile: &cfg.Web.ConfigFile}
	serverErr := make(chan error, 1)
	go func() { serverErr <- web.ListenAndServe(server, flags, logger) }()

	ctx, cancelLoop := context.WithCancel(ctx)
	defer cancelLoop()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		_ = loop.Run(ctx)
	}()

	select {
	case <-ctx.Done():
		logger.Info("Shutting down")
	case err = <-serverErr:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	cancelLoop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = server.Shutdown(shutdownCtx)
	<-loopDone
	if err != nil {
		return fmt.Errorf("web server: %w", err)
	}
	return nil
}
