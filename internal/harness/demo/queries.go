package demo

import (
	"context"
	"math"
	"slices"
	"strings"

	"github.com/ecs-sd/ecs-sd/internal/harness/grafana"
	"github.com/ecs-sd/ecs-sd/internal/harness/promclient"
)

// dashboardVars select every cluster and service, as the dashboard's "All" does.
var dashboardVars = map[string]string{"cluster": ".*", "service": ".*"}

// QueryResult is the answer of one of the seed's queries.
type QueryResult struct {
	grafana.Query
	// Name is how to show it: the panel title, with the legend when the panel has several queries
	// (e.g. "Request latency histogram ≤ 50 ms").
	Name    string
	Samples []promclient.Sample
	Err     error // the query failed (a PromQL or HTTP error)
}

// HasData reports whether the query returned at least one sample with a number (not NaN).
func (r QueryResult) HasData() bool {
	return slices.ContainsFunc(r.Samples, func(s promclient.Sample) bool { return !math.IsNaN(s.Value) })
}

// SeriesName is how one sample of the result is shown: the legend with its {{label}}
// references filled in from the sample.
func (r QueryResult) SeriesName(s promclient.Sample) string {
	name := r.Legend
	for k, v := range s.Metric {
		name = strings.ReplaceAll(name, "{{"+k+"}}", v)
	}
	return name
}

// Queries returns the seed's queries: every query of the Grafana dashboard in deploy/grafana
// (request rate, average latency, share of requests within 50, 100, 250 and 500 ms, node network
// traffic received, CPU usage), for every cluster and service.
func (p *Pipeline) Queries() ([]grafana.Query, error) {
	return grafana.Queries(p.dashboard, dashboardVars)
}

// SeedQueries runs every seed query against the sink (the AMP stand-in) and returns the results
// in dashboard order. A query that fails has Err set; reading the dashboard failing is the error.
func (p *Pipeline) SeedQueries(ctx context.Context) ([]QueryResult, error) {
	queries, err := p.Queries()
	if err != nil {
		return nil, err
	}
	perPanel := map[string]int{}
	for _, q := range queries {
		perPanel[q.Title]++
	}
	results := make([]QueryResult, len(queries))
	for i, q := range queries {
		results[i] = QueryResult{Query: q, Name: q.Title}
		if perPanel[q.Title] > 1 {
			results[i].Name = q.Title + " " + q.Legend
		}
		results[i].Samples, results[i].Err = p.QuerySink(ctx, q.Expr)
	}
	return results, nil
}

// QuerySink runs an instant query on the sink.
func (p *Pipeline) QuerySink(ctx context.Context, promql string) ([]promclient.Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return p.sink.Query(ctx, promql)
}

// ActiveTargets returns Prometheus's active targets: those of every agent in a sharded pipeline.
func (p *Pipeline) ActiveTargets(ctx context.Context) ([]promclient.Target, error) {
	perAgent, err := p.AgentTargets(ctx)
	return slices.Concat(perAgent...), err
}
