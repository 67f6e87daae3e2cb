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
	promtool, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool comes with apt-get install prometheus")
	path := filepath.Join(t.TempDir(), "prometheus.yml")
	require.NoError(t, os.WriteFile(path, out, 0o644))
	check, err := exec.Command(promtool, "check", "config", "--syntax-only", path).CombinedOutput()
	require.NoError(t, err, "%s", check)
}
