package main

import (
	"context"
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
	"github.com/ecs-sd/ecs-sd/internal/ssmparam"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// newSources returns the enabled sources: Cloud Map (its namespace list from the configuration or
// from SSM, re-read every cycle) and the ECS API.
func newSources(cfg config.Config, awsCfg aws.Config, metrics *refresh.Metrics, reg prometheus.Registerer, logger *slog.Logger) ([]refresh.Source, error) {
	var sources []refresh.Source
	if cfg.CloudMap.Enabled {
		namespaces := ssmparam.List(awsclient.SSM(awsCfg), cfg.CloudMap.NamespacesParameter)
		if len(cfg.CloudMap.Namespaces) > 0 {
			static := cfg.CloudMap.Namespaces
			namespaces = func(context.Context) ([]string, error) { return static, nil }
		}
		sources = append(sources, cloudmap.New(awsclient.CloudMap(awsCfg), cloudmap.Options{
			Namespaces:          namespaces,
			IncludeUnhealthy:    cfg.CloudMap.IncludeUnhealthy,
			TagsRefreshInterval: time.Duration(cfg.CloudMap.TagsRefreshInterval),
			Concurrency:         cfg.CloudMap.Concurrency,
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
			return nil, err
		}
		sources = append(sources, src)
	}
	return sources, nil
}

// newSinks returns the enabled outputs, the http_sd handler to route (nil when http_sd is off),
// and the loop's baseline: the list of the file_sd file an earlier run wrote. Without file_sd
// there is no baseline: http_sd alone serves what is discovered.
func newSinks(out config.Output, reg prometheus.Registerer, logger *slog.Logger) ([]refresh.Sink, http.Handler, []*targets.Group, error) {
	var sinks []refresh.Sink
	var baseline []*targets.Group
	if out.FileSD {
		path := filepath.Join(out.Dir, out.FileName)
		sink, err := filesd.New(path, logger, reg)
		if err != nil {
			return nil, nil, nil, err
		}
		if baseline, err = filesd.Earlier(path, logger); err != nil {
			return nil, nil, nil, err
		}
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
