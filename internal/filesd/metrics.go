package filesd

import "github.com/prometheus/client_golang/prometheus"

// newWrites creates the counter of file updates by outcome, every outcome at 0, and registers it
// with reg (when not nil).
func newWrites(reg prometheus.Registerer) *prometheus.CounterVec {
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ecs_sd_file_writes_total",
		Help: "Updates of the file_sd file, by outcome (written, unchanged, error).",
	}, []string{"outcome"})
	for _, o := range []string{"written", "unchanged", "error"} {
		writes.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(writes)
	}
	return writes
}
