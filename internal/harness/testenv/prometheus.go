package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ecs-sd/ecs-sd/internal/harness/promclient"
	"github.com/ecs-sd/ecs-sd/internal/harness/rig"
	"github.com/ecs-sd/ecs-sd/internal/harness/supervise"
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
type Target = promclient.Target

// Sample is one element of an instant-query result.
type Sample = promclient.Sample

// StartPrometheus writes configYAML to Dir/prometheus.yml and starts Prometheus on it with the
// lifecycle API on (so Reload works) and extraArgs added, waits until /-/ready answers, and stops
// it when tb ends (SIGTERM, SIGKILL after 10 s). It fails tb when prometheus is not on PATH.
// Relative paths in the configuration (file_sd files, rule files) resolve against Dir, where a
// test writes them once Prometheus runs; Prometheus picks up a new file_sd file in about a second.
func StartPrometheus(tb testing.TB, configYAML string, extraArgs ...string) *Prometheus {
	tb.Helper()
	return startPrometheus(tb, configYAML, false, extraArgs)
}

// StartPrometheusAgent is StartPrometheus in agent mode (--enable-feature=agent, its WAL in
// Dir/data): it scrapes and remote-writes, and its API answers for targets and configuration
// but not queries.
func StartPrometheusAgent(tb testing.TB, configYAML string, extraArgs ...string) *Prometheus {
	tb.Helper()
	return startPrometheus(tb, configYAML, true, extraArgs)
}

func startPrometheus(tb testing.TB, configYAML string, agent bool, extraArgs []string) *Prometheus {
	tb.Helper()
	dir := tb.TempDir()
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(configYAML), 0o644); err != nil {
		tb.Fatalf("write prometheus config: %v", err)
	}
	spec, err := rig.Prometheus{
		ConfigFile: configPath,
		DataDir:    filepath.Join(dir, "data"),
		LogPath:    filepath.Join(dir, "prometheus.log"),
		Agent:      agent,
		ExtraArgs:  extraArgs,
	}.Server()
	check(tb, err)
	proc, port, err := supervise.StartServer(tb.Context(), spec)
	if err != nil {
		tb.Fatalf("start prometheus: %v", err)
	}
	p := &process{proc}
	p.stopAtCleanup(tb, rig.PrometheusGrace)
	return &Prometheus{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: dir, Port: port, proc: p}
}

// LogTail returns the last lines of Prometheus's log.
func (p *Prometheus) LogTail(lines int) string { return p.proc.logTail(lines) }

// ActiveTargets returns the active targets (/api/v1/targets?state=active).
func (p *Prometheus) ActiveTargets(ctx context.Context) ([]Target, error) {
	return p.client().ActiveTargets(ctx)
}

// Query runs an instant query (/api/v1/query) and returns its samples; a scalar result is one
// sample without labels.
func (p *Prometheus) Query(ctx context.Context, promql string) ([]Sample, error) {
	return p.client().Query(ctx, promql)
}

// Rules returns the rules of every rule group (/api/v1/rules).
func (p *Prometheus) Rules(ctx context.Context) ([]promclient.Rule, error) {
	return p.client().Rules(ctx)
}

func (p *Prometheus) client() *promclient.Client { return &promclient.Client{URL: p.URL} }

// Reload makes Prometheus re-read its configuration (POST /-/reload).
func (p *Prometheus) Reload(ctx context.Context) error {
	return postEmpty(ctx, p.URL+"/-/reload")
}
