//go:build integration

package grafana_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/grafana"
)

// TestQueriesParseWithPromtool has promtool parse every query of both dashboards, as the
// expression of a recording rule. promtool comes with Debian's prometheus package, which `make
// test` installs.
func TestQueriesParseWithPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found on PATH (apt-get install prometheus): %v", err)
	}
	for file, vars := range map[string]map[string]string{dashboardFile: allVars, selfDashboardFile: selfVars} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			queries, err := grafana.Queries(file, vars)
			require.NoError(t, err)
			type rule struct {
				Record string `json:"record"`
				Expr   string `json:"expr"`
			}
			var rules []rule
			for i, q := range queries {
				rules = append(rules, rule{Record: "dashboard:query" + strconv.Itoa(i), Expr: q.Expr})
			}
			// JSON is YAML, so promtool reads this file as a rule file.
			data, err := json.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
			require.NoError(t, err)
			path := filepath.Join(t.TempDir(), "rules.yml")
			require.NoError(t, os.WriteFile(path, data, 0o600))
			out, err := exec.CommandContext(t.Context(), promtool, "check", "rules", path).CombinedOutput()
			require.NoError(t, err, "promtool check rules:\n%s", out)
			require.Contains(t, string(out), "SUCCESS: "+strconv.Itoa(len(rules))+" rules found")
		})
	}
}
