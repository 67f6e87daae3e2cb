package events

import "github.com/prometheus/client_golang/prometheus"

// metrics are the event consumer's metrics.
type metrics struct {
	received      *prometheus.CounterVec
	ignored       *prometheus.CounterVec
	applied       prometheus.Counter
	latency       prometheus.Histogram
	receiveErrors prometheus.Counter
}

// newMetrics creates the metrics, every label value at 0, and registers them with reg; with a
// nil reg they are not registered (tests).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_events_received_total",
			Help: "Messages received from the events queue, by event type (ecs_task, cloudmap_instance, other).",
		}, []string{"type"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_events_ignored_total",
			Help: "Events received but not applied, by reason; their messages are deleted.",
		}, []string{"reason"}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ecs_sd_events_applied_total",
			Help: "Events handed to the sources, followed by an update of the outputs (tasks and services ecs-sd does not discover among them: they change nothing).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ecs_sd_event_latency_seconds",
			Help:    "Time from an applied event's arrival in the queue (SQS SentTimestamp, else the event's time) to the end of the update of the outputs that applied it.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		receiveErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ecs_sd_events_receive_errors_total",
			Help: "Failed receives from the events queue (each is retried after a back-off).",
		}),
	}
	for _, t := range []string{TypeTask, TypeCloudMap, TypeOther} {
		m.received.WithLabelValues(t)
	}
	for _, r := range reasons {
		m.ignored.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.received, m.ignored, m.applied, m.latency, m.receiveErrors)
	}
	return m
}
