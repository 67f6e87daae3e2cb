package main

import (
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-sd/ecs-sd/internal/awsclient"
	"github.com/ecs-sd/ecs-sd/internal/cloudmap"
	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/ecs"
	"github.com/ecs-sd/ecs-sd/internal/filesd"
	"github.com/ecs-sd/ecs-sd/internal/httpsd"
	"github.com/ecs-sd/ecs-sd/internal/promconfig"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// newSources returns the enabled sources of every pair: Cloud Map (its namespace list from the
// configuration or from the pair's SSM parameter, re-read every cycle) and the ECS API.
func newSources(cfg config.Config, accs accounts, metrics *refresh.Metrics) ([]refresh.Source, error) {
	var sources []refresh.Source
	for _, p := range accs.pairs {
		if cfg.CloudMap.Enabled {
			sources = append(sources, cloudmap.New(awsclient.CloudMap(p.aws), cloudmap.Options{
				Namespaces:          namespacesOf(cfg.CloudMap, p, accs.several),
				IncludeUnhealthy:    cfg.CloudMap.IncludeUnhealthy,
				TagsRefreshInterval: time.Duration(cfg.CloudMap.TagsRefreshInterval),
				Concurrency:         cfg.CloudMap.Concurrency,
				Pair:                p.Pair,
				Account:             p.account,
				Logger:              p.logger.With("discovery", cloudmap.Name),
				Metrics:             metrics,
				Registerer:          p.reg,
			}))
		}
		if cfg.ECS.Enabled() {
			src, err := ecs.New(awsclient.ECS(p.aws), awsclient.EC2(p.aws), cfg.ECS, ecs.Options{
				Pair:       p.Pair,
				Account:    p.account,
				Logger:     p.logger.With("discovery", ecs.Name),
				Metrics:    metrics,
				Registerer: p.reg,
			})
			if err != nil {
				return nil, err
			}
			sources = append(sources, src)
		}
	}
	return sources, nil
}

// newSinks returns the enabled outputs, the http_sd handler to route (nil when http_sd is off),
// and what reads the loop's baseline: the list of the file_sd file an earlier run wrote (read
// only when the loop needs it). Without file_sd there is no baseline: http_sd alone serves what
// is discovered.
func newSinks(out config.Output, reg prometheus.Registerer, logger *slog.Logger) ([]refresh.Sink, http.Handler, func() ([]*targets.Group, error), error) {
	var sinks []refresh.Sink
	var baseline func() ([]*targets.Group, error)
	if out.FileSD {
		path := filepath.Join(out.Dir, out.FileName)
		sink, err := filesd.New(path, logger, reg)
		if err != nil {
			return nil, nil, nil, err
		}
		baseline = func() ([]*targets.Group, error) { return filesd.Earlier(path, logger) }
		sinks = append(sinks, sink)
	}
	if !out.HTTPSD {
		return sinks, nil, baseline, nil
	}
	handler := httpsd.New(reg)
	return append(sinks, handler), handler, baseline, nil
}

// newJobs returns the enabled periodic jobs: the Prometheus configuration sync.
func newJobs(cfg config.Config, awsCfg aws.Config, reg prometheus.Registerer, logger *slog.Logger) []refresh.Job {
	if !cfg.PrometheusConfig.Enabled {
		return nil
	}
	return []refresh.Job{promconfig.New(awsclient.SSM(awsCfg), promconfig.Options{
		Parameter:  cfg.PrometheusConfig.Parameter,
		Path:       filepath.Join(cfg.Output.Dir, cfg.PrometheusConfig.FileName),
		ReloadURL:  cfg.PrometheusConfig.ReloadURL,
		Logger:     logger,
		Registerer: reg,
	})}
}
