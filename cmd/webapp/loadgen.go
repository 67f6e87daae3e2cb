package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxLoadRPS bounds --load.rps; the generator is for demo traffic, not for load testing.
const maxLoadRPS = 1000

// loadRequest is one kind of request of the load generator's mix.
type loadRequest struct {
	method, path string
	weight       float64 // relative frequency
}

// defaultLoadMix spreads the generated requests over all work endpoints, weighted towards the
// fast ones like real traffic.
var defaultLoadMix = []loadRequest{
	{method: http.MethodGet, path: "/", weight: 5},
	{method: http.MethodGet, path: "/api/orders", weight: 3},
	{method: http.MethodPost, path: "/api/orders", weight: 1},
	{method: http.MethodGet, path: "/api/slow", weight: 1},
}

// loadGenerator sends requests to the work endpoints at a fixed rate, so that the dashboards have
// data without an outside client. It is open-loop: a request is started every 1/rps seconds
// whatever the latency of earlier ones, up to maxInFlight concurrent requests.
type loadGenerator struct {
	logger      *slog.Logger
	target      *url.URL // base URL; the mix's paths are resolved against it
	rps         float64
	client      *http.Client
	random      func() float64 // uniform in [0, 1), safe for concurrent use
	mix         []loadRequest
	maxInFlight int

	sent, failed atomic.Uint64
	warned       atomic.Bool
}

// newLoadGenerator returns a generator sending rps requests per second to target. random draws
// the requests from the mix; nil means math/rand/v2's Float64.
func newLoadGenerator(logger *slog.Logger, target *url.URL, rps float64, random func() float64) *loadGenerator {
	const maxInFlight = 100
	if random == nil {
		random = rand.Float64
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = maxInFlight
	return &loadGenerator{
		logger:      logger,
		target:      target,
		rps:         rps,
		client:      &http.Client{Transport: transport, Timeout: 5 * time.Second},
		random:      random,
		mix:         defaultLoadMix,
		maxInFlight: maxInFlight,
	}
}

// run sends requests until ctx is done, then cancels the requests in flight and returns once they
// have ended.
func (g *loadGenerator) run(ctx context.Context) {
	g.logger.Info("Load generator started", "target", g.target.String(), "rps", g.rps)
	interval := time.Duration(float64(time.Second) / g.rps)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	inFlight := make(chan struct{}, g.maxInFlight)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		g.client.CloseIdleConnections()
		g.logger.Info("Load generator stopped", "sent", g.sent.Load(), "failed", g.failed.Load())
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		select {
		case inFlight <- struct{}{}:
		default:
			g.logger.Debug("Load generator at its concurrency limit, skipping a request", "limit", g.maxInFlight)
			continue
		}
		req := g.pick()
		wg.Go(func() {
			defer func() { <-inFlight }()
			g.send(ctx, req)
		})
	}
}

// pick draws a request from the mix according to the weights.
func (g *loadGenerator) pick() loadRequest {
	var total float64
	for _, r := range g.mix {
		total += r.weight
	}
	x := g.random() * total
	for _, r := range g.mix {
		if x < r.weight {
			return r
		}
		x -= r.weight
	}
	return g.mix[len(g.mix)-1]
}

// send makes one request and discards the answer. A failure is logged at warning level the first
// time and at debug level afterwards, so that a wrong target is visible without flooding the log.
func (g *loadGenerator) send(ctx context.Context, lr loadRequest) {
	u := g.target.JoinPath(lr.path)
	var body io.Reader
	if lr.method == http.MethodPost {
		body = strings.NewReader(`{"item":"widget","quantity":1}`)
	}
	req, err := http.NewRequestWithContext(ctx, lr.method, u.String(), body)
	if err != nil {
		g.fail(fmt.Errorf("build request: %w", err), lr)
		return
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "webapp-loadgen")
	g.sent.Add(1)
	resp, err := g.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return // stopping
		}
		g.fail(err, lr)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

func (g *loadGenerator) fail(err error, lr loadRequest) {
	g.failed.Add(1)
	level := slog.LevelDebug
	if g.warned.CompareAndSwap(false, true) {
		level = slog.LevelWarn
	}
	g.logger.Log(context.Background(), level, "Load generator request failed", "method", lr.method, "path", lr.path, "err", err)
}

// parseLoadTarget validates the --load.target flag: an absolute http or https URL.
func parseLoadTarget(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("parse load target: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("load target %q is not an absolute http(s) URL", s)
	}
	return u, nil
}

// defaultLoadTarget returns the URL at which the application listening on addr reaches itself. An
// unspecified listen address (":3000", "0.0.0.0:3000", "[::]:3000") is reached on 127.0.0.1.
func defaultLoadTarget(addr net.Addr) (*url.URL, error) {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return nil, fmt.Errorf("split listen address: %w", err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: "/"}, nil
}
