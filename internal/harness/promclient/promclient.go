// Package promclient is a small client of the Prometheus HTTP API (/api/v1): active targets,
// instant queries (with the samples as plain Go values) and the running configuration. The test harness (testenv) and
// the local demo (demo) read Prometheus with it.
package promclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Client reads the HTTP API of one Prometheus server.
type Client struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:9090.
	URL string
}

// Target is one active target of /api/v1/targets.
type Target struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	Labels           map[string]string `json:"labels"`
	ScrapePool       string            `json:"scrapePool"`
	ScrapeURL        string            `json:"scrapeUrl"`
	ScrapeInterval   string            `json:"scrapeInterval"`
	ScrapeTimeout    string            `json:"scrapeTimeout"`
	Health           string            `json:"health"`
	LastError        string            `json:"lastError"`
}

// Sample is one element of an instant-query result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// ActiveTargets returns the active targets (/api/v1/targets?state=active).
func (c *Client) ActiveTargets(ctx context.Context) ([]Target, error) {
	var data struct {
		ActiveTargets []Target `json:"activeTargets"`
	}
	if err := c.api(ctx, "/api/v1/targets", url.Values{"state": {"active"}}, &data); err != nil {
		return nil, err
	}
	return data.ActiveTargets, nil
}

// Query runs an instant query (/api/v1/query) and returns its samples; a scalar result is one
// sample without labels.
func (c *Client) Query(ctx context.Context, promql string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := c.api(ctx, "/api/v1/query", url.Values{"query": {promql}}, &data); err != nil {
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

// Rule is one rule of /api/v1/rules: its name (the alert's, or the recorded series'), whether its
// last evaluation worked, and an alert's state (inactive, pending, firing).
type Rule struct {
	Name      string `json:"name"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
	State     string `json:"state"`
}

// Rules returns the rules of every rule group (/api/v1/rules).
func (c *Client) Rules(ctx context.Context) ([]Rule, error) {
	var data struct {
		Groups []struct {
			Rules []Rule `json:"rules"`
		} `json:"groups"`
	}
	if err := c.api(ctx, "/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	var out []Rule
	for _, g := range data.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

// Config returns the configuration Prometheus runs with, as YAML (/api/v1/status/config).
func (c *Client) Config(ctx context.Context) (string, error) {
	var data struct {
		YAML string `json:"yaml"`
	}
	if err := c.api(ctx, "/api/v1/status/config", nil, &data); err != nil {
		return "", err
	}
	return data.YAML, nil
}

// api GETs an HTTP API path and decodes the "data" member of a successful answer into data.
func (c *Client) api(ctx context.Context, path string, query url.Values, data any) error {
	u := c.URL + path + "?" + query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, http.NoBody)
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
