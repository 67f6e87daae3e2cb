package cloudmap

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// metrics are the Cloud Map source's metrics: its tracker of skipped instances (which holds its
// children of the shared skipped-targets metrics), and its own per-namespace gauges. Failed calls are counted by ecs_sd_aws_api_calls_total and
// failed discoveries by ecs_sd_refresh_failures_total.
type metrics struct {
	skips        *refresh.Skips
	targetsGauge *prometheus.GaugeVec
	unresolved   *prometheus.GaugeVec
}

func newMetrics(shared *refresh.Metrics, pair refresh.Pair, reg prometheus.Registerer, logger *slog.Logger) *metrics {
	m := &metrics{
		skips: shared.Skips(Name, pair, logger, reasonUnhealthy, reasonNoIP, reasonBadIP, reasonBadPort, reasonBadPath,
			targets.ReasonBadScheme, targets.ReasonBadScrapeInterval, targets.ReasonBadScrapeTimeout),
		targetsGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_cloudmap_targets",
			Help: "Targets discovered in a Cloud Map namespace.",
		}, []string{"namespace", "namespace_id"}),
		unresolved: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_cloudmap_namespace_unresolved",
			Help: "1 for a configured namespace name or id that matches no Cloud Map namespace.",
		}, []string{"namespace"}),
	}
	if reg != nil {
		reg.MustRegister(m.targetsGauge, m.unresolved)
	}
	return m
}

// Skipped returns the items skipped now, with the ids that find them (refresh.Skipper).
func (s *Source) Skipped() []refresh.Skipped { return s.skips.Current() }
