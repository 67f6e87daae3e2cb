package grafana

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Metric definitions in ecs-sd's code: the Name of a client_golang metric, a histogram's opening
// the expression, and the collectors of Go, the process and the build info that main registers.
var (
	metricName      = regexp.MustCompile(`(?s)(prometheus\.(?:New)?(Histogram|Counter|Gauge|Summary)(?:Vec)?\(prometheus\.\w+Opts\{\s*)?Name:\s*"(ecs_sd_[a-z0-9_]+)"`)
	buildInfo       = regexp.MustCompile(`versioncollector\.NewCollector\("(\w+)"\)`)
	processMetrics  = []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds", "process_open_fds"}
	goMetrics       = []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_gc_duration_seconds"}
	exportedSources = []string{"cmd/ecs-sd", "internal"}
)

// ExportedMetrics returns the names of the series ecs-sd's /metrics can hold, read from the code
// under root (the repository): every metric named in the non-test Go files of cmd/ecs-sd and
// internal (but internal/harness, which is not in the binary), a histogram's as its _bucket, _sum
// and _count series, ecs-sd's build info, and, when main registers their collectors, a few
// of the Go runtime's and the process's series. up, which Prometheus adds to every target, is
// included.
func ExportedMetrics(root string) (map[string]bool, error) {
	out := map[string]bool{"up": true}
	for _, dir := range exportedSources {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && d.Name() == "harness":
				return filepath.SkipDir
			case d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go"):
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			src := string(data)
			for _, m := range metricName.FindAllStringSubmatch(src, -1) {
				name := m[3]
				if m[2] != "Histogram" {
					out[name] = true
					continue
				}
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					out[name+s] = true
				}
			}
			for _, m := range buildInfo.FindAllStringSubmatch(src, -1) {
				out[m[1]+"_build_info"] = true
			}
			for collector, names := range map[string][]string{"collectors.NewProcessCollector(": processMetrics, "collectors.NewGoCollector(": goMetrics} {
				if strings.Contains(src, collector) {
					for _, n := range names {
						out[n] = true
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read metric names: %w", err)
		}
	}
	return out, nil
}

// PromQL syntax that names no metric: quoted strings, label matchers, ranges and subqueries, the
// label lists of by, without, on, ignoring, group_left and group_right, keywords and functions (a
// name followed by "(").
var (
	promqlNoise    = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlName     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promqlKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "Inf", "NaN"}
)

// MetricNames returns the metric names an expression selects, in order, each once. It reads
// PromQL as the dashboards and rules of ecs-sd write it (no metric names inside braces, as in
// {__name__="x"}); numbers with units (5m, 1e3) are not names.
func MetricNames(expr string) []string {
	expr = promqlNoise.ReplaceAllString(expr, " ")
	var out []string
	for _, loc := range promqlName.FindAllStringSubmatchIndex(expr, -1) {
		name := expr[loc[0]:loc[1]]
		if loc[2] >= 0 { // a function
			continue
		}
		if loc[0] > 0 && (expr[loc[0]-1] >= '0' && expr[loc[0]-1] <= '9' || expr[loc[0]-1] == '.') {
			continue // the unit or exponent of a number
		}
		if !slices.Contains(promqlKeywords, name) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// AlertRule is one alerting rule of a Prometheus rule file.
type AlertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// AlertRules reads the alerting rules of every group of the Prometheus rule file at path (such as
// deploy/prometheus/ecs-sd-alerts.yml), in order.
func AlertRules(path string) ([]AlertRule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	var f struct {
		Groups []struct {
			Rules []AlertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parse rules %s: %w", path, err)
	}
	var out []AlertRule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out, nil
}
