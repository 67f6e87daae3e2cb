package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startGenerator runs g in the background and returns a function that stops it and fails the
// test unless run returns within bound.
func startGenerator(t *testing.T, g *loadGenerator, bound time.Duration) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.run(ctx)
	}()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(bound):
			t.Fatalf("load generator did not stop within %v", bound)
		}
	}
	t.Cleanup(stop)
	return stop
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func TestLoadGeneratorDrivesRequestCounter(t *testing.T) {
	t.Parallel()
	srv := newTestApp(t, func(o *options) {
		o.sleep = func(context.Context, time.Duration) error { return nil } // no latency: fast test
	})
	before := counts(t, scrape(t, srv.URL))
	require.Empty(t, before)

	g := newLoadGenerator(promslog.NewNopLogger(), mustURL(t, srv.URL), 200, nil)
	stop := startGenerator(t, g, 2*time.Second)

	var total float64
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		total = 0
		for _, v := range counts(c, scrape(c, srv.URL)) {
			total += v
		}
		require.GreaterOrEqual(c, total, 40.0)
	}, 10*time.Second, 50*time.Millisecond)
	stop()

	after := counts(t, scrape(t, srv.URL))
	paths := map[string]bool{}
	for k := range after {
		paths[k.path+" "+k.method] = true
		require.NotEqual(t, unmatchedPath, k.path, "the generator requested a path the app does not serve")
		require.Contains(t, []string{"200", "201", "500", "499"}, k.code, "series %v", k)
	}
	// With at least 40 requests every kind of the mix is all but certain to appear (the rarest
	// has weight 1/10: 0.9^40 < 2%); ask only for the most frequent two to keep the test stable.
	require.True(t, paths["/ GET"], "no GET / in %v", paths)
	require.True(t, paths["/api/orders GET"], "no GET /api/orders in %v", paths)
	require.Positive(t, g.sent.Load())
	require.Zero(t, g.failed.Load())
}

func TestLoadGeneratorPicksByWeight(t *testing.T) {
	t.Parallel()
	// Weights 5, 3, 1, 1 of a total of 10: [0, .5) [.5, .8) [.8, .9) [.9, 1).
	for _, tc := range []struct {
		random       float64
		method, path string
	}{
		{0, http.MethodGet, "/"},
		{0.49, http.MethodGet, "/"},
		{0.5, http.MethodGet, "/api/orders"},
		{0.79, http.MethodGet, "/api/orders"},
		{0.8, http.MethodPost, "/api/orders"},
		{0.89, http.MethodPost, "/api/orders"},
		{0.9, http.MethodGet, "/api/slow"},
		{0.999, http.MethodGet, "/api/slow"},
	} {
		g := newLoadGenerator(promslog.NewNopLogger(), mustURL(t, "http://127.0.0.1:1/"), 1, func() float64 { return tc.random })
		got := g.pick()
		require.Equal(t, tc.method+" "+tc.path, got.method+" "+got.path, "random %v", tc.random)
	}
}

func TestLoadGeneratorRate(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	t.Cleanup(srv.Close)

	g := newLoadGenerator(promslog.NewNopLogger(), mustURL(t, srv.URL), 50, nil)
	stop := startGenerator(t, g, 2*time.Second)
	time.Sleep(time.Second)
	stop()
	// 50 rps for one second: about 50 requests, never more than the ticks that fit.
	require.InDelta(t, 50, hits.Load(), 20, "requests sent in one second at 50 rps")
}

func TestLoadGeneratorStopCancelsRequestsInFlight(t *testing.T) {
	t.Parallel()
	var started atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets net/http notice the client going away.
		_, _ = io.Copy(io.Discard, r.Body)
		started.Add(1)
		select { // does not answer on its own within the test's bound
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)

	g := newLoadGenerator(promslog.NewNopLogger(), mustURL(t, srv.URL), 100, nil)
	// The client timeout is 5 s; stopping within 1 s shows the requests are cancelled.
	stop := startGenerator(t, g, time.Second)
	require.Eventually(t, func() bool { return started.Load() >= 5 }, 5*time.Second, 10*time.Millisecond)
	stop()
	require.Zero(t, g.failed.Load(), "cancelled requests are not failures")
}

func TestLoadGeneratorCountsFailures(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	g := newLoadGenerator(promslog.NewNopLogger(), mustURL(t, "http://"+addr), 100, nil)
	stop := startGenerator(t, g, 2*time.Second)
	require.Eventually(t, func() bool { return g.failed.Load() >= 3 }, 5*time.Second, 10*time.Millisecond)
	stop()
	require.True(t, g.warned.Load())
}

func TestDefaultLoadTarget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4zero, Port: 3000}, "http://127.0.0.1:3000/api/orders"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 3000}, "http://127.0.0.1:3000/api/orders"},
		{&net.TCPAddr{Port: 3000}, "http://127.0.0.1:3000/api/orders"},
		{&net.TCPAddr{IP: net.ParseIP("10.0.1.7"), Port: 8080}, "http://10.0.1.7:8080/api/orders"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 3000}, "http://[::1]:3000/api/orders"},
	} {
		u, err := defaultLoadTarget(tc.addr)
		require.NoError(t, err, tc.addr)
		require.Equal(t, tc.want, u.JoinPath("/api/orders").String(), tc.addr)
	}
}

func TestParseLoadTarget(t *testing.T) {
	t.Parallel()
	for s, ok := range map[string]bool{
		"http://webapp.ecs-services:3000":  true,
		"https://example.com/base/":        true,
		"ftp://example.com":                false,
		"webapp:3000":                      false,
		"http://":                          false,
		"://bad":                           false,
		"/api/orders":                      false,
		"http://127.0.0.1:3000/prefix/app": true,
	} {
		_, err := parseLoadTarget(s)
		if ok {
			require.NoError(t, err, s)
		} else {
			require.Error(t, err, s)
		}
	}
	u, err := parseLoadTarget("https://example.com/base/")
	require.NoError(t, err)
	require.Equal(t, "https://example.com/base/api/slow", u.JoinPath("/api/slow").String())
}
