package refresh

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the discovery cycle's metrics, among them the ones every source shares, told apart
// by their source label. Each is defined here once (as Prometheus's discovery/metrics_refresh.go
// does): the loop fills in the per-source ones, and a source gets its tracker of skipped items,
// which holds its children of the skipped-targets metrics, from Skips.
type Metrics struct {
	duration       *prometheus.HistogramVec
	failures       *prometheus.CounterVec
	consecutive    *prometheus.GaugeVec
	targets        *prometheus.GaugeVec
	lastSuccess    *prometheus.GaugeVec
	skipped        *prometheus.CounterVec
	skippedNow     *prometheus.GaugeVec
	outputFailures *prometheus.CounterVec
	jobFailures    *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg; with a nil reg they are not
// registered (tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ecs_sd_refresh_duration_seconds",
			Help:    "Duration of one discovery by a source.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"source"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_refresh_failures_total",
			Help: "Discoveries by a source that ended with an error (in full or in part).",
		}, []string{"source"}),
		consecutive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_refresh_consecutive_failures",
			Help: "Discoveries by a source that ended with an error (in full or in part) since its last one without error.",
		}, []string{"source"}),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_targets",
			Help: "Targets currently held for a source.",
		}, []string{"source"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_last_success_timestamp_seconds",
			Help: "Time of the last discovery by a source that ended without error.",
		}, []string{"source"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_targets_skipped_total",
			Help: "Items (instances, container endpoints) newly skipped for a reason: skipped at a cycle and not, or not for that reason, at the previous one.",
		}, []string{"source", "reason"}),
		skippedNow: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_targets_skipped",
			Help: "Items (instances, container endpoints) that give no target now, by source and reason.",
		}, []string{"source", "reason"}),
		outputFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_output_failures_total",
			Help: "Failed updates of an output.",
		}, []string{"output"}),
		jobFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_job_failures_total",
			Help: "Failed runs of a periodic job, by name.",
		}, []string{"name"}),
	}
	if reg != nil {
		reg.MustRegister(m.duration, m.failures, m.consecutive, m.targets, m.lastSuccess, m.skipped, m.skippedNow, m.outputFailures, m.jobFailures)
	}
	return m
}

// initLabels starts the series of every source, output and job at 0.
func (m *Metrics) initLabels(opts Options) {
	for _, s := range opts.Sources {
		m.failures.WithLabelValues(s.Name())
		m.consecutive.WithLabelValues(s.Name())
		m.targets.WithLabelValues(s.Name())
	}
	for _, s := range opts.Sinks {
		m.outputFailures.WithLabelValues(s.Name())
	}
	for _, j := range opts.Jobs {
		m.jobFailures.WithLabelValues(j.Name())
	}
}
