//go:build integration

package deploy_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
	"github.com/ecs-sd/ecs-sd/internal/httpsd"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// motoEnv is the environment of a script talking to moto at endpoint (moto itself or a proxy in
// front of it): the harness's AWS variables (region, test credentials) and vars.
func motoEnv(m *testenv.Moto, endpoint string, vars map[string]string) []string {
	env := baseEnv(m.Env())
	env = append(env, "AWS_REGION="+region, "AWS_ENDPOINT_URL="+endpoint)
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// --- CloudFormation -------------------------------------------------------------------------------

func TestCloudFormationTemplatePassesCfnLint(t *testing.T) {
	t.Parallel()
	cfnLint := requireTool(t, "cfn-lint", "make deps installs it from scripts/requirements.txt")
	// Informational checks too: the template must be clean of every finding; warnings that
	// cannot be fixed are ignored in the template, next to a comment saying why.
	for _, path := range []string{templatePath, readerTemplatePath} {
		stdout, stderr, err := run(t, nil, cfnLint, "--include-checks", "I", "--", path)
		if err != nil {
			t.Errorf("cfn-lint %s found problems (%v):\n%s%s", path, err, stdout, stderr)
		}
	}
}

func TestCloudFormationPrometheusConfigPassesPromtool(t *testing.T) {
	t.Parallel()
	promtool := requireTool(t, "promtool", "apt-get install prometheus")
	fromTemplate := cfnPrometheusConfig(t, loadTemplate(t))
	path := writeFile(t, t.TempDir(), "prometheus.yml", fromTemplate)
	if stdout, stderr, err := run(t, nil, promtool, "check", "config", path); err != nil {
		t.Fatalf("promtool check config on the template's configuration: %v\n%s%s\n%s", err, stdout, stderr, fromTemplate)
	}
}

// --- Prometheus configurations ---------------------------------------------------------------------

func TestPrometheusConfigsPassPromtool(t *testing.T) {
	t.Parallel()
	promtool := requireTool(t, "promtool", "apt-get install prometheus")
	files, err := filepath.Glob("prometheus/*.yml")
	// The alerting rules and their tests are no configurations (TestAlertsPassPromtool).
	files = slices.DeleteFunc(files, func(f string) bool { return f == alertsPath || f == alertsTestPath })
	if err != nil || len(files) < 3 {
		t.Fatalf("expected the file_sd, http_sd and agent shard configurations in prometheus/, found %v (%v)", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			rendered := render(t, file, map[string]string{"AWS_REGION": region, "WORKSPACE_ID": workspaceID,
				"SHARD": "1", "SHARDS": "3", "ECS_SD_ADDRESS": "ecs-sd.ecs-services:9001"}) // the last three: the agent shard's
			if strings.Contains(rendered, "${") {
				t.Fatalf("rendered %s still has a placeholder:\n%s", file, rendered)
			}
			path := writeFile(t, t.TempDir(), "prometheus.yml", rendered)
			if stdout, stderr, err := run(t, nil, promtool, "check", "config", path); err != nil {
				t.Fatalf("promtool check config %s: %v\n%s%s", file, err, stdout, stderr)
			}
			var cfg struct {
				Global struct {
					ScrapeInterval     string `yaml:"scrape_interval"`
					EvaluationInterval string `yaml:"evaluation_interval"`
					ScrapeTimeout      string `yaml:"scrape_timeout"`
				} `yaml:"global"`
				ScrapeConfigs []struct {
					JobName string `yaml:"job_name"`
				} `yaml:"scrape_configs"`
				RemoteWrite []struct {
					URL   string `yaml:"url"`
					SigV4 struct {
						Region string `yaml:"region"`
					} `yaml:"sigv4"`
				} `yaml:"remote_write"`
			}
			if err := yaml.Unmarshal([]byte(rendered), &cfg); err != nil {
				t.Fatal(err)
			}
			if g := cfg.Global; g.ScrapeInterval != "30s" || g.EvaluationInterval != "1m" || g.ScrapeTimeout != "10s" {
				t.Errorf("global settings %+v, want the seed's 30s / 1m / 10s", g)
			}
			wantURL := "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/" + workspaceID + "/api/v1/remote_write"
			if len(cfg.RemoteWrite) != 1 || cfg.RemoteWrite[0].URL != wantURL || cfg.RemoteWrite[0].SigV4.Region != region {
				t.Errorf("remote_write %+v, want one to %s signed with sigv4 in %s", cfg.RemoteWrite, wantURL, region)
			}
			var jobs []string
			for _, sc := range cfg.ScrapeConfigs {
				jobs = append(jobs, sc.JobName)
			}
			if want := []string{"ecs_services", "node_exporter", "ecs_sd"}; !slices.Equal(jobs, want) {
				t.Errorf("jobs %v, want %v", jobs, want)
			}
		})
	}
}

// sdTarget is one entry of `promtool check service-discovery` output.
type sdTarget struct {
	Discovered map[string]string `json:"discoveredLabels"`
	Labels     map[string]string `json:"labels"`
}

// TestPrometheusRelabeling runs the file_sd configuration's discovery and relabeling on a file as
// ecs-sd writes it: a healthy and an unhealthy web app task and a node exporter.
func TestPrometheusRelabeling(t *testing.T) {
	t.Parallel()
	promtool := requireTool(t, "promtool", "apt-get install prometheus")
	dir := t.TempDir()
	common := func(service, instance, health, az string) map[string]string {
		return map[string]string{
			"__metrics_path__": "/metrics", "cluster": "ecs-sd", "service": service, "taskdefinition": service,
			"__meta_cloudmap_namespace_id": "ns-1", "__meta_cloudmap_namespace_name": "ecs-services",
			"__meta_cloudmap_namespace_type": "DNS_PRIVATE", "__meta_cloudmap_service_id": "srv-" + service,
			"__meta_cloudmap_service_name": service, "__meta_cloudmap_instance_id": instance,
			"__meta_cloudmap_health_status":               health,
			"__meta_cloudmap_attribute_AVAILABILITY_ZONE": az,
			"__meta_cloudmap_attribute_EC2_INSTANCE_ID":   "i-" + instance,
			"__meta_cloudmap_service_tag_METRICS_PATH":    "/metrics",
		}
	}
	groups := []map[string]any{
		{"targets": []string{"10.0.1.5:3000"}, "labels": common("webapp", "task1", "HEALTHY", "us-east-1a")},
		{"targets": []string{"10.0.1.6:3000"}, "labels": common("webapp", "task2", "UNHEALTHY", "us-east-1b")},
		{"targets": []string{"10.0.2.7:9100"}, "labels": common("node-exporter", "task3", "HEALTHY", "us-east-1b")},
	}
	data, err := json.Marshal(groups)
	if err != nil {
		t.Fatal(err)
	}
	sdFile := writeFile(t, dir, "ecs-services.json", string(data))
	rendered := render(t, "prometheus/prometheus-file-sd.yml", map[string]string{"AWS_REGION": region, "WORKSPACE_ID": workspaceID})
	rendered = strings.ReplaceAll(rendered, "/etc/config/ecs-services.json", sdFile)
	config := writeFile(t, dir, "prometheus.yml", rendered)

	kept := func(job string) []map[string]string {
		stdout := mustRun(t, nil, promtool, "check", "service-discovery", "--timeout=5s", config, job)
		var targets []sdTarget
		if err := json.Unmarshal([]byte(stdout), &targets); err != nil {
			t.Fatalf("promtool check service-discovery %s output: %v\n%s", job, err, stdout)
		}
		var out []map[string]string
		for _, tg := range targets {
			if len(tg.Labels) > 0 {
				out = append(out, tg.Labels)
			}
		}
		return out
	}

	services := kept("ecs_services")
	if len(services) != 1 {
		t.Fatalf("ecs_services keeps %d targets, want only the healthy web app task: %v", len(services), services)
	}
	for k, want := range map[string]string{
		"instance": "10.0.1.5:3000", "az": "us-east-1a", "namespace": "ecs-services", "task_id": "task1",
		"cluster": "ecs-sd", "service": "webapp", "taskdefinition": "webapp", "__metrics_path__": "/metrics",
	} {
		if got := services[0][k]; got != want {
			t.Errorf("ecs_services target label %s = %q, want %q (labels %v)", k, got, want, services[0])
		}
	}

	nodes := kept("node_exporter")
	if len(nodes) != 1 {
		t.Fatalf("node_exporter keeps %d targets, want the node exporter only: %v", len(nodes), nodes)
	}
	for k, want := range map[string]string{
		"instance": "10.0.2.7:9100", "az": "us-east-1b", "ec2_instance_id": "i-task3", "service": "node-exporter",
	} {
		if got := nodes[0][k]; got != want {
			t.Errorf("node_exporter target label %s = %q, want %q (labels %v)", k, got, want, nodes[0])
		}
	}
}

// TestAgentShardTemplate runs the discovery and relabelling of the agent shard configuration,
// rendered for each shard of 3, against ecs-sd's http_sd handler serving a fixed list: each
// agent gets the targets of its shard only (those Prometheus's hashmod of the address puts
// there), node exporters in their own job, every target in exactly one agent, and ecs-sd's own
// metrics in exactly one agent.
func TestAgentShardTemplate(t *testing.T) {
	t.Parallel()
	promtool := requireTool(t, "promtool", "apt-get install prometheus")
	const shards = 3
	var groups []*targets.Group
	for i := range 30 {
		service := "webapp"
		if i%5 == 0 {
			service = "node-exporter"
		}
		groups = append(groups, &targets.Group{
			Targets: []string{fmt.Sprintf("10.0.%d.%d:3000", i/10, i)},
			Labels: model.LabelSet{"__meta_cloudmap_service_name": model.LabelValue(service), "service": model.LabelValue(service),
				"__meta_cloudmap_health_status": "HEALTHY", "__meta_cloudmap_attribute_AVAILABILITY_ZONE": "us-east-1a"},
		})
	}
	snap, err := targets.NewSnapshot(groups)
	if err != nil {
		t.Fatal(err)
	}
	h := httpsd.New(nil)
	if err := h.Update(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ecsSD := strings.TrimPrefix(srv.URL, "http://")

	var mu sync.Mutex
	seen := map[string]map[string]int{} // job -> instance -> shards that scrape it
	t.Run("shards", func(t *testing.T) {
		for shard := range shards {
			t.Run(fmt.Sprint(shard), func(t *testing.T) {
				t.Parallel()
				rendered := render(t, "prometheus/prometheus-agent-shard.yml", map[string]string{"AWS_REGION": region, "WORKSPACE_ID": workspaceID,
					"SHARD": fmt.Sprint(shard), "SHARDS": fmt.Sprint(shards), "ECS_SD_ADDRESS": ecsSD})
				config := writeFile(t, t.TempDir(), "prometheus.yml", rendered)
				for _, job := range []string{"ecs_services", "node_exporter", "ecs_sd"} {
					// promtool collects for the whole timeout; the handler answers at once.
					stdout := mustRun(t, nil, promtool, "check", "service-discovery", "--timeout=3s", config, job)
					var found []sdTarget
					if err := json.Unmarshal([]byte(stdout), &found); err != nil {
						t.Fatalf("promtool check service-discovery %s output: %v\n%s", job, err, stdout)
					}
					for _, tg := range found {
						if len(tg.Labels) == 0 {
							continue // dropped
						}
						instance := tg.Labels["instance"]
						if job != "ecs_sd" && targets.HashMod(instance, shards) != uint64(shard) {
							t.Errorf("job %s: %s is in shard %d", job, instance, targets.HashMod(instance, shards))
						}
						if job != "ecs_sd" && (job == "node_exporter") != (tg.Labels["service"] == "node-exporter") {
							t.Errorf("job %s: a target of service %q", job, tg.Labels["service"])
						}
						mu.Lock()
						if seen[job] == nil {
							seen[job] = map[string]int{}
						}
						seen[job][instance]++
						mu.Unlock()
					}
				}
			})
		}
	})
	all := map[string]int{}
	for _, job := range []string{"ecs_services", "node_exporter"} {
		for instance, n := range seen[job] {
			all[instance] += n
		}
	}
	if len(all) != len(groups) {
		t.Errorf("the agents scrape %d targets, want the %d of the list", len(all), len(groups))
	}
	for instance, n := range all {
		if n != 1 {
			t.Errorf("%s is scraped by %d agents", instance, n)
		}
	}
	if len(seen["ecs_sd"]) != 1 || seen["ecs_sd"][ecsSD] != 1 {
		t.Errorf("ecs-sd's own metrics scraped as %v, want by one agent", seen["ecs_sd"])
	}
}

// --- Task definitions --------------------------------------------------------------------------------

// taskDefinitionVars fills every placeholder of deploy/task-definitions/*.json.
var taskDefinitionVars = map[string]string{
	"AWS_REGION":                          region,
	"PROMETHEUS_TASK_ROLE_ARN":            "arn:aws:iam::123456789012:role/ecs-sd-prometheus-task",
	"EXECUTION_ROLE_ARN":                  "arn:aws:iam::123456789012:role/ecs-sd-task-execution",
	"PROMETHEUS_IMAGE":                    "quay.io/prometheus/prometheus:v3.5.0",
	"ECS_SD_IMAGE":                        "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecs-sd:test",
	"WEBAPP_IMAGE":                        "123456789012.dkr.ecr.us-east-1.amazonaws.com/webapp:test",
	"NODE_EXPORTER_IMAGE":                 "quay.io/prometheus/node-exporter:v1.9.1",
	"WEBAPP_LOAD_RPS":                     "5",
	"PROMETHEUS_LOG_GROUP":                "/ecs/ecs-sd/prometheus",
	"WEBAPP_LOG_GROUP":                    "/ecs/ecs-sd/webapp",
	"NODE_EXPORTER_LOG_GROUP":             "/ecs/ecs-sd/node-exporter",
	"DISCOVERY_NAMESPACES_PARAMETER_NAME": "ECS-ServiceDiscovery-Namespaces",
	"PROMETHEUS_CONFIG_PARAMETER_NAME":    "ECS-Prometheus-Configuration",
	"EVENTS_QUEUE_URL":                    "https://sqs.us-east-1.amazonaws.com/123456789012/ecs-sd-events",
}

type taskDefinition struct {
	Family               string          `json:"family"`
	NetworkMode          string          `json:"networkMode"`
	TaskRoleArn          string          `json:"taskRoleArn"`
	ExecutionRoleArn     string          `json:"executionRoleArn"`
	ContainerDefinitions []containerSpec `json:"containerDefinitions"`
}

type containerSpec struct {
	Name        string   `json:"name"`
	Image       string   `json:"image"`
	Memory      int      `json:"memory"`
	Essential   *bool    `json:"essential"`
	Command     []string `json:"command"`
	Environment []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"environment"`
}

func TestTaskDefinitionsRegisterOnMoto(t *testing.T) {
	t.Parallel()
	aws := requireTool(t, "aws", "the AWS CLI")
	m := testenv.StartMoto(t)
	files, err := filepath.Glob("task-definitions/*.json")
	if err != nil || len(files) != 3 {
		t.Fatalf("expected 3 task definitions, found %v (%v)", files, err)
	}
	dir := t.TempDir()
	for _, file := range files {
		rendered := render(t, file, taskDefinitionVars)
		if strings.Contains(rendered, "${") {
			t.Fatalf("rendered %s still has a placeholder:\n%s", file, rendered)
		}
		var td taskDefinition
		if err := json.Unmarshal([]byte(rendered), &td); err != nil {
			t.Fatalf("rendered %s is not JSON: %v\n%s", file, err, rendered)
		}
		for _, c := range td.ContainerDefinitions {
			if c.Memory <= 0 {
				t.Errorf("%s: container %s has no container-level memory", file, c.Name)
			}
		}
		path := writeFile(t, dir, filepath.Base(file), rendered)
		out := mustRun(t, motoEnv(m, m.URL, nil), aws, "ecs", "register-task-definition",
			"--region", region, "--endpoint-url", m.URL, "--cli-input-json", "file://"+path, "--output", "json")
		var registered struct {
			TaskDefinition taskDefinition `json:"taskDefinition"`
		}
		if err := json.Unmarshal([]byte(out), &registered); err != nil {
			t.Fatal(err)
		}
		got := registered.TaskDefinition
		if got.Family != td.Family || got.NetworkMode != td.NetworkMode || got.TaskRoleArn != td.TaskRoleArn ||
			len(got.ContainerDefinitions) != len(td.ContainerDefinitions) {
			t.Errorf("%s registered as %+v, want %+v", file, got, td)
		}
	}
}

// --- The CLI scripts, end to end on moto ---------------------------------------------------------------

var exportLine = regexp.MustCompile(`^export ([A-Za-z_][A-Za-z0-9_]*)='(.*)'$`)

// runStep runs a script against endpoint with vars and returns the variables it printed.
func runStep(t *testing.T, m *testenv.Moto, endpoint, script string, vars map[string]string) map[string]string {
	t.Helper()
	stdout, stderr, err := run(t, motoEnv(m, endpoint, vars), "bash", filepath.Join(scriptsDir, script))
	if err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s\nmoto log:\n%s", script, err, stdout, stderr, m.LogTail(20))
	}
	return parseExports(t, script, stdout)
}

func parseExports(t *testing.T, script, stdout string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimRight(stdout, "\n"), "\n") {
		match := exportLine.FindStringSubmatch(line)
		if match == nil {
			t.Fatalf("%s printed %q, not an export line", script, line)
		}
		out[match[1]] = strings.ReplaceAll(match[2], `'\''`, `'`)
	}
	return out
}

// awsJSON runs the AWS CLI against moto and decodes its JSON output into v.
func awsJSON(t *testing.T, m *testenv.Moto, v any, args ...string) {
	t.Helper()
	args = append([]string{"--region", region, "--endpoint-url", m.URL, "--output", "json"}, args...)
	out := mustRun(t, motoEnv(m, m.URL, nil), "aws", args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestScriptsEndToEndOnMoto(t *testing.T) {
	t.Parallel()
	requireTool(t, "aws", "the AWS CLI")
	requireTool(t, "bash", "the scripts are bash")
	promtool := requireTool(t, "promtool", "apt-get install prometheus")
	m := testenv.StartMoto(t)
	// The scripts go through a proxy that keeps the ECS CreateService and UpdateService and the
	// SSM PutParameter requests: moto keeps neither a service's deployment configuration nor
	// Parameter Store's tier rules, so the requests are where they can be checked.
	proxy := testenv.NewProxy(t, m.URL)
	var (
		mu       sync.Mutex
		requests = map[string][]map[string]any{}
	)
	proxy.SetResponseHook(func(op string, reqBody, respBody []byte) []byte {
		var req map[string]any
		if (op == "CreateService" || op == "UpdateService" || op == "PutParameter") && json.Unmarshal(reqBody, &req) == nil {
			mu.Lock()
			requests[op] = append(requests[op], req)
			mu.Unlock()
		}
		return respBody
	})
	recorded := func(op string) []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(requests[op])
	}

	vars := map[string]string{
		"CREATE_VPC":   "true",
		"ECS_SD_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecs-sd:test",
		"WEBAPP_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/webapp:test",
	}
	for _, step := range []string{"01-cloudmap.sh", "02-ssm-parameters.sh", "03-events.sh", "04-iam-roles.sh",
		"05-task-definitions.sh", "06-services.sh"} {
		maps.Copy(vars, runStep(t, m, proxy.URL, step, vars))
	}
	for _, name := range []string{"VPC_ID", "SUBNET_IDS", "CLOUDMAP_NAMESPACE_ID", "CLOUDMAP_NAMESPACE_ARN",
		"CLOUDMAP_WEBAPP_SERVICE_ARN", "CLOUDMAP_NODE_EXPORTER_SERVICE_ARN", "WORKSPACE_ID", "WORKSPACE_ARN",
		"DISCOVERY_NAMESPACES_PARAMETER_ARN", "PROMETHEUS_CONFIG_PARAMETER_ARN", "EXECUTION_ROLE_ARN",
		"PROMETHEUS_TASK_ROLE_ARN", "PROMETHEUS_TASK_DEFINITION_ARN", "WEBAPP_TASK_DEFINITION_ARN",
		"NODE_EXPORTER_TASK_DEFINITION_ARN", "CLUSTER_NAME", "WEBAPP_SERVICE_ARN", "NODE_EXPORTER_SERVICE_ARN",
		"PROMETHEUS_SERVICE_ARN", "PROMETHEUS_SECURITY_GROUP_ID", "WEBAPP_SECURITY_GROUP_ID", "EVENTS_QUEUE_URL", "EVENTS_QUEUE_ARN"} {
		if vars[name] == "" {
			t.Errorf("no step printed %s", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Run("network", func(t *testing.T) { checkNetwork(t, m, vars) })
	t.Run("namespace", func(t *testing.T) { checkNamespace(t, m, vars) })
	t.Run("cloud map services", func(t *testing.T) { checkCloudMapServices(t, m, vars) })
	t.Run("ssm parameters", func(t *testing.T) {
		checkParameters(t, m, vars, promtool)
		checkPutParameterRequests(t, recorded("PutParameter"))
	})
	t.Run("iam roles", func(t *testing.T) { checkRoles(t, m, vars) })
	t.Run("task definitions", func(t *testing.T) { checkTaskDefinitions(t, m, vars) })
	t.Run("ecs services", func(t *testing.T) { checkECSServices(t, m, vars) })
	t.Run("ecs service requests", func(t *testing.T) { checkServiceRequests(t, recorded("CreateService"), "serviceName") })
	t.Run("log groups", func(t *testing.T) { checkLogGroups(t, m) })

	// Running the whole path again with the same settings reuses everything and registers new
	// task definition revisions.
	again := map[string]string{}
	for k, v := range vars {
		if k != "CREATE_VPC" {
			again[k] = v
		}
	}
	second := runStep(t, m, proxy.URL, "deploy-all.sh", again)
	for _, name := range []string{"VPC_ID", "CLOUDMAP_NAMESPACE_ID", "CLOUDMAP_WEBAPP_SERVICE_ARN",
		"CLOUDMAP_NODE_EXPORTER_SERVICE_ARN", "WORKSPACE_ID", "PROMETHEUS_TASK_ROLE_ARN", "WEBAPP_SERVICE_ARN",
		"PROMETHEUS_SECURITY_GROUP_ID", "EVENTS_QUEUE_URL", "EVENTS_ECS_RULE_ARN"} {
		if second[name] != vars[name] {
			t.Errorf("second run: %s = %q, first run %q", name, second[name], vars[name])
		}
	}
	if got, want := second["PROMETHEUS_TASK_DEFINITION_ARN"], strings.TrimSuffix(vars["PROMETHEUS_TASK_DEFINITION_ARN"], ":1")+":2"; got != want {
		t.Errorf("second run registered %s, want %s", got, want)
	}
	// Existing services get the deployment configuration too; no parameter write asks for a tier
	// an Advanced parameter could refuse.
	checkServiceRequests(t, recorded("UpdateService"), "service")
	checkPutParameterRequests(t, recorded("PutParameter"))
	var namespaces struct{ Namespaces []struct{ Name string } }
	awsJSON(t, m, &namespaces, "servicediscovery", "list-namespaces")
	if len(namespaces.Namespaces) != 1 {
		t.Errorf("after two runs there are %d namespaces, want 1: %+v", len(namespaces.Namespaces), namespaces)
	}
	var services struct{ Services []struct{ Name string } }
	awsJSON(t, m, &services, "servicediscovery", "list-services")
	if len(services.Services) != 2 {
		t.Errorf("after two runs there are %d Cloud Map services, want 2: %+v", len(services.Services), services)
	}
	var ecsServices struct {
		Services []struct {
			ServiceName    string `json:"serviceName"`
			TaskDefinition string `json:"taskDefinition"`
		} `json:"services"`
	}
	awsJSON(t, m, &ecsServices, "ecs", "describe-services", "--cluster", vars["CLUSTER_NAME"],
		"--services", "webapp", "node-exporter", "prometheus")
	for _, s := range ecsServices.Services {
		if !strings.HasSuffix(s.TaskDefinition, ":2") {
			t.Errorf("after the second run ECS service %s runs %s, want revision 2", s.ServiceName, s.TaskDefinition)
		}
	}
}

func checkNamespace(t *testing.T, m *testenv.Moto, vars map[string]string) {
	var ns struct {
		Namespace struct {
			Name, Type, Arn string
		}
	}
	awsJSON(t, m, &ns, "servicediscovery", "get-namespace", "--id", vars["CLOUDMAP_NAMESPACE_ID"])
	if ns.Namespace.Name != "ecs-services" || ns.Namespace.Type != "DNS_PRIVATE" || ns.Namespace.Arn != vars["CLOUDMAP_NAMESPACE_ARN"] {
		t.Errorf("namespace %+v, want private DNS namespace ecs-services %s", ns.Namespace, vars["CLOUDMAP_NAMESPACE_ARN"])
	}
	var vpc struct {
		EnableDNSHostnames struct{ Value bool }
	}
	awsJSON(t, m, &vpc, "ec2", "describe-vpc-attribute", "--vpc-id", vars["VPC_ID"], "--attribute", "enableDnsHostnames")
	if !vpc.EnableDNSHostnames.Value {
		t.Errorf("VPC %s has DNS hostnames off", vars["VPC_ID"])
	}
}

func checkCloudMapServices(t *testing.T, m *testenv.Moto, vars map[string]string) {
	for _, tc := range []struct {
		arnVar, name, recordType, port string
	}{
		{"CLOUDMAP_WEBAPP_SERVICE_ARN", "webapp", "A", "3000"},
		{"CLOUDMAP_NODE_EXPORTER_SERVICE_ARN", "node-exporter", "SRV", "9100"},
	} {
		arn := vars[tc.arnVar]
		var svc struct {
			Service struct {
				Name, NamespaceID string
				DNSConfig         struct {
					DNSRecords []struct{ Type string }
				}
				HealthCheckCustomConfig *struct{ FailureThreshold int }
			}
		}
		awsJSON(t, m, &svc, "servicediscovery", "get-service", "--id", arn[strings.LastIndex(arn, "/")+1:])
		s := svc.Service
		if s.Name != tc.name || s.NamespaceID != vars["CLOUDMAP_NAMESPACE_ID"] {
			t.Errorf("Cloud Map service %s: name %q in %q, want %q in %q", arn, s.Name, s.NamespaceID, tc.name, vars["CLOUDMAP_NAMESPACE_ID"])
		}
		if len(s.DNSConfig.DNSRecords) != 1 || s.DNSConfig.DNSRecords[0].Type != tc.recordType {
			t.Errorf("Cloud Map service %s: DNS records %+v, want one %s", tc.name, s.DNSConfig.DNSRecords, tc.recordType)
		}
		if s.HealthCheckCustomConfig == nil {
			t.Errorf("Cloud Map service %s has no custom health check config (ECS reports task health there)", tc.name)
		}
		var tags struct{ Tags []struct{ Key, Value string } }
		awsJSON(t, m, &tags, "servicediscovery", "list-tags-for-resource", "--resource-arn", arn)
		got := map[string]string{}
		for _, tag := range tags.Tags {
			got[tag.Key] = tag.Value
		}
		if want := map[string]string{"METRICS_PATH": "/metrics", "METRICS_PORT": tc.port}; !maps.Equal(got, want) {
			t.Errorf("Cloud Map service %s tags %v, want %v", tc.name, got, want)
		}
	}
}

func checkParameters(t *testing.T, m *testenv.Moto, vars map[string]string, promtool string) {
	type parameter struct {
		Parameter struct{ Name, Type, Value, ARN string }
	}
	var namespaces, config parameter
	awsJSON(t, m, &namespaces, "ssm", "get-parameter", "--name", "ECS-ServiceDiscovery-Namespaces")
	if p := namespaces.Parameter; p.Type != "StringList" || p.Value != "ecs-services" || p.ARN != vars["DISCOVERY_NAMESPACES_PARAMETER_ARN"] {
		t.Errorf("namespaces parameter %+v, want StringList ecs-services", p)
	}
	awsJSON(t, m, &config, "ssm", "get-parameter", "--name", "ECS-Prometheus-Configuration")
	p := config.Parameter
	if p.Type != "String" || p.ARN != vars["PROMETHEUS_CONFIG_PARAMETER_ARN"] {
		t.Errorf("configuration parameter %s is %s, want String %s", p.ARN, p.Type, vars["PROMETHEUS_CONFIG_PARAMETER_ARN"])
	}
	if len(p.Value) > 4096 {
		t.Errorf("configuration parameter holds %d bytes, more than the standard tier's 4 KB", len(p.Value))
	}
	wantURL := "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/" + vars["WORKSPACE_ID"] + "/api/v1/remote_write"
	if !strings.Contains(p.Value, "url: "+wantURL) || strings.Contains(p.Value, "${") {
		t.Errorf("configuration parameter does not remote-write to %s:\n%s", wantURL, p.Value)
	}
	path := writeFile(t, t.TempDir(), "prometheus.yml", p.Value)
	if stdout, stderr, err := run(t, nil, promtool, "check", "config", path); err != nil {
		t.Errorf("promtool check config on the stored configuration: %v\n%s%s", err, stdout, stderr)
	}
}

func checkRoles(t *testing.T, m *testenv.Moto, vars map[string]string) {
	var doc struct {
		PolicyDocument struct {
			Statement []any
		}
	}
	awsJSON(t, m, &doc, "iam", "get-role-policy", "--role-name", "ecs-sd-prometheus-task",
		"--policy-name", "prometheus-task-policy")
	checkPolicy(t, "role ecs-sd-prometheus-task", doc.PolicyDocument.Statement, prometheusTaskActions)
	policy, err := json.Marshal(doc.PolicyDocument)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"CLOUDMAP_NAMESPACE_ARN", "CLOUDMAP_WEBAPP_SERVICE_ARN",
		"CLOUDMAP_NODE_EXPORTER_SERVICE_ARN", "WORKSPACE_ARN", "DISCOVERY_NAMESPACES_PARAMETER_ARN",
		"PROMETHEUS_CONFIG_PARAMETER_ARN"} {
		if !strings.Contains(string(policy), `"`+vars[name]+`"`) {
			t.Errorf("the Prometheus task policy does not name %s (%s):\n%s", name, vars[name], policy)
		}
	}
	awsJSON(t, m, &doc, "iam", "get-role-policy", "--role-name", "ecs-sd-prometheus-task",
		"--policy-name", "events-consumer-policy")
	checkPolicy(t, "role ecs-sd-prometheus-task events policy", doc.PolicyDocument.Statement, eventsConsumerActions)
	if len(doc.PolicyDocument.Statement) != 1 ||
		!slices.Equal(strs(doc.PolicyDocument.Statement[0].(map[string]any)["Resource"]), []string{vars["EVENTS_QUEUE_ARN"]}) {
		t.Errorf("the Prometheus task role's events policy %v, want the event queue %s only", doc.PolicyDocument.Statement, vars["EVENTS_QUEUE_ARN"])
	}
	var role struct {
		Role struct {
			Arn                      string
			AssumeRolePolicyDocument any
		}
	}
	awsJSON(t, m, &doc, "iam", "get-role-policy", "--role-name", "ecs-sd-task-execution",
		"--policy-name", "ecr-pull-policy")
	checkPolicy(t, "role ecs-sd-task-execution ECR policy", doc.PolicyDocument.Statement, ecrPullActions)
	if pulls, _ := json.Marshal(doc.PolicyDocument); !strings.Contains(string(pulls), `"arn:aws:ecr:us-east-1:123456789012:repository/ecs-sd","arn:aws:ecr:us-east-1:123456789012:repository/webapp"`) {
		t.Errorf("the execution role does not pull from exactly the ecs-sd and webapp repositories: %s", pulls)
	}
	awsJSON(t, m, &role, "iam", "get-role", "--role-name", "ecs-sd-task-execution")
	trust, err := json.Marshal(role.Role.AssumeRolePolicyDocument)
	if err != nil {
		t.Fatal(err)
	}
	if role.Role.Arn != vars["EXECUTION_ROLE_ARN"] || !strings.Contains(string(trust), "ecs-tasks.amazonaws.com") {
		t.Errorf("execution role %s trusts %s, want %s trusting ecs-tasks.amazonaws.com", role.Role.Arn, trust, vars["EXECUTION_ROLE_ARN"])
	}
}

func checkTaskDefinitions(t *testing.T, m *testenv.Moto, vars map[string]string) {
	for _, tc := range []struct {
		arnVar, network, taskRole string
		containers                []string
	}{
		{"PROMETHEUS_TASK_DEFINITION_ARN", "awsvpc", vars["PROMETHEUS_TASK_ROLE_ARN"], []string{"config-init", "ecs-sd", "prometheus"}},
		{"WEBAPP_TASK_DEFINITION_ARN", "awsvpc", "", []string{"webapp"}},
		{"NODE_EXPORTER_TASK_DEFINITION_ARN", "host", "", []string{"node-exporter"}},
	} {
		var out struct {
			TaskDefinition taskDefinition `json:"taskDefinition"`
		}
		awsJSON(t, m, &out, "ecs", "describe-task-definition", "--task-definition", vars[tc.arnVar])
		td := out.TaskDefinition
		var names []string
		for _, c := range td.ContainerDefinitions {
			names = append(names, c.Name)
			if c.Memory <= 0 {
				t.Errorf("%s container %s has no memory", td.Family, c.Name)
			}
		}
		if td.NetworkMode != tc.network || td.TaskRoleArn != tc.taskRole ||
			td.ExecutionRoleArn != vars["EXECUTION_ROLE_ARN"] || !slices.Equal(names, tc.containers) {
			t.Errorf("task definition %s: %+v, want network %s, task role %q, containers %v",
				vars[tc.arnVar], td, tc.network, tc.taskRole, tc.containers)
		}
		for _, c := range td.ContainerDefinitions {
			if c.Name != "ecs-sd" {
				continue
			}
			env := map[string]string{}
			for _, e := range c.Environment {
				env[e.Name] = e.Value
			}
			if c.Image != vars["ECS_SD_IMAGE"] || env["DISCOVERY_NAMESPACES_PARAMETER_NAME"] != "ECS-ServiceDiscovery-Namespaces" ||
				env["PROMETHEUS_CONFIG_PARAMETER_NAME"] != "ECS-Prometheus-Configuration" || env["CONFIG_FILE_DIR"] != "/etc/config" {
				t.Errorf("ecs-sd container: image %s, environment %v", c.Image, env)
			}
			want := []string{"--prometheus.reload-url=http://localhost:9090/-/reload", "--events.queue-url=" + vars["EVENTS_QUEUE_URL"],
				"--refresh.interval=5m"}
			if !slices.Equal(c.Command, want) {
				t.Errorf("ecs-sd command %v, want %v", c.Command, want)
			}
		}
	}
}

func checkECSServices(t *testing.T, m *testenv.Moto, vars map[string]string) {
	type registry struct {
		RegistryArn   string `json:"registryArn"`
		ContainerName string `json:"containerName"`
		ContainerPort int    `json:"containerPort"`
	}
	var out struct {
		Services []struct {
			ServiceName          string     `json:"serviceName"`
			SchedulingStrategy   string     `json:"schedulingStrategy"`
			LaunchType           string     `json:"launchType"`
			TaskDefinition       string     `json:"taskDefinition"`
			ServiceRegistries    []registry `json:"serviceRegistries"`
			NetworkConfiguration struct {
				AwsvpcConfiguration struct {
					Subnets        []string `json:"subnets"`
					SecurityGroups []string `json:"securityGroups"`
				} `json:"awsvpcConfiguration"`
			} `json:"networkConfiguration"`
		} `json:"services"`
	}
	awsJSON(t, m, &out, "ecs", "describe-services", "--cluster", vars["CLUSTER_NAME"],
		"--services", "webapp", "node-exporter", "prometheus")
	if len(out.Services) != 3 {
		t.Fatalf("found %d ECS services, want webapp, node-exporter and prometheus: %+v", len(out.Services), out.Services)
	}
	subnets := strings.Split(vars["SUBNET_IDS"], ",")
	for _, s := range out.Services {
		awsvpc := s.NetworkConfiguration.AwsvpcConfiguration
		switch s.ServiceName {
		case "webapp":
			want := []registry{{RegistryArn: vars["CLOUDMAP_WEBAPP_SERVICE_ARN"]}}
			if !reflect.DeepEqual(s.ServiceRegistries, want) || s.TaskDefinition != vars["WEBAPP_TASK_DEFINITION_ARN"] ||
				!slices.Equal(awsvpc.Subnets, subnets) || !slices.Equal(awsvpc.SecurityGroups, []string{vars["WEBAPP_SECURITY_GROUP_ID"]}) {
				t.Errorf("webapp service %+v, want registry %+v in subnets %v", s, want, subnets)
			}
		case "node-exporter":
			want := []registry{{RegistryArn: vars["CLOUDMAP_NODE_EXPORTER_SERVICE_ARN"], ContainerName: "node-exporter", ContainerPort: 9100}}
			if s.SchedulingStrategy != "DAEMON" || s.LaunchType != "EC2" || !reflect.DeepEqual(s.ServiceRegistries, want) {
				t.Errorf("node-exporter service %+v, want a DAEMON on EC2 with registry %+v", s, want)
			}
		case "prometheus":
			if len(s.ServiceRegistries) != 0 ||
				!slices.Equal(awsvpc.SecurityGroups, []string{vars["PROMETHEUS_SECURITY_GROUP_ID"]}) {
				t.Errorf("prometheus service %+v, want no registry, in its own security group", s)
			}
		default:
			t.Errorf("unexpected ECS service %s", s.ServiceName)
		}
	}

	var groups struct {
		SecurityGroups []struct {
			IPPermissions []struct {
				FromPort         int
				UserIDGroupPairs []struct{ GroupID string }
			}
		}
	}
	awsJSON(t, m, &groups, "ec2", "describe-security-groups", "--group-ids", vars["WEBAPP_SECURITY_GROUP_ID"])
	opened := false
	for _, g := range groups.SecurityGroups {
		for _, p := range g.IPPermissions {
			for _, pair := range p.UserIDGroupPairs {
				opened = opened || (p.FromPort == 3000 && pair.GroupID == vars["PROMETHEUS_SECURITY_GROUP_ID"])
			}
		}
	}
	if !opened {
		t.Errorf("web app security group is not open to Prometheus on 3000: %+v", groups)
	}
}

// checkServiceRequests checks what the scripts asked ECS for (CreateService or UpdateService
// requests, the service named by nameKey) beyond what moto keeps: the deployment configuration.
func checkServiceRequests(t *testing.T, requests []map[string]any, nameKey string) {
	breaker := map[string]any{"enable": true, "rollback": true}
	want := map[string]map[string]any{
		"prometheus": {"maximumPercent": float64(100), "minimumHealthyPercent": float64(0), "deploymentCircuitBreaker": breaker},
		"webapp":     {"deploymentCircuitBreaker": breaker},
	}
	seen := map[string]bool{}
	for _, req := range requests {
		name, _ := req[nameKey].(string)
		seen[name] = true
		if w, ok := want[name]; ok && !reflect.DeepEqual(req["deploymentConfiguration"], any(w)) {
			t.Errorf("%s deploymentConfiguration %v, want %v (circuit breaker; never two Prometheus at once)",
				name, req["deploymentConfiguration"], w)
		}
		if _, ok := req["launchType"]; ok && name != "node-exporter" && req["launchType"] != "EC2" {
			t.Errorf("%s launch type %v, want the default EC2", name, req["launchType"])
		}
	}
	if !seen["prometheus"] || !seen["webapp"] {
		t.Errorf("requests for %v, want webapp and prometheus", slices.Sorted(maps.Keys(seen)))
	}
}

// checkPutParameterRequests: every write asks for Intelligent-Tiering, never Standard (which an
// Advanced parameter refuses).
func checkPutParameterRequests(t *testing.T, requests []map[string]any) {
	if len(requests) == 0 {
		t.Error("no PutParameter request")
	}
	for _, req := range requests {
		if req["Tier"] != "Intelligent-Tiering" {
			t.Errorf("PutParameter %v asks for tier %v, want Intelligent-Tiering", req["Name"], req["Tier"])
		}
	}
}

// checkNetwork: the VPC step 1 created gives the tasks private subnets routed to a NAT gateway,
// and step 5 made sure the ECS service-linked role exists.
func checkNetwork(t *testing.T, m *testenv.Moto, vars map[string]string) {
	for _, subnet := range strings.Split(vars["SUBNET_IDS"], ",") {
		var out struct {
			RouteTables []struct {
				Routes []struct{ DestinationCidrBlock, NatGatewayID string }
			}
		}
		awsJSON(t, m, &out, "ec2", "describe-route-tables", "--filters", "Name=association.subnet-id,Values="+subnet)
		nat := false
		for _, rt := range out.RouteTables {
			for _, r := range rt.Routes {
				nat = nat || (r.DestinationCidrBlock == "0.0.0.0/0" && strings.HasPrefix(r.NatGatewayID, "nat-"))
			}
		}
		if !nat {
			t.Errorf("subnet %s has no default route to a NAT gateway: %+v", subnet, out)
		}
	}
	var roles struct{ Roles []struct{ RoleName string } }
	awsJSON(t, m, &roles, "iam", "list-roles", "--path-prefix", "/aws-service-role/ecs.amazonaws.com/")
	if len(roles.Roles) != 1 {
		t.Errorf("ECS service-linked roles %+v, want one", roles.Roles)
	}
}

func checkLogGroups(t *testing.T, m *testenv.Moto) {
	var out struct {
		LogGroups []struct {
			LogGroupName    string `json:"logGroupName"`
			RetentionInDays int    `json:"retentionInDays"`
		} `json:"logGroups"`
	}
	awsJSON(t, m, &out, "logs", "describe-log-groups", "--log-group-name-prefix", "/ecs/ecs-sd/")
	got := map[string]int{}
	for _, g := range out.LogGroups {
		got[g.LogGroupName] = g.RetentionInDays
	}
	want := map[string]int{"/ecs/ecs-sd/prometheus": 14, "/ecs/ecs-sd/webapp": 14, "/ecs/ecs-sd/node-exporter": 14}
	if !maps.Equal(got, want) {
		t.Errorf("log groups %v, want %v", got, want)
	}
}
