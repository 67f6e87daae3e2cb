package ecs

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
)

// metrics are the ECS source's metrics: its tracker of skipped endpoints (which holds its children
// of the shared skipped-targets metrics), and its own per-cluster gauges, cache and call counters. Failed calls are counted by
// ecs_sd_aws_api_calls_total and failed discoveries by ecs_sd_refresh_failures_total.
type metrics struct {
	skips        *refresh.Skips
	targetsGauge *prometheus.GaugeVec
	tasksGauge   *prometheus.GaugeVec
	cacheHits    *prometheus.CounterVec
	cacheMisses  *prometheus.CounterVec
	lastCalls    *prometheus.GaugeVec
	wait         *prometheus.CounterVec
}

func newMetrics(shared *refresh.Metrics, pair refresh.Pair, reg prometheus.Registerer, logger *slog.Logger) *metrics {
	m := &metrics{
		skips: shared.Skips(Name, pair, logger, skipReasons...),
		targetsGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_ecs_targets",
			Help: "Targets discovered in an ECS cluster.",
		}, []string{"cluster"}),
		tasksGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_ecs_tasks",
			Help: "Tasks of an ECS cluster whose desired status is RUNNING, at the last listing.",
		}, []string{"cluster"}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_ecs_cache_hits_total",
			Help: "Resources a refresh needed and found fresh in the source's cache (no AWS call), by cache.",
		}, []string{"cache"}),
		cacheMisses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_ecs_cache_misses_total",
			Help: "Resources a refresh needed and had to read from AWS, by cache.",
		}, []string{"cache"}),
		lastCalls: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_ecs_api_calls_last_refresh",
			Help: "AWS API calls made by the last ECS refresh, by operation.",
		}, []string{"operation"}),
		wait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_ecs_api_wait_seconds_total",
			Help: "Time ECS discovery calls waited for the client-side rate limit and concurrency cap, by API family.",
		}, []string{"family"}),
	}
	for _, c := range []string{cacheTask, cacheTaskDefinition, cacheContainerInstance, cacheEC2Instance, cacheService, cacheCluster} {
		m.cacheHits.WithLabelValues(c)
		m.cacheMisses.WithLabelValues(c)
	}
	for op, family := range operations {
		m.lastCalls.WithLabelValues(op)
		m.wait.WithLabelValues(family)
	}
	if reg != nil {
		reg.MustRegister(m.targetsGauge, m.tasksGauge, m.cacheHits, m.cacheMisses, m.lastCalls, m.wait)
	}
	return m
}

// Skipped returns the items skipped now, with the ids that find them (refresh.Skipper).
func (s *Source) Skipped() []refresh.Skipped { return s.skips.Current() }
