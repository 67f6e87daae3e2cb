package main

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock makes latencies deterministic: sleep advances the clock by the requested duration at
// once, so the instrumented duration of a request is exactly its simulated latency. It is meant
// for requests made one after the other.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.slept = append(c.slept, d)
	return nil
}

func (c *fakeClock) sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.slept)
}

// scripted returns a random source that yields values in order, and fails the test when it runs
// out.
func scripted(t *testing.T, values ...float64) func() float64 {
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if len(values) == 0 {
			t.Error("scripted random source exhausted")
			return 0.99
		}
		v := values[0]
		values = values[1:]
		return v
	}
}

// newTestApp serves the application on an httptest server with a fresh registry. modify, if not
// nil, adjusts the options first.
func newTestApp(t *testing.T, modify func(*options)) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	o := options{logger: promslog.NewNopLogger(), registerer: reg, gatherer: reg}
	if modify != nil {
		modify(&o)
	}
	h, err := newHandler(o)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// do makes one request and returns its status code and body.
func do(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, http.NoBody)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// scrape fetches baseURL/metrics in the Prometheus text format and parses it.
func scrape(t require.TestingT, baseURL string) map[string]*dto.MetricFamily {
	req, err := http.NewRequest(http.MethodGet, baseURL+"/metrics", http.NoBody)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), "content type %q", resp.Header.Get("Content-Type"))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// seriesKey identifies a series of the application metrics.
type seriesKey struct{ path, method, code string }

func keyOf(t require.TestingT, m *dto.Metric) seriesKey {
	var k seriesKey
	for _, lp := range m.GetLabel() {
		switch lp.GetName() {
		case labelPath:
			k.path = lp.GetValue()
		case labelMethod:
			k.method = lp.GetValue()
		case labelCode:
			k.code = lp.GetValue()
		default:
			require.Failf(t, "unexpected label", "label %q", lp.GetName())
		}
	}
	return k
}

// counts returns http_requests_total by series; a missing family is an empty map.
func counts(t require.TestingT, families map[string]*dto.MetricFamily) map[seriesKey]float64 {
	out := map[seriesKey]float64{}
	for _, m := range families[requestsTotalName].GetMetric() {
		out[keyOf(t, m)] = m.GetCounter().GetValue()
	}
	return out
}

// histograms returns request_duration_milliseconds by series.
func histograms(t require.TestingT, families map[string]*dto.MetricFamily) map[seriesKey]*dto.Histogram {
	out := map[seriesKey]*dto.Histogram{}
	for _, m := range families[requestDurationName].GetMetric() {
		out[keyOf(t, m)] = m.GetHistogram()
	}
	return out
}

// bucketCounts returns the cumulative counts of h's buckets by upper bound.
func bucketCounts(h *dto.Histogram) map[float64]uint64 {
	out := map[float64]uint64{}
	for _, b := range h.GetBucket() {
		out[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	return out
}

func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newTestApp(t, func(o *options) {
		o.now, o.sleep = clock.now, clock.sleep
		o.random = func() float64 { return 0.99 } // never fails a request
	})
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/"}, {http.MethodGet, "/api/orders"}, {http.MethodPost, "/api/orders"}, {http.MethodGet, "/api/slow"},
	} {
		code, _ := do(t, r.method, srv.URL+r.path)
		require.Less(t, code, 300, "%s %s", r.method, r.path)
	}

	families := scrape(t, srv.URL)

	counter := families["http_requests_total"]
	require.NotNil(t, counter, "http_requests_total missing")
	require.Equal(t, dto.MetricType_COUNTER, counter.GetType())
	require.NotEmpty(t, counter.GetHelp())

	hist := families["request_duration_milliseconds"]
	require.NotNil(t, hist, "request_duration_milliseconds missing")
	require.Equal(t, dto.MetricType_HISTOGRAM, hist.GetType())
	require.NotEmpty(t, hist.GetHelp())

	for _, fam := range []*dto.MetricFamily{counter, hist} {
		require.Len(t, fam.GetMetric(), 4, fam.GetName())
		for _, m := range fam.GetMetric() {
			var names []string
			for _, lp := range m.GetLabel() {
				names = append(names, lp.GetName())
			}
			sort.Strings(names)
			require.Equal(t, []string{"code", "method", "path"}, names, fam.GetName())
		}
	}
	for _, m := range hist.GetMetric() {
		h := m.GetHistogram()
		var bounds []float64
		for _, b := range h.GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		require.Equal(t, []float64{50, 100, 250, 500, math.Inf(1)}, bounds, "bucket bounds of %v", keyOf(t, m))
		require.Equal(t, uint64(1), h.GetSampleCount())
		require.Equal(t, uint64(1), bucketCounts(h)[math.Inf(1)])
	}

	require.Equal(t, map[seriesKey]float64{
		{"/", "GET", "200"}:            1,
		{"/api/orders", "GET", "200"}:  1,
		{"/api/orders", "POST", "201"}: 1,
		{"/api/slow", "GET", "200"}:    1,
	}, counts(t, families))
}

func TestRequestsCountedByPathMethodCode(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	// Each work request draws its latency; /api/orders then draws whether it fails (below 0.05).
	srv := newTestApp(t, func(o *options) {
		o.now, o.sleep = clock.now, clock.sleep
		o.random = scripted(t,
			0.1,      // GET /
			0.1,      // GET /
			0.1,      // HEAD /
			0.2, 0.9, // GET /api/orders: succeeds
			0.2, 0.01, // GET /api/orders: fails
			0.3, 0.5, // POST /api/orders: succeeds
			0.4, // GET /api/slow
		)
	})

	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/", http.StatusOK},
		{http.MethodGet, "/", http.StatusOK},
		{http.MethodHead, "/", http.StatusOK},
		{http.MethodGet, "/api/orders", http.StatusOK},
		{http.MethodGet, "/api/orders", http.StatusInternalServerError},
		{http.MethodPost, "/api/orders", http.StatusCreated},
		{http.MethodGet, "/api/slow", http.StatusOK},
		{http.MethodDelete, "/api/slow", http.StatusMethodNotAllowed},
		{http.MethodPut, "/api/orders", http.StatusMethodNotAllowed},
		{"BREW", "/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/no/such/page", http.StatusNotFound},
		{http.MethodGet, "/api/orders/", http.StatusNotFound},
		{http.MethodGet, "/-/healthy", http.StatusOK}, // not counted
		{http.MethodGet, "/metrics", http.StatusOK},   // not counted
	} {
		code, _ := do(t, tc.method, srv.URL+tc.path)
		require.Equal(t, tc.code, code, "%s %s", tc.method, tc.path)
	}

	families := scrape(t, srv.URL)
	want := map[seriesKey]float64{
		{"/", "GET", "200"}:            2,
		{"/", "HEAD", "200"}:           1,
		{"/api/orders", "GET", "200"}:  1,
		{"/api/orders", "GET", "500"}:  1,
		{"/api/orders", "POST", "201"}: 1,
		{"/api/slow", "GET", "200"}:    1,
		{"/api/slow", "DELETE", "405"}: 1,
		{"/api/orders", "PUT", "405"}:  1,
		{"/", "other", "405"}:          1,
		{unmatchedPath, "GET", "404"}:  2,
	}
	require.Equal(t, want, counts(t, families))

	hists := histograms(t, families)
	require.Len(t, hists, len(want))
	for k, n := range want {
		require.Equal(t, uint64(n), hists[k].GetSampleCount(), "histogram count of %v", k)
	}
	// Rejected requests are answered at once, without simulated latency: 7 work requests slept.
	require.Len(t, clock.sleeps(), 7)
}

func TestLatencyObservedInBuckets(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	// latency = min + (max-min)*u²
	srv := newTestApp(t, func(o *options) {
		o.now, o.sleep = clock.now, clock.sleep
		o.random = scripted(t,
			0.0, 0.9, // /api/orders: 30 ms     -> le=50
			0.5, 0.9, // /api/orders: 97.5 ms   -> le=100
			0.9, 0.9, // /api/orders: 248.7 ms  -> le=250
			1.0, 0.9, // /api/orders: 300 ms    -> le=500
			0.0, // /api/slow: 200 ms      -> le=250
			0.5, // /api/slow: 350 ms      -> le=500
			0.9, // /api/slow: 686 ms      -> +Inf
			1.0, // /api/slow: 800 ms      -> +Inf
			0.5, // /: 17.5 ms             -> le=50
		)
	})
	for range 4 {
		code, _ := do(t, http.MethodGet, srv.URL+"/api/orders")
		require.Equal(t, http.StatusOK, code)
	}
	for range 4 {
		code, _ := do(t, http.MethodGet, srv.URL+"/api/slow")
		require.Equal(t, http.StatusOK, code)
	}
	code, _ := do(t, http.MethodGet, srv.URL+"/")
	require.Equal(t, http.StatusOK, code)

	hists := histograms(t, scrape(t, srv.URL))
	inf := math.Inf(1)

	orders := hists[seriesKey{"/api/orders", "GET", "200"}]
	require.NotNil(t, orders)
	require.Equal(t, map[float64]uint64{50: 1, 100: 2, 250: 3, 500: 4, inf: 4}, bucketCounts(orders))
	require.InDelta(t, 30+97.5+248.7+300, orders.GetSampleSum(), 1e-6)

	slow := hists[seriesKey{"/api/slow", "GET", "200"}]
	require.NotNil(t, slow)
	require.Equal(t, map[float64]uint64{50: 0, 100: 0, 250: 1, 500: 2, inf: 4}, bucketCounts(slow))
	require.InDelta(t, 200+350+686+800, slow.GetSampleSum(), 1e-6)

	index := hists[seriesKey{"/", "GET", "200"}]
	require.NotNil(t, index)
	require.Equal(t, map[float64]uint64{50: 1, 100: 1, 250: 1, 500: 1, inf: 1}, bucketCounts(index))
	require.InDelta(t, 17.5, index.GetSampleSum(), 1e-6)
}

func TestLatencyStaysWithinDocumentedRanges(t *testing.T) {
	t.Parallel()
	ranges := map[string][2]time.Duration{
		"/":           {10 * time.Millisecond, 40 * time.Millisecond},
		"/api/orders": {30 * time.Millisecond, 300 * time.Millisecond},
		"/api/slow":   {200 * time.Millisecond, 800 * time.Millisecond},
	}
	for path, bounds := range ranges {
		clock := newFakeClock()
		srv := newTestApp(t, func(o *options) { o.now, o.sleep = clock.now, clock.sleep }) // real random
		const n = 200
		failures := 0
		for range n {
			code, _ := do(t, http.MethodGet, srv.URL+path)
			if code == http.StatusInternalServerError {
				failures++
			}
		}
		slept := clock.sleeps()
		require.Len(t, slept, n)
		for _, d := range slept {
			require.GreaterOrEqual(t, d, bounds[0], path)
			require.LessOrEqual(t, d, bounds[1], path)
		}
		// The latencies are spread, not constant.
		require.Greater(t, slices.Max(slept)-slices.Min(slept), (bounds[1]-bounds[0])/2, path)
		if path == "/api/orders" {
			// 5% expected; 0 or more than 20% in 200 draws would be a bug, not bad luck.
			require.Positive(t, failures, "no simulated failure in %d requests", n)
			require.Less(t, failures, n/5)
			// The spread covers several buckets of the histogram.
			hist := histograms(t, scrape(t, srv.URL))[seriesKey{"/api/orders", "GET", "200"}]
			b := bucketCounts(hist)
			require.Positive(t, b[50])
			require.Greater(t, b[250], b[100])
			require.Greater(t, b[100], b[50])
		} else {
			require.Zero(t, failures, path)
		}
	}
}

func TestRealLatencyIsMeasured(t *testing.T) {
	t.Parallel()
	srv := newTestApp(t, nil) // real clock, sleep and random
	const n = 3
	for range n {
		code, body := do(t, http.MethodGet, srv.URL+"/")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "/api/orders")
	}
	h := histograms(t, scrape(t, srv.URL))[seriesKey{"/", "GET", "200"}]
	require.NotNil(t, h)
	require.Equal(t, uint64(n), h.GetSampleCount())
	// Every request sleeps at least 10 ms; the histogram is in milliseconds, not seconds.
	require.GreaterOrEqual(t, h.GetSampleSum(), float64(n*10))
	require.Less(t, h.GetSampleSum(), float64(n*1000))
}

func TestClientGoneIsCountedAs499(t *testing.T) {
	t.Parallel()
	sleeping := make(chan struct{}, 1)
	srv := newTestApp(t, func(o *options) {
		o.sleep = func(ctx context.Context, _ time.Duration) error {
			sleeping <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/slow", http.NoBody)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		errc <- err
	}()
	<-sleeping
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		require.Equal(c, map[seriesKey]float64{{"/api/slow", "GET", "499"}: 1}, counts(c, scrape(c, srv.URL)))
	}, 5*time.Second, 20*time.Millisecond)
}

func TestHealthy(t *testing.T) {
	t.Parallel()
	srv := newTestApp(t, nil)
	code, body := do(t, http.MethodGet, srv.URL+"/-/healthy")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "Healthy.\n", body)
	require.Empty(t, counts(t, scrape(t, srv.URL)), "/-/healthy and /metrics must not be counted")
}

func TestNewHandlerErrors(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	_, err := newHandler(options{logger: promslog.NewNopLogger(), registerer: reg})
	require.Error(t, err, "missing gatherer")

	o := options{logger: promslog.NewNopLogger(), registerer: reg, gatherer: reg}
	_, err = newHandler(o)
	require.NoError(t, err)
	_, err = newHandler(o)
	require.ErrorContains(t, err, "register application metrics", "registering the metrics twice must fail")
}
