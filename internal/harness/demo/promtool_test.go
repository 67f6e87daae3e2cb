//go:build integration

package demo

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPrometheusTemplatePassesPromtool checks that Prometheus accepts the demo's template.
func TestPrometheusTemplatePassesPromtool(t *testing.T) {
	_, out := deployKitTemplate(t)
	promtoolCheck(t, out)
}

// TestAgentConfigPassesPromtool checks that Prometheus accepts the agent configuration rendered
// from the deploy kit's template.
func TestAgentConfigPassesPromtool(t *testing.T) {
	promtoolCheck(t, renderAgent(t))
}

// promtoolCheck runs promtool check config on a configuration.
func promtoolCheck(t *testing.T, config []byte) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool comes with apt-get install prometheus")
	path := filepath.Join(t.TempDir(), "prometheus.yml")
	require.NoError(t, os.WriteFile(path, config, 0o644))
	check, err := exec.Command(promtool, "check", "config", "--syntax-only", path).CombinedOutput()
	require.NoError(t, err, "%s", check)
}
