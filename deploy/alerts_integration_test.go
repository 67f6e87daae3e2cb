//go:build integration

package deploy_test

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestAlertsPassPromtool: promtool accepts the alerting rules on ecs-sd (check rules) and their
// unit tests pass (test rules): every alert fires at the time and with the labels and annotations
// the tests expect, and not before.
func TestAlertsPassPromtool(t *testing.T) {
	t.Parallel()
	promtool := requireTool(t, "promtool", "apt-get install prometheus")
	dir := filepath.Dir(alertsPath)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "rules", filepath.Base(alertsPath)}, "SUCCESS: " + strconv.Itoa(len(loadAlerts(t))) + " rules found"},
		{[]string{"test", "rules", filepath.Base(alertsTestPath)}, "SUCCESS"},
	} {
		cmd := exec.CommandContext(t.Context(), promtool, c.args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Fatalf("promtool %s (in %s): %v, want %q in\n%s", strings.Join(c.args, " "), dir, err, c.want, out)
		}
	}
}
