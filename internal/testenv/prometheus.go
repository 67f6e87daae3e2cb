package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

const (
	promStartTimeout = 60 * time.Second
	promGrace        = 10 * time.Second
)

// Prometheus is a real Prometheus server running on 127.0.0.1.
type Prometheus struct {
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string
	// Dir holds prometheus.yml, the TSDB (data/) and the log; tests put file_sd files here.
	Dir string
	// Port is the port of URL, handy as a scrape target that is always up.
	Port int

	proc *process
}

// Target is one active target of /api/v1/targets.
type Target struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	Labels           map[string]string `json:"labels"`
	ScrapePool       string            `json:"scrapePool"`
	ScrapeURL        string            `json:"scrapeUrl"`
	Health           string            `json:"health"`
	LastError        string            `json:"lastError"`
}

// Sample is one element of an instant-query result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// StartPrometheus writes configYAML to Dir/prometheus.yml and starts Prometheus on it with the
// lifecycle API on (so Reload works) and extraArgs added, waits until /-/ready answers, and stops
// it when tb ends (SIGTERM, SIGKILL after 10 s). It fails tb when prometheus is not on PATH.
// Relative paths in the configuration (file_sd files, rule files) resolve against Dir, where a
// test writes them once Prometheus runs; Prometheus picks up a new file_sd file in about a second.
func StartPrometheus(tb testing.TB, configYAML string, extraArgs ...string) *Prometheus {
	tb.Helper()
	bin, err := lookPath("prometheus", "apt-get install prometheus")
	check(tb, err)
	dir := tb.TempDir()
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(configYAML), 0o644); err != nil {
		tb.Fatalf("write prometheus config: %v", err)
	}
	proc, port, err := startServer(serverSpec{
		binary: bin,
		args: func(port int) []string {
			return append([]string{
				"--config.file=" + configPath,
				"--storage.tsdb.path=" + filepath.Join(dir, "data"),
				"--web.listen-address=127.0.0.1:" + strconv.Itoa(port),
				"--web.enable-lifecycle",
			}, extraArgs...)
		},
		logPath:   filepath.Join(dir, "prometheus.log"),
		readyPath: "/-/ready",
		ready:     func(resp *http.Response) bool { return resp.StatusCode == http.StatusOK },
		timeout:   promStartTimeout,
		grace:     promGrace,
	})
	if err != nil {
		tb.Fatalf("start prometheus: %v", err)
	}
	proc.stopAtCleanup(tb, promGrace)
	return &Prometheus{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: dir, Port: port, proc: proc}
}

// LogTail returns the last lines of Prometheus's log.
func (p *Prometheus) LogTail(lines int) string { return p.proc.logTail(lines) }

// ActiveTargets returns the active targets (/api/v1/targets?state=active).
func (p *Prometheus) ActiveTargets(ctx context.Context) ([]Target, error) {
	var data struct {
		ActiveTargets []Target `json:"activeTargets"`
	}
	if err := p.api(ctx, "/api/v1/targets", url.Values{"state": {"active"}}, &data); err != nil {
		return nil, err
	}
	return data.ActiveTargets, nil
}

// Query runs an instant query (/api/v1/query) and returns its samples; a scalar result is one
// sample without labels.
func (p *Prometheus) Query(ctx context.Context, promql string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.api(ctx, "/api/v1/query", url.Values{"query": {promql}}, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var vector []struct {
			Metric map[string]string `json:"metric"`
			Value  sampleValue       `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &vector); err != nil {
			return nil, fmt.Errorf("decode vector of %q: %w", promql, err)
		}
		samples := make([]Sample, len(vector))
		for i, s := range vector {
			samples[i] = Sample{Metric: s.Metric, Value: float64(s.Value)}
		}
		return samples, nil
	case "scalar":
		var v sampleValue
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, fmt.Errorf("decode scalar of %q: %w", promql, err)
		}
		return []Sample{{Metric: map[string]string{}, Value: float64(v)}}, nil
	default:
		return nil, fmt.Errorf("query %q: unsupported result type %q", promql, data.ResultType)
	}
}

// sampleValue decodes a Prometheus [timestamp, "value"] pair into its value.
type sampleValue float64

func (v *sampleValue) UnmarshalJSON(b []byte) error {
	var pair []any
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	if len(pair) != 2 {
		return fmt.Errorf("sample value %s is not a [time, value] pair", b)
	}
	s, ok := pair[1].(string)
	if !ok {
		return fmt.Errorf("sample value %s: value is not a string", b)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("sample value %s: %w", b, err)
	}
	*v = sampleValue(f)
	return nil
}

// Reload makes Prometheus re-read its configuration (POST /-/reload).
func (p *Prometheus) Reload(ctx context.Context) error {
	return postEmpty(ctx, p.URL+"/-/reload")
}

// api GETs an HTTP API path and decodes the "data" member of a successful answer into data.
func (p *Prometheus) api(ctx context.Context, path string, query url.Values, data any) error {
	u := p.URL + path + "?" + query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("build request for %s: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read %s: %w", u, err)
	}
	var envelope struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return fmt.Errorf("decode %s (status %s): %w", u, resp.Status, err)
	}
	if envelope.Status != "success" {
		return fmt.Errorf("get %s: %s: %s: %s", u, resp.Status, envelope.ErrorType, envelope.Error)
	}
	if err := json.Unmarshal(envelope.Data, data); err != nil {
		return fmt.Errorf("decode data of %s: %w", u, err)
	}
	return nil
}
