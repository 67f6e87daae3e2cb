package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// statusClientClosedRequest is the code of a request whose client went away before the simulated
// work was done (the nginx convention).
const statusClientClosedRequest = 499

// unmatchedPath is the path label of requests to paths the application does not serve. Using one
// value for all of them keeps the label's cardinality bounded whatever clients request.
const unmatchedPath = "unmatched"

// maxRequestBody bounds the part of a request body the work endpoints read.
const maxRequestBody = 64 << 10

// route is one work endpoint: the requests it accepts, the latency it simulates and the share of
// requests it fails.
type route struct {
	pattern string   // http.ServeMux pattern, without method
	path    string   // value of the path label
	methods []string // accepted methods; HEAD is accepted wherever GET is
	// Simulated latency: minLatency + (maxLatency-minLatency)*u², u uniform in [0, 1), so most
	// requests are fast and a few approach maxLatency, like a real service's long tail.
	minLatency, maxLatency time.Duration
	errorRate              float64 // share of requests answered with 500 after the latency
	serve                  http.HandlerFunc
}

// options configure newHandler. Only logger, registerer and gatherer are needed in production;
// tests replace the clock, the sleep and the random source to make latencies deterministic.
type options struct {
	logger     *slog.Logger
	registerer prometheus.Registerer
	gatherer   prometheus.Gatherer

	now    func() time.Time                                 // default time.Now
	sleep  func(ctx context.Context, d time.Duration) error // default sleepContext
	random func() float64                                   // uniform in [0, 1), safe for concurrent use; default rand.Float64
}

// app serves the work endpoints.
type app struct {
	metrics *metrics
	now     func() time.Time
	sleep   func(context.Context, time.Duration) error
	random  func() float64
	orderID atomic.Uint64
}

// newHandler returns the web application's HTTP handler: the instrumented work endpoints,
// /metrics (serving o.gatherer) and /-/healthy. The application metrics are registered with
// o.registerer, which must not already hold them.
func newHandler(o options) (http.Handler, error) {
	if o.logger == nil || o.registerer == nil || o.gatherer == nil {
		return nil, errors.New("logger, registerer and gatherer are required")
	}
	m, err := newMetrics(o.registerer)
	if err != nil {
		return nil, err
	}
	a := &app{metrics: m, now: o.now, sleep: o.sleep, random: o.random}
	if a.now == nil {
		a.now = time.Now
	}
	if a.sleep == nil {
		a.sleep = sleepContext
	}
	if a.random == nil {
		a.random = rand.Float64
	}

	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		mux.Handle(rt.pattern, a.instrument(rt.path, a.work(rt)))
	}
	mux.Handle("/", a.instrument(unmatchedPath, http.NotFoundHandler()))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "Healthy.\n")
	})
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(o.registerer, promhttp.HandlerFor(o.gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(o.logger.Handler(), slog.LevelError),
		Registry: o.registerer,
	})))
	return mux, nil
}

// routes returns the work endpoints.
func (a *app) routes() []route {
	return []route{
		{
			pattern: "/{$}", path: "/", methods: []string{http.MethodGet},
			minLatency: 10 * time.Millisecond, maxLatency: 40 * time.Millisecond,
			serve: a.serveIndex,
		},
		{
			pattern: "/api/orders", path: "/api/orders", methods: []string{http.MethodGet, http.MethodPost},
			minLatency: 30 * time.Millisecond, maxLatency: 300 * time.Millisecond,
			errorRate: 0.05,
			serve:     a.serveOrders,
		},
		{
			pattern: "/api/slow", path: "/api/slow", methods: []string{http.MethodGet},
			minLatency: 200 * time.Millisecond, maxLatency: 800 * time.Millisecond,
			serve: a.serveSlow,
		},
	}
}

// instrument counts the requests served by h and observes their duration, labelled with path,
// the request method and the status code h answered with.
func (a *app) instrument(path string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := a.now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		code := rec.code
		if code == 0 {
			code = http.StatusOK // nothing written: net/http answers 200
		}
		elapsed := a.now().Sub(start)
		a.metrics.observe(path, methodLabel(r.Method), code, float64(elapsed)/float64(time.Millisecond))
	})
}

// work wraps a route's handler with its method check, simulated latency and simulated errors.
func (a *app) work(rt route) http.Handler {
	allowed := make(map[string]bool, len(rt.methods)+1)
	for _, m := range rt.methods {
		allowed[m] = true
		if m == http.MethodGet {
			allowed[http.MethodHead] = true
		}
	}
	allow := strings.Join(rt.methods, ", ")
	if allowed[http.MethodHead] {
		allow += ", " + http.MethodHead
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[r.Method] {
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
			return
		}
		// Read the request before working on it, as a real service would. This also lets
		// net/http notice a client that goes away, which cancels the request's context.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxRequestBody))
		u := a.random()
		latency := rt.minLatency + time.Duration(float64(rt.maxLatency-rt.minLatency)*u*u)
		if err := a.sleep(r.Context(), latency); err != nil {
			// The client is gone, so the code only reaches the metrics.
			w.WriteHeader(statusClientClosedRequest)
			return
		}
		if rt.errorRate > 0 && a.random() < rt.errorRate {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "simulated failure"})
			return
		}
		rt.serve(w, r)
	})
}

func (a *app) serveIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ecs-sd sample web application\n\n"+
		"GET  /            fast (10-40 ms)\n"+
		"GET  /api/orders  list orders (30-300 ms, 5% fail)\n"+
		"POST /api/orders  create an order (30-300 ms, 5% fail)\n"+
		"GET  /api/slow    slow report (200-800 ms)\n"+
		"GET  /metrics     Prometheus metrics\n")
}

// order is the JSON shape of an order of /api/orders.
type order struct {
	ID       string `json:"id"`
	Item     string `json:"item"`
	Quantity int    `json:"quantity"`
}

func (a *app) serveOrders(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		// The request body is not used; the sample only pretends to create an order.
		id := a.orderID.Add(1)
		writeJSON(w, http.StatusCreated, order{ID: fmt.Sprintf("ord-%d", id), Item: "widget", Quantity: 1})
		return
	}
	writeJSON(w, http.StatusOK, map[string][]order{"orders": {
		{ID: "ord-a1", Item: "widget", Quantity: 3},
		{ID: "ord-b2", Item: "gadget", Quantity: 1},
		{ID: "ord-c3", Item: "gizmo", Quantity: 7},
	}})
}

func (a *app) serveSlow(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"report": "ready"})
}

// writeJSON answers with code and v encoded as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// sleepContext waits for d or until ctx is done, whichever comes first, and returns ctx's error
// in the latter case.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// methodLabel maps a request method to the method label. Methods outside the standard set become
// "other", so that clients cannot create unbounded label values.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	default:
		return "other"
	}
}

// statusRecorder remembers the status code a handler answers with.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying ResponseWriter.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
