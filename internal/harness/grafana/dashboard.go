// Package grafana reads the PromQL queries of the ecs-sd system's Grafana dashboard,
// deploy/grafana/ecs-sd-dashboard.json, so that the demo and the tests can run them against a real
// Prometheus. It is support code: nothing of it is in bin/ecs-sd.
//
// The dashboard draws the charts of the AWS blog post the project is based on: the sample web
// application's request rate, average latency and latency histogram, and Node Exporter's network
// traffic and CPU usage. Every panel and query uses the data source template variable
// ${datasource}, so the file imports into Amazon Managed Grafana or any Grafana with a Prometheus
// data source. The tests of the file itself are in deploy/grafana.
package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
)

// Dashboard is the dashboard's path from the root of the repository, slash-separated.
const Dashboard = "deploy/grafana/ecs-sd-dashboard.json"

// Query is one PromQL query of a dashboard panel.
type Query struct {
	Title  string // title of the panel
	RefID  string // the query's refId within the panel ("A", "B", ...)
	Legend string // legendFormat
	Expr   string // the PromQL expression, template variables substituted
}

// dashboard is the part of a Grafana dashboard model that Queries reads.
type dashboard struct {
	Panels []panel `json:"panels"`
}

type panel struct {
	Type    string   `json:"type"`
	Title   string   `json:"title"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"` // the panels of a collapsed row
}

type target struct {
	RefID        string `json:"refId"`
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
}

// Queries reads the Grafana dashboard at path and returns the PromQL query of every panel target
// that has one, in panel order, including the panels of collapsed rows.
//
// Template variables in the expressions ($name, ${name}, ${name:format} and [[name]]) are
// replaced by their value in vars, verbatim (no format is applied); a variable missing from vars
// is an error. With a nil vars the expressions are returned as written. To match every value of a
// multi-value variable, as the dashboard's "All" does, pass ".*".
func Queries(path string, vars map[string]string) ([]Query, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dashboard: %w", err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("parse dashboard %s: %w", path, err)
	}
	var out []Query
	var walk func([]panel) error
	walk = func(panels []panel) error {
		for _, p := range panels {
			for _, t := range p.Targets {
				if t.Expr == "" {
					continue
				}
				expr := t.Expr
				if vars != nil {
					if expr, err = Substitute(expr, vars); err != nil {
						return fmt.Errorf("panel %q, query %s: %w", p.Title, t.RefID, err)
					}
				}
				out = append(out, Query{Title: p.Title, RefID: t.RefID, Legend: t.LegendFormat, Expr: expr})
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	return out, nil
}

// variableRef matches Grafana's template variable syntaxes: $name, ${name}, ${name:format},
// [[name]] and [[name:format]].
var variableRef = regexp.MustCompile(`\$(\w+)|\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]`)

// Substitute replaces the template variables of expr by their value in vars. A variable missing
// from vars is an error.
func Substitute(expr string, vars map[string]string) (string, error) {
	var missing string
	out := variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3] // exactly one group matched
		v, ok := vars[name]
		if !ok {
			if missing == "" {
				missing = name
			}
			return ref
		}
		return v
	})
	if missing != "" {
		return "", fmt.Errorf("undefined template variable %q", missing)
	}
	return out, nil
}
