package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	templatePath = "cloudformation/ecs-sd.yaml"
	// readerTemplatePath is the cross-account reader role of each member account.
	readerTemplatePath = "cloudformation/ecs-sd-reader-role.yaml"
	scriptsDir         = "scripts"
	region             = "us-east-1"
	workspaceID        = "ws-0123abcd-4567-89ef-0123-456789abcdef"
)

// requireTool returns the path of a tool the deployment kit is checked with, failing the test
// with a clear message (never skipping it) when the tool is missing.
func requireTool(t *testing.T, name, hint string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (%s); the deploy tests need it: %v", name, hint, err)
	}
	return path
}

// run runs a command and returns its stdout, stderr and error (an *exec.ExitError on a non-zero
// exit).
func run(t *testing.T, env []string, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// mustRun runs a command and fails the test when it does not exit 0.
func mustRun(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	stdout, stderr, err := run(t, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

// scriptInputs are the variables the scripts read; the tests start from an environment without
// them so that a developer's shell cannot change what is tested.
var scriptInputs = regexp.MustCompile(`^(VPC_ID|SUBNET_IDS|CREATE_VPC|NAMESPACE_NAME|WORKSPACE_.*|` +
	`DISCOVERY_NAMESPACES.*|PROMETHEUS_.*|CLOUDMAP_.*|ROLE_NAME_PREFIX|AWS_ACCOUNT_ID|ECS_SD_.*|` +
	`WEBAPP_.*|NODE_EXPORTER_.*|LOG_RETENTION_DAYS|EXECUTION_ROLE_ARN|CLUSTER_NAME|LAUNCH_TYPE|` +
	`CONTAINER_INSTANCE_SECURITY_GROUP_ID|EVENTS_.*|AWS_REGION|AWS_DEFAULT_REGION|AWS_ENDPOINT_URL.*)$`)

// baseEnv returns base (os.Environ() when nil) without the scripts' inputs, plus extra
// (NAME=value entries).
func baseEnv(base []string, extra ...string) []string {
	if base == nil {
		base = os.Environ()
	}
	env := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if !scriptInputs.MatchString(name) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// render renders a template with the scripts' own render function (deploy/scripts/lib.sh).
func render(t *testing.T, template string, vars map[string]string) string {
	t.Helper()
	requireTool(t, "bash", "the scripts are bash")
	env := baseEnv(nil, "AWS_REGION="+region)
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return mustRun(t, env, "bash", "-c", `source scripts/lib.sh && render "$1"`, "render", template)
}

// writeFile writes data to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// --- CloudFormation -------------------------------------------------------------------------------

// cfnPrometheusConfig returns the Prometheus configuration of the template's SSM parameter with
// its Fn::Sub variables set as a stack in us-east-1 with workspace workspaceID would.
func cfnPrometheusConfig(t *testing.T, c cfn) string {
	t.Helper()
	value := c.resource(t, "PrometheusConfigParameter")["Value"]
	sub, ok := value.(map[string]any)["Fn::Sub"].(string)
	if !ok {
		t.Fatalf("PrometheusConfigParameter Value is not !Sub of a string: %#v", value)
	}
	vars := map[string]string{
		"AWS::Region":           region,
		"AWS::URLSuffix":        "amazonaws.com",
		"Workspace.WorkspaceId": workspaceID,
	}
	out := regexp.MustCompile(`\$\{([^}!]+)\}`).ReplaceAllStringFunc(sub, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := vars[name]
		if !ok {
			t.Errorf("PrometheusConfigParameter uses ${%s}, unknown to this test", name)
		}
		return v
	})
	return out
}

func TestCloudFormationPrometheusConfigIsTheFileSDTemplate(t *testing.T) {
	t.Parallel()
	fromTemplate := cfnPrometheusConfig(t, loadTemplate(t))
	fromFile := render(t, "prometheus/prometheus-file-sd.yml",
		map[string]string{"AWS_REGION": region, "WORKSPACE_ID": workspaceID})
	var a, b any
	if err := yaml.Unmarshal([]byte(fromTemplate), &a); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(fromFile), &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("the template's Prometheus configuration differs from prometheus/prometheus-file-sd.yml:\ntemplate:\n%s\nfile:\n%s",
			fromTemplate, fromFile)
	}
}

// --- Task definitions --------------------------------------------------------------------------------

// lowerKeys turns CloudFormation property names (ContainerPort) into the API's (containerPort).
// The keys of docker labels and log driver options are data, kept as they are.
func lowerKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if k == "DockerLabels" || k == "Options" {
				out[strings.ToLower(k[:1])+k[1:]] = val
				continue
			}
			if !strings.HasPrefix(k, "Fn::") && k != "Ref" {
				k = strings.ToLower(k[:1]) + k[1:]
			}
			out[k] = lowerKeys(val)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = lowerKeys(val)
		}
		return out
	}
	return v
}

// normalize makes a value comparable across YAML and JSON: numbers as float64, and every
// placeholder (${NAME} of a template, ${Param} of Fn::Sub) as ${}. Intrinsic functions other than
// Fn::Sub of a string become "<intrinsic>".
// evaluatedPlaceholders writes the references an evaluated stack leaves ({Name}) as the
// placeholders of the JSON files (${NAME}), which normalize compares alike.
func evaluatedPlaceholders(values []string) []any {
	ref := regexp.MustCompile(`\{[A-Za-z0-9.:]+\}`)
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = ref.ReplaceAllString(v, "$${}")
	}
	return out
}

func normalize(v any) any {
	placeholder := regexp.MustCompile(`\$\{[^}]+\}`)
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			if s, ok := x["Fn::Sub"].(string); ok && len(x) == 1 {
				return placeholder.ReplaceAllString(s, "${}")
			}
			for k := range x {
				if strings.HasPrefix(k, "Fn::") || k == "Ref" {
					return "<intrinsic>"
				}
			}
			out := make(map[string]any, len(x))
			for k, val := range x {
				out[k] = walk(val)
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, val := range x {
				out[i] = walk(val)
			}
			return out
		case string:
			return placeholder.ReplaceAllString(x, "${}")
		case int:
			return float64(x)
		}
		return v
	}
	return walk(v)
}

// TestCloudFormationTaskDefinitionsMatchJSON keeps the template's task definitions and the CLI
// path's JSON ones in step: same containers, commands, ports, volumes and start order.
func TestCloudFormationTaskDefinitionsMatchJSON(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	// The JSON task definitions are those of a stack with the default parameters.
	s := newStack(t, c, "ecs-sd", nil)
	for resource, file := range map[string]string{
		"PrometheusTaskDefinition":   "task-definitions/prometheus.json",
		"WebAppTaskDefinition":       "task-definitions/webapp.json",
		"NodeExporterTaskDefinition": "task-definitions/node-exporter.json",
	} {
		t.Run(resource, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var fromJSON map[string]any
			if err := json.Unmarshal(data, &fromJSON); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			fromCFN := lowerKeys(s.conditional(c.resource(t, resource))).(map[string]any)
			for _, key := range []string{"family", "networkMode", "pidMode", "requiresCompatibilities", "volumes"} {
				if a, b := normalize(fromCFN[key]), normalize(fromJSON[key]); !reflect.DeepEqual(a, b) {
					t.Errorf("%s: template %v, %s %v", key, a, file, b)
				}
			}
			cfnContainers := fromCFN["containerDefinitions"].([]any)
			jsonContainers := fromJSON["containerDefinitions"].([]any)
			if len(cfnContainers) != len(jsonContainers) {
				t.Fatalf("template has %d containers, %s %d", len(cfnContainers), file, len(jsonContainers))
			}
			for i := range cfnContainers {
				a, b := cfnContainers[i].(map[string]any), jsonContainers[i].(map[string]any)
				if _, intrinsic := a["command"].(map[string]any); intrinsic {
					// Built by functions (the ecs-sd command): compared as the stack evaluates
					// it, its references ({EventsQueue}) as placeholders.
					evaluated := s.resource(resource)["ContainerDefinitions"].([]any)[i].(map[string]any)["Command"]
					a["command"] = evaluatedPlaceholders(strs(evaluated))
				}
				for _, key := range []string{"name", "essential", "user", "entryPoint", "command",
					"portMappings", "mountPoints", "dependsOn", "dockerLabels"} {
					if x, y := normalize(a[key]), normalize(b[key]); !reflect.DeepEqual(x, y) {
						t.Errorf("container %v %s: template %#v, %s %#v", b["name"], key, x, file, y)
					}
				}
				envNames := func(c map[string]any) []string {
					var names []string
					for _, e := range asSlice(c["environment"]) {
						names = append(names, e.(map[string]any)["name"].(string))
					}
					sort.Strings(names)
					return names
				}
				if x, y := envNames(a), envNames(b); !slices.Equal(x, y) {
					t.Errorf("container %v environment: template %v, %s %v", b["name"], x, file, y)
				}
			}
		})
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// --- IAM ---------------------------------------------------------------------------------------------

// prometheusTaskActions is what ecs-sd and Prometheus call, and all the task role may allow.
var prometheusTaskActions = []string{
	"aps:RemoteWrite",
	"servicediscovery:DiscoverInstances",
	"servicediscovery:GetInstancesHealthStatus",
	"servicediscovery:GetService",
	"servicediscovery:ListInstances",
	"servicediscovery:ListNamespaces",
	"servicediscovery:ListServices",
	"servicediscovery:ListTagsForResource",
	"ssm:GetParameter",
}

// eventsConsumerActions are what ecs-sd calls on its event queue (event mode), which the task role
// allows on that queue only. DeleteMessageBatch is authorised by sqs:DeleteMessage.
var eventsConsumerActions = []string{"sqs:DeleteMessage", "sqs:ReceiveMessage"}

// wildcardResourceActions may have Resource "*": the Service Authorization Reference lists no
// resource type for them.
var wildcardResourceActions = []string{
	"ec2:DescribeInstances",
	"ecr:GetAuthorizationToken",
	"ecs:DescribeTaskDefinition",
	"ecs:ListClusters",
	"servicediscovery:ListNamespaces",
	"servicediscovery:ListServices",
	"servicediscovery:ListTagsForResource",
}

// clusterConditionActions may have Resource "*" when the statement limits them to clusters with
// the ecs:cluster condition key (ListTasks names no resource of its own).
var clusterConditionActions = []string{
	"ecs:DescribeContainerInstances", "ecs:DescribeServices", "ecs:DescribeTasks", "ecs:ListTasks",
}

// hasClusterCondition tells whether a statement's Condition limits it with ecs:cluster.
func hasClusterCondition(st map[string]any) bool {
	cond, _ := st["Condition"].(map[string]any)
	for _, op := range []string{"ArnEquals", "ArnLike"} {
		if keys, ok := cond[op].(map[string]any); ok && keys["ecs:cluster"] != nil {
			return true
		}
	}
	return false
}

// namespaceARN and serviceARN match Cloud Map namespace and service ARNs, and the template's
// placeholders for them.
var (
	namespaceARN = regexp.MustCompile(`(?i)(:namespace/|\{namespace\.arn\})`)
	serviceARN   = regexp.MustCompile(`(?i)(:service/|service\.arn\})`)
)

// checkPolicy checks a policy document (statements as plain values) against the least-privilege
// rules: only the wanted actions, no action wildcards, Resource "*" only where nothing narrower
// exists, and DiscoverInstances on the namespace and its services, with no condition on the
// namespace name (whose value is the namespace's HTTP name, not always its name).
func checkPolicy(t *testing.T, where string, statements []any, wantActions []string) {
	t.Helper()
	var actions []string
	for _, s := range statements {
		st := s.(map[string]any)
		if st["Effect"] != "Allow" {
			t.Errorf("%s: statement %v is not an Allow", where, st["Sid"])
		}
		stActions := strs(st["Action"])
		for _, a := range stActions {
			if strings.Contains(a, "*") {
				t.Errorf("%s: statement %v allows the wildcard action %s", where, st["Sid"], a)
			}
		}
		actions = append(actions, stActions...)
		resources := strs(st["Resource"])
		if slices.Contains(resources, "*") {
			for _, a := range stActions {
				if !slices.Contains(wildcardResourceActions, a) &&
					(!slices.Contains(clusterConditionActions, a) || !hasClusterCondition(st)) {
					t.Errorf("%s: %s has Resource \"*\" but supports resource-level permissions", where, a)
				}
			}
		}
		if slices.Contains(stActions, "servicediscovery:DiscoverInstances") {
			if st["Condition"] != nil {
				t.Errorf("%s: DiscoverInstances has the condition %v; the namespace and service ARNs scope it", where, st["Condition"])
			}
			namespace := slices.ContainsFunc(resources, namespaceARN.MatchString)
			service := slices.ContainsFunc(resources, serviceARN.MatchString)
			if !namespace || !service {
				t.Errorf("%s: DiscoverInstances on %v, want the namespace's and the services' ARNs (both resource types are required)", where, resources)
			}
		}
	}
	sort.Strings(actions)
	if !slices.Equal(actions, wantActions) {
		t.Errorf("%s allows %v, want exactly %v", where, actions, wantActions)
	}
}

// executionActions are what the ECS agent does with the execution role.
var (
	ecrPullActions = []string{"ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetAuthorizationToken",
		"ecr:GetDownloadUrlForLayer"}
	logActions       = []string{"logs:CreateLogStream", "logs:PutLogEvents"}
	executionActions = slices.Sorted(slices.Values(append(slices.Clone(ecrPullActions), logActions...)))
)

// policyVars fill every placeholder of deploy/iam/*.json.
var policyVars = map[string]string{
	"DISCOVERY_NAMESPACES_PARAMETER_ARN": "arn:aws:ssm:us-east-1:123456789012:parameter/a",
	"PROMETHEUS_CONFIG_PARAMETER_ARN":    "arn:aws:ssm:us-east-1:123456789012:parameter/b",
	"CLOUDMAP_SERVICE_ARNS_JSON":         `"arn:aws:servicediscovery:us-east-1:123456789012:service/srv-1"`,
	"CLOUDMAP_NAMESPACE_ARN":             "arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-1",
	"ECR_REPOSITORY_ARNS_JSON":           `"arn:aws:ecr:us-east-1:123456789012:repository/ecs-sd"`,
	"ECS_CLUSTER_ARNS_JSON":              `"arn:aws:ecs:us-east-1:123456789012:cluster/prod"`,
	"WORKSPACE_ARN":                      "arn:aws:aps:us-east-1:123456789012:workspace/" + workspaceID,
	"EVENTS_QUEUE_ARN":                   "arn:aws:sqs:us-east-1:123456789012:ecs-sd-events",
	"EVENTS_ECS_RULE_ARN":                "arn:aws:events:us-east-1:123456789012:rule/ecs-sd-ecs-task-state-change",
	"EVENTS_CLOUDMAP_RULE_ARN":           "arn:aws:events:us-east-1:123456789012:rule/ecs-sd-cloud-map-instance-change",
	"AWS_PARTITION":                      "aws",
	"AWS_ACCOUNT_ID":                     "123456789012",
	"PROMETHEUS_LOG_GROUP":               "/p",
	"WEBAPP_LOG_GROUP":                   "/w",
	"NODE_EXPORTER_LOG_GROUP":            "/n",
}

func TestTaskRolePoliciesAreLeastPrivilege(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	policy := func(s *stack, role string) []any {
		var out []any
		for _, sts := range statements(t, s, role) {
			for _, st := range sts {
				out = append(out, st)
			}
		}
		return out
	}
	s := newStack(t, c, "ecs-sd", nil)
	checkPolicy(t, "template PrometheusTaskRole", policy(s, "PrometheusTaskRole"),
		slices.Sorted(slices.Values(append(slices.Clone(prometheusTaskActions), eventsConsumerActions...))))
	checkPolicy(t, "template TaskExecutionRole", policy(s, "TaskExecutionRole"), executionActions)
	checkPolicy(t, "template PrometheusTaskRole without event mode",
		policy(newStack(t, c, "ecs-sd", map[string]string{"EventMode": "Disabled"}), "PrometheusTaskRole"), prometheusTaskActions)
	s = newStack(t, c, "ecs-sd", map[string]string{"AdditionalScrapedServiceArns": "arn:aws:servicediscovery:us-east-1:123456789012:service/srv-extra1,arn:aws:servicediscovery:us-east-1:123456789012:service/srv-extra2"})
	for _, st := range policy(s, "PrometheusTaskRole") {
		st := st.(map[string]any)
		if slices.Contains(strs(st["Action"]), "servicediscovery:GetService") &&
			!slices.Equal(strs(st["Resource"]), []string{"{WebAppDiscoveryService.Arn}", "{NodeExporterDiscoveryService.Arn}",
				"arn:aws:servicediscovery:us-east-1:123456789012:service/srv-extra1", "arn:aws:servicediscovery:us-east-1:123456789012:service/srv-extra2"}) {
			t.Errorf("with AdditionalScrapedServiceArns, GetService is on %v", st["Resource"])
		}
	}

	for file, want := range map[string][]string{
		"iam/prometheus-task-policy.json": prometheusTaskActions,
		"iam/task-execution-policy.json":  logActions,
		"iam/ecr-pull-policy.json":        ecrPullActions,
		"iam/ecs-source-policy.json":      slices.Sorted(slices.Values(append(slices.Clone(ecsSourceActions), "ecs:ListClusters"))),
		"iam/events-consumer-policy.json": eventsConsumerActions,
	} {
		var doc struct {
			Statement []any `json:"Statement"`
		}
		rendered := render(t, file, policyVars)
		if err := json.Unmarshal([]byte(rendered), &doc); err != nil {
			t.Fatalf("rendered %s is not JSON: %v\n%s", file, err, rendered)
		}
		checkPolicy(t, file, doc.Statement, want)
	}
}

// --- Script failures and the render function -------------------------------------------------------------

func TestScriptsFailClearly(t *testing.T) {
	t.Parallel()
	requireTool(t, "bash", "the scripts are bash")
	for _, tc := range []struct {
		name, script string
		env          []string
		wantStderr   string
	}{
		{"no region", "01-cloudmap.sh", nil, "AWS_REGION"},
		{"no images", "05-task-definitions.sh", []string{"AWS_REGION=" + region},
			"missing required environment variable(s): ECS_SD_IMAGE WEBAPP_IMAGE EXECUTION_ROLE_ARN PROMETHEUS_TASK_ROLE_ARN"},
		{"no event queue for the task definitions", "05-task-definitions.sh", []string{"AWS_REGION=" + region, "ECS_SD_IMAGE=a",
			"WEBAPP_IMAGE=b", "EXECUTION_ROLE_ARN=c", "PROMETHEUS_TASK_ROLE_ARN=d"},
			"task-definitions/prometheus.json needs environment variable(s): EVENTS_QUEUE_URL"},
		{"no region for the events", "03-events.sh", nil, "AWS_REGION"},
		{"bad cluster ARN for the events", "03-events.sh", []string{"AWS_REGION=" + region, "AWS_ACCOUNT_ID=123456789012",
			"EVENTS_CLUSTER_ARNS=arn:aws:ecs:us-east-1:123456789012:cluster/ok,prod"},
			"EVENTS_CLUSTER_ARNS: not an ECS cluster ARN: prod"},
		{"no namespace ARN", "04-iam-roles.sh", []string{"AWS_REGION=" + region, "WORKSPACE_ARN=x"}, "CLOUDMAP_NAMESPACE_ARN"},
		{"bad launch type", "06-services.sh", []string{"AWS_REGION=" + region, "LAUNCH_TYPE=LAMBDA",
			"CLOUDMAP_WEBAPP_SERVICE_ARN=a", "CLOUDMAP_NODE_EXPORTER_SERVICE_ARN=b", "PROMETHEUS_TASK_DEFINITION_ARN=c",
			"WEBAPP_TASK_DEFINITION_ARN=d", "NODE_EXPORTER_TASK_DEFINITION_ARN=e"}, "LAUNCH_TYPE must be EC2 or FARGATE"},
		{"no subnets", "06-services.sh", []string{"AWS_REGION=" + region, "VPC_ID=vpc-1",
			"CLOUDMAP_WEBAPP_SERVICE_ARN=a", "CLOUDMAP_NODE_EXPORTER_SERVICE_ARN=b", "PROMETHEUS_TASK_DEFINITION_ARN=c",
			"WEBAPP_TASK_DEFINITION_ARN=d", "NODE_EXPORTER_TASK_DEFINITION_ARN=e"},
			"SUBNET_IDS: name the private subnets of the tasks (comma-separated), each with a route out through a NAT gateway or VPC endpoints"},
		{"no images for the roles", "04-iam-roles.sh", []string{"AWS_REGION=" + region, "CLOUDMAP_NAMESPACE_ARN=a", "CLOUDMAP_SERVICE_ARNS=b",
			"DISCOVERY_NAMESPACES_PARAMETER_ARN=c", "PROMETHEUS_CONFIG_PARAMETER_ARN=d", "WORKSPACE_ARN=e"},
			"missing required environment variable(s): ECS_SD_IMAGE WEBAPP_IMAGE"},
		{"bad event queue ARN for the roles", "04-iam-roles.sh", []string{"AWS_REGION=" + region, "CLOUDMAP_NAMESPACE_ARN=a",
			"CLOUDMAP_SERVICE_ARNS=b", "DISCOVERY_NAMESPACES_PARAMETER_ARN=c", "PROMETHEUS_CONFIG_PARAMETER_ARN=d", "WORKSPACE_ARN=e",
			"ECS_SD_IMAGE=f", "WEBAPP_IMAGE=g", "EVENTS_QUEUE_ARN=https://sqs.us-east-1.amazonaws.com/123456789012/ecs-sd-events"},
			"EVENTS_QUEUE_ARN: not an SQS queue ARN: https://sqs.us-east-1.amazonaws.com/123456789012/ecs-sd-events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := run(t, baseEnv(nil, tc.env...), "bash", filepath.Join(scriptsDir, tc.script))
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("%s exited with %v, want 1\nstdout:\n%s\nstderr:\n%s", tc.script, err, stdout, stderr)
			}
			if !strings.Contains(stderr, tc.wantStderr) || stdout != "" {
				t.Errorf("%s: stderr %q, want it to say %q; stdout %q, want none", tc.script, stderr, tc.wantStderr, stdout)
			}
		})
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	template := writeFile(t, dir, "template", "url: ${URL}/x\nregex: (.*)\nreplacement: $1 ${1} $$ ${ not}\nname: ${NAME}\n\n")
	got := render(t, template, map[string]string{"URL": "https://h/p?a=1&b='2'", "NAME": "a\\b"})
	want := "url: https://h/p?a=1&b='2'/x\nregex: (.*)\nreplacement: $1 ${1} $$ ${ not}\nname: a\\b\n\n"
	if got != want {
		t.Errorf("render = %q, want %q", got, want)
	}

	env := baseEnv(nil, "AWS_REGION="+region, "URL=x")
	stdout, stderr, err := run(t, env, "bash", "-c", `source scripts/lib.sh && render "$1"`, "render", template)
	if err == nil || !strings.Contains(stderr, "needs environment variable(s): NAME") {
		t.Errorf("render without NAME: err %v, stdout %q, stderr %q; want a failure naming NAME", err, stdout, stderr)
	}
}
