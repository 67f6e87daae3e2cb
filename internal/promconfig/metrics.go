package promconfig

import "github.com/prometheus/client_golang/prometheus"

// metrics are the configuration sync's metrics.
type metrics struct {
	reloads *prometheus.CounterVec
	updates prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_prometheus_reloads_total",
			Help: "Reload requests sent to Prometheus, by outcome.",
		}, []string{"outcome"}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ecs_sd_prometheus_config_updates_total",
			Help: "Times the Prometheus configuration file was rewritten from its SSM parameter.",
		}),
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("error")
	if reg != nil {
		reg.MustRegister(m.reloads, m.updates)
	}
	return m
}
