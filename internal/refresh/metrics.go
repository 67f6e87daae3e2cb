package refresh

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the discovery cycle's metrics, among them the ones every source shares, told apart
// by their source label. Each is defined here once (as Prometheus's discovery/metrics_refresh.go
// does): the loop fills in the per-source ones, and a source gets its tracker of skipped items,
// which holds its children of the skipped-targets metrics, from Skips.
type Metrics struct {
	paired         bool // per-source metrics carry account and region
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
// registered (tests). The per-source ones are labelled by source.
func NewMetrics(reg prometheus.Registerer) *Metrics { return newMetrics(reg, false) }

// NewPairMetrics is NewMetrics for sources in several (account, region) pairs: the per-source
// metrics are labelled by source, account and region (the source's Pair).
func NewPairMetrics(reg prometheus.Registerer) *Metrics { return newMetrics(reg, true) }

func newMetrics(reg prometheus.Registerer, paired bool) *Metrics {
	src := []string{"source"}
	if paired {
		src = []string{"source", "account", "region"}
	}
	m := &Metrics{
		paired: paired,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ecs_sd_refresh_duration_seconds",
			Help:    "Duration of one discovery by a source.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, src),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_refresh_failures_total",
			Help: "Discoveries by a source that ended with an error (in full or in part).",
		}, src),
		consecutive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_refresh_consecutive_failures",
			Help: "Discoveries by a source that ended with an error (in full or in part) since its last one without error.",
		}, src),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_targets",
			Help: "Targets currently held for a source.",
		}, src),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_last_success_timestamp_seconds",
			Help: "Time of the last discovery by a source that ended without error.",
		}, src),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_targets_skipped_total",
			Help: "Items (instances, container endpoints) newly skipped for a reason: skipped at a cycle and not, or not for that reason, at the previous one.",
		}, append(slices.Clone(src), "reason")),
		skippedNow: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ecs_sd_targets_skipped",
			Help: "Items (instances, container endpoints) that give no target now, by source and reason.",
		}, append(slices.Clone(src), "reason")),
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
		m.failures.WithLabelValues(m.values(keyOf(s))...)
		m.consecutive.WithLabelValues(m.values(keyOf(s))...)
		m.targets.WithLabelValues(m.values(keyOf(s))...)
	}
	for _, s := range opts.Sinks {
		m.outputFailures.WithLabelValues(s.Name())
	}
	for _, j := range opts.Jobs {
		m.jobFailures.WithLabelValues(j.Name())
	}
}

// values returns the label values of a source's series: its name, and its account and region
// when the metrics are labelled by pair.
func (m *Metrics) values(k sourceKey) []string {
	if !m.paired {
		return []string{k.name}
	}
	return []string{k.name, k.pair.Account, k.pair.Region}
}

// labels is values as labels.
func (m *Metrics) labels(k sourceKey) prometheus.Labels {
	l := prometheus.Labels{"source": k.name}
	if m.paired {
		l["account"], l["region"] = k.pair.Account, k.pair.Region
	}
	return l
}
