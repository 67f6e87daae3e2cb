package deploy_test

import (
	"os"
	"reflect"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ecs-sd/ecs-sd/internal/harness/grafana"
)

// The alerting rules on ecs-sd and their promtool unit tests.
const (
	alertsPath     = "prometheus/ecs-sd-alerts.yml"
	alertsTestPath = "prometheus/ecs-sd-alerts_test.yml"
)

func loadYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadAlerts(t *testing.T) []grafana.AlertRule {
	t.Helper()
	rules, err := grafana.AlertRules(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no alerts", alertsPath)
	}
	return rules
}

// TestAlertsReadMetricsEcsSdExports: every alert reads only series ecs-sd exports (found in its
// code) or up, and carries a severity, a summary, a description and a runbook hint.
func TestAlertsReadMetricsEcsSdExports(t *testing.T) {
	t.Parallel()
	exported, err := grafana.ExportedMetrics("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range loadAlerts(t) {
		if r.Alert == "" || r.Expr == "" {
			t.Errorf("a rule without alert name or expression: %+v", r)
			continue
		}
		names := grafana.MetricNames(r.Expr)
		if len(names) == 0 {
			t.Errorf("%s: its expression names no metric: %s", r.Alert, r.Expr)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("%s: %s is no series of ecs-sd", r.Alert, n)
			}
		}
		if s := r.Labels["severity"]; !slices.Contains([]string{"critical", "warning", "info"}, s) {
			t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
	}
}

// TestAlertsTestCoversEveryAlert: the promtool tests see every alert fire, and see it not fire.
func TestAlertsTestCoversEveryAlert(t *testing.T) {
	t.Parallel()
	var f struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	loadYAML(t, alertsTestPath, &f)
	if !reflect.DeepEqual(f.RuleFiles, []string{"ecs-sd-alerts.yml"}) {
		t.Fatalf("rule_files %v, want [ecs-sd-alerts.yml]", f.RuleFiles)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, r := range loadAlerts(t) {
		if !fires[r.Alert] || !quiet[r.Alert] {
			t.Errorf("%s: tested firing %v, tested not firing %v; want both", r.Alert, fires[r.Alert], quiet[r.Alert])
		}
	}
}

// TestCloudFormationAlertsAreTheAlertsFile: the stack loads the alerts file into its workspace.
func TestCloudFormationAlertsAreTheAlertsFile(t *testing.T) {
	t.Parallel()
	props := loadTemplate(t).resource(t, "EcsSdAlerts")
	data, ok := props["Data"].(string)
	if !ok {
		t.Fatalf("EcsSdAlerts Data is not a plain string: %#v", props["Data"])
	}
	if ws, _ := props["Workspace"].(map[string]any); !reflect.DeepEqual(ws, map[string]any{"Fn::GetAtt": []any{"Workspace", "Arn"}}) {
		t.Errorf("EcsSdAlerts Workspace %#v, want !GetAtt Workspace.Arn", props["Workspace"])
	}
	var fromTemplate, fromFile any
	if err := yaml.Unmarshal([]byte(data), &fromTemplate); err != nil {
		t.Fatal(err)
	}
	loadYAML(t, alertsPath, &fromFile)
	if !reflect.DeepEqual(fromTemplate, fromFile) {
		t.Fatalf("the template's alerting rules differ from %s:\ntemplate:\n%s", alertsPath, data)
	}
}
