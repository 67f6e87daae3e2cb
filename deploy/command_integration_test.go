//go:build integration

package deploy_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// commandPlaceholder matches what the deploy kit fills in later: ${NAME} in the CLI path's files, {Name}
// in the evaluated template.
var commandPlaceholder = regexp.MustCompile(`\$\{([A-Z_]+)\}|\{([A-Za-z]+)\}`)

// placeholderValues are values of the kind each commandPlaceholder stands for; any other becomes "x".
var placeholderValues = map[string]string{
	"AWS_REGION":       region,
	"EVENTS_QUEUE_URL": "https://sqs." + region + ".amazonaws.com/123456789012/ecs-sd-events",
	"EventsQueue":      "https://sqs." + region + ".amazonaws.com/123456789012/ecs-sd-events",
	"Cluster":          "ecs-sd",
	"AWS::Region":      region,
}

func fill(s string) string {
	return commandPlaceholder.ReplaceAllStringFunc(s, func(m string) string {
		sub := commandPlaceholder.FindStringSubmatch(m)
		if v, ok := placeholderValues[sub[1]+sub[2]]; ok {
			return v
		}
		return "x"
	})
}

// TestEcsSdCommandIsAccepted runs the real ecs-sd binary with the command and environment that
// the deploy kit gives its container (the CLI path's task definition, and the stack's with and
// without event mode and the ECS source), plus --once against a closed AWS endpoint: it must get
// past its configuration (exit 1, discovery failed) and never refuse it (exit 2). A flag the kit
// passes that ecs-sd does not know, or a value it refuses, fails here.
func TestEcsSdCommandIsAccepted(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildBinary(t, "./cmd/ecs-sd")

	type container struct {
		name    string
		command []string
		env     map[string]string
	}
	var containers []container

	var td struct {
		ContainerDefinitions []struct {
			Name        string
			Command     []string
			Environment []struct{ Name, Value string }
		}
	}
	data, err := os.ReadFile("task-definitions/prometheus.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &td); err != nil {
		t.Fatal(err)
	}
	for _, c := range td.ContainerDefinitions {
		if c.Name != "ecs-sd" {
			continue
		}
		env := map[string]string{}
		for _, e := range c.Environment {
			env[e.Name] = e.Value
		}
		containers = append(containers, container{"task-definitions/prometheus.json", c.Command, env})
	}

	c := loadTemplate(t)
	for name, values := range map[string]map[string]string{
		"stack, defaults":                        nil,
		"stack, event mode off":                  {"EventMode": "Disabled"},
		"stack, ECS source":                      {"EcsApiDiscovery": "Enabled"},
		"stack, ECS source and event mode off":   {"EcsApiDiscovery": "Enabled", "EventMode": "Disabled"},
		"stack, parameter names with stack name": {"PrefixParameterNamesWithStackName": "true"},
		"stack, member accounts": {"MemberAccountRoleArns": "arn:aws:iam::111111111111:role/ecs-sd-reader,arn:aws:iam::333333333333:role/ecs-sd-reader",
			"MemberAccountExternalId": "my-external-id"},
	} {
		command, env := stackEcsSd(t, newStack(t, c, "ecs-sd", values))
		containers = append(containers, container{name, command, env})
	}
	if len(containers) != 7 {
		t.Fatalf("found %d ecs-sd containers, want 7 (1 task definition, 6 stacks)", len(containers))
	}

	for _, ct := range containers {
		t.Run(ct.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := make([]string, 0, len(ct.command)+5)
			for _, a := range ct.command {
				args = append(args, fill(a))
			}
			args = append(args, "--once", "--output.dir", dir, "--aws.attempt-timeout=200ms", "--aws.call-timeout=500ms")
			cmd := exec.CommandContext(t.Context(), bin, args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
				"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_ENDPOINT_URL=http://127.0.0.1:1"}
			for k, v := range ct.env {
				if k != "CONFIG_FILE_DIR" { // the container's /etc/config: here the temporary directory
					cmd.Env = append(cmd.Env, k+"="+fill(v))
				}
			}
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || strings.Contains(string(out), "invalid configuration") {
				t.Fatalf("ecs-sd %s: %v, want exit 1 (AWS unreachable), not a refused configuration:\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}
