package main

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Names of the application metrics. The Grafana dashboard in deploy/grafana queries them, so they
// must not change.
const (
	requestsTotalName   = "http_requests_total"
	requestDurationName = "request_duration_milliseconds"
)

// Label names of both application metrics.
const (
	labelPath   = "path"
	labelMethod = "method"
	labelCode   = "code"
)

// latencyBucketsMS are the upper bounds, in milliseconds, of the request_duration_milliseconds
// histogram buckets. The dashboard's latency histogram has one query per bound.
var latencyBucketsMS = []float64{50, 100, 250, 500}

// metrics holds the two application metrics of the seed: a counter of requests and a histogram
// of their latency, both labelled by path, method and status code.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newMetrics creates the application metrics and registers them with reg.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	labels := []string{labelPath, labelMethod, labelCode}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: requestsTotalName,
			Help: "Number of HTTP requests served by the work endpoints, by path, method and status code.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    requestDurationName,
			Help:    "Time taken to serve HTTP requests to the work endpoints, in milliseconds, by path, method and status code.",
			Buckets: latencyBucketsMS,
		}, labels),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register application metrics: %w", err)
		}
	}
	return m, nil
}

// observe records one served request.
func (m *metrics) observe(path, method string, code int, milliseconds float64) {
	labels := prometheus.Labels{labelPath: path, labelMethod: method, labelCode: strconv.Itoa(code)}
	m.requests.With(labels).Inc()
	m.duration.With(labels).Observe(milliseconds)
}
