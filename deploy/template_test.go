package deploy_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Checks of the CloudFormation template evaluated as a stack would be (cfn_test.go): what
// cfn-lint cannot know because it depends on AWS's rules for names, sizes and functions.

// TestCapacityProviderNameIsAccepted: ECS refuses capacity provider names that start with aws,
// ecs or fargate, and CloudFormation's default name starts with the stack name (the README's
// stack is ecs-sd).
func TestCapacityProviderNameIsAccepted(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	for _, stackName := range []string{"ecs-sd", "aws-monitoring", "Fargate-test", "ECS", strings.Repeat("a", 128)} {
		props := newStack(t, c, stackName, nil).resource("Ec2CapacityProvider")
		name, ok := props["Name"].(string)
		if !ok {
			t.Fatalf("Ec2CapacityProvider has no Name: CloudFormation names it after the stack (%s-...), which ECS refuses for stacks named aws*, ecs* or fargate*", stackName)
		}
		lower := strings.ToLower(name)
		if !valid.MatchString(name) || strings.HasPrefix(lower, "aws") || strings.HasPrefix(lower, "ecs") || strings.HasPrefix(lower, "fargate") {
			t.Errorf("stack %s: capacity provider name %q is one ECS refuses (1-255 of A-Za-z0-9_-, not starting with aws, ecs or fargate)", stackName, name)
		}
	}
}

// fargateMemory lists the task memory sizes (MiB) Fargate accepts for each task CPU size.
var fargateMemory = map[int]struct{ min, max, step int }{
	256:   {512, 2048, 512}, // 512, 1024, 2048 (1536 is not accepted: see fargatePair)
	512:   {1024, 4096, 1024},
	1024:  {2048, 8192, 1024},
	2048:  {4096, 16384, 1024},
	4096:  {8192, 30720, 1024},
	8192:  {16384, 61440, 4096},
	16384: {32768, 122880, 8192},
}

// fargatePair tells whether Fargate accepts a task of cpu units and memory MiB.
func fargatePair(cpu, memory int) bool {
	r, ok := fargateMemory[cpu]
	if !ok || memory < r.min || memory > r.max {
		return false
	}
	if cpu == 256 {
		return memory == 512 || memory == 1024 || memory == 2048
	}
	return (memory-r.min)%r.step == 0
}

func TestFargatePairs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cpu, memory int
		ok          bool
	}{
		{256, 512, true}, {256, 2048, true}, {256, 1536, false}, {256, 4096, false},
		{512, 512, false}, {512, 1024, true}, {512, 4096, true}, {512, 5120, false},
		{1024, 1024, false}, {1024, 2048, true}, {1024, 7168, true}, {2048, 1024, false},
		{2048, 16384, true}, {4096, 30720, true}, {4096, 31744, false},
		{8192, 16384, true}, {8192, 17408, false}, {8192, 20480, true}, {16384, 40960, true},
		{16384, 36864, false}, {384, 1024, false},
	} {
		if got := fargatePair(tc.cpu, tc.memory); got != tc.ok {
			t.Errorf("fargatePair(%d, %d) = %v, want %v", tc.cpu, tc.memory, got, tc.ok)
		}
	}
}

// taskSize returns the task CPU and memory of a task definition (CloudFormation properties or
// the API's JSON, keys lower-cased) and checks that its containers fit in it.
func taskSize(t *testing.T, where string, td map[string]any) (cpu, memory int) {
	t.Helper()
	atoi := func(what string, v any) int {
		n, err := strconv.Atoi(fmt.Sprint(v))
		if err != nil {
			t.Fatalf("%s: %s %v is not a number", where, what, v)
		}
		return n
	}
	td = lowerKeys(td).(map[string]any)
	cpu, memory = atoi("cpu", td["cpu"]), atoi("memory", td["memory"])
	var cpus, mems int
	for _, c := range td["containerDefinitions"].([]any) {
		c := c.(map[string]any)
		if v, ok := c["cpu"]; ok {
			cpus += atoi("container cpu", v)
		}
		if v, ok := c["memory"]; ok {
			mems += atoi("container memory", v)
		} else if v, ok := c["memoryReservation"]; ok {
			mems += atoi("container memoryReservation", v)
		}
	}
	if cpus > cpu || mems > memory {
		t.Errorf("%s: containers want %d CPU units and %d MiB, more than the task's %d and %d", where, cpus, mems, cpu, memory)
	}
	return cpu, memory
}

// TestTaskSizesAreValidOnFargate: a task definition whose requiresCompatibilities includes
// FARGATE registers only with one of Fargate's CPU and memory pairs. Every size the template
// offers, and every JSON task definition's, is one.
func TestTaskSizesAreValidOnFargate(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	for key, v := range c.section("Mappings")["TaskSizes"].(map[string]any) {
		size := v.(map[string]any)
		cpu, _ := strconv.Atoi(fmt.Sprint(size["Cpu"]))
		memory, _ := strconv.Atoi(fmt.Sprint(size["Memory"]))
		if !fargatePair(cpu, memory) || key != fmt.Sprintf("%d-%d", cpu, memory) {
			t.Errorf("TaskSizes %s = %v: not a Fargate pair named CPU-MiB", key, size)
		}
	}
	for param, resource := range map[string]string{"WebAppTaskSize": "WebAppTaskDefinition", "PrometheusTaskSize": "PrometheusTaskDefinition"} {
		p := c.section("Parameters")[param].(map[string]any)
		if p["Type"] != "String" || p["AllowedValues"] == nil {
			t.Fatalf("%s is not a preset (a String with AllowedValues): %v", param, p)
		}
		for _, size := range p["AllowedValues"].([]any) {
			s := newStack(t, c, "ecs-sd", map[string]string{param: size.(string)})
			td := s.resource(resource)
			if !slices.Contains(td["RequiresCompatibilities"].([]any), "FARGATE") {
				t.Fatalf("%s does not require FARGATE compatibility", resource)
			}
			cpu, memory := taskSize(t, resource+" "+size.(string), td)
			if !fargatePair(cpu, memory) || fmt.Sprintf("%d-%d", cpu, memory) != size {
				t.Errorf("%s=%s gives a task of %d CPU units and %d MiB, which Fargate refuses", param, size, cpu, memory)
			}
		}
	}
	for _, file := range []string{"task-definitions/prometheus.json", "task-definitions/webapp.json"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var td map[string]any
		if err := json.Unmarshal(data, &td); err != nil {
			t.Fatal(err)
		}
		if cpu, memory := taskSize(t, file, td); !fargatePair(cpu, memory) {
			t.Errorf("%s: %d CPU units and %d MiB, which Fargate refuses", file, cpu, memory)
		}
	}
}

// ruleFunctions are the functions allowed in a rule's condition and assertions (the rule
// functions, and Ref); conditionFunctions those allowed in the Conditions section.
var (
	ruleFunctions = []string{"Fn::And", "Fn::Contains", "Fn::EachMemberEquals", "Fn::EachMemberIn",
		"Fn::Equals", "Fn::Not", "Fn::Or", "Fn::RefAll", "Fn::ValueOf", "Fn::ValueOfAll", "Ref"}
	conditionFunctions = []string{"Condition", "Fn::And", "Fn::Equals", "Fn::FindInMap", "Fn::Not", "Fn::Or", "Ref"}
)

// TestRulesAndConditionsUseOnlyTheirFunctions: Fn::Join and the other intrinsic functions are not
// allowed in rules, nor (beyond Fn::FindInMap) in conditions.
func TestRulesAndConditionsUseOnlyTheirFunctions(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	for name, rule := range c.section("Rules") {
		for _, fn := range functionsIn(rule) {
			if !slices.Contains(ruleFunctions, fn) {
				t.Errorf("rule %s uses %s; rules may use only %v", name, fn, ruleFunctions)
			}
		}
	}
	for name, cond := range c.section("Conditions") {
		for _, fn := range functionsIn(cond) {
			if !slices.Contains(conditionFunctions, fn) {
				t.Errorf("condition %s uses %s; conditions may use only %v", name, fn, conditionFunctions)
			}
		}
	}
}

// evalRule evaluates a rule function as CloudFormation does for the stack's parameters.
func evalRule(t *testing.T, s *stack, v any) any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		if l, ok := v.([]any); ok {
			out := make([]any, len(l))
			for i, x := range l {
				out[i] = evalRule(t, s, x)
			}
			return out
		}
		return v
	}
	if name, ok := m["Ref"].(string); ok {
		return s.ref(name)
	}
	asList := func(x any) []any {
		if l, ok := x.([]any); ok {
			return l
		}
		return []any{x}
	}
	for fn, arg := range m {
		args, _ := arg.([]any)
		switch fn {
		case "Fn::Equals":
			return fmt.Sprint(evalRule(t, s, args[0])) == fmt.Sprint(evalRule(t, s, args[1]))
		case "Fn::Not":
			return !evalRule(t, s, args[0]).(bool)
		case "Fn::And", "Fn::Or":
			and := fn == "Fn::And"
			for _, a := range args {
				if evalRule(t, s, a).(bool) != and {
					return !and
				}
			}
			return and
		case "Fn::Contains":
			return slices.Contains(asList(evalRule(t, s, args[0])), evalRule(t, s, args[1]))
		case "Fn::EachMemberEquals":
			want := evalRule(t, s, args[1])
			return !slices.ContainsFunc(asList(evalRule(t, s, args[0])), func(x any) bool { return x != want })
		case "Fn::EachMemberIn":
			in := asList(evalRule(t, s, args[1]))
			return !slices.ContainsFunc(asList(evalRule(t, s, args[0])), func(x any) bool { return !slices.Contains(in, x) })
		}
		t.Fatalf("rule function %s is not known to the test's evaluator", fn)
	}
	return nil
}

// failedRules returns the rules whose assertions fail for the parameter values.
func failedRules(t *testing.T, c cfn, values map[string]string) []string {
	s := newStack(t, c, "ecs-sd", values)
	var failed []string
	for name, r := range c.section("Rules") {
		rule := r.(map[string]any)
		if cond, ok := rule["RuleCondition"]; ok && !evalRule(t, s, cond).(bool) {
			continue
		}
		for _, a := range rule["Assertions"].([]any) {
			if !evalRule(t, s, a.(map[string]any)["Assert"]).(bool) {
				failed = append(failed, name)
			}
		}
	}
	slices.Sort(failed)
	return failed
}

func TestRulesCheckTheNetworkParameters(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	for _, tc := range []struct {
		name   string
		values map[string]string
		failed []string
	}{
		{"new VPC", nil, nil},
		{"existing VPC with subnets", map[string]string{"VpcId": "vpc-0abc", "PrivateSubnetIds": "subnet-1,subnet-2"}, nil},
		{"existing VPC without subnets", map[string]string{"VpcId": "vpc-0abc"}, []string{"ExistingVpcNeedsSubnets"}},
		{"existing VPC with an empty subnet", map[string]string{"VpcId": "vpc-0abc", "PrivateSubnetIds": "subnet-1,"}, []string{"ExistingVpcNeedsSubnets"}},
		{"subnets without VPC", map[string]string{"PrivateSubnetIds": "subnet-1"}, []string{"NewVpcTakesNoSubnets"}},
	} {
		if got := failedRules(t, c, tc.values); !slices.Equal(got, tc.failed) {
			t.Errorf("%s: rules %v fail, want %v", tc.name, got, tc.failed)
		}
	}
}

// TestServicesHaveTheDeploymentCircuitBreaker: without it, a task that never starts keeps the
// deployment (and the stack) waiting for hours.
func TestServicesHaveTheDeploymentCircuitBreaker(t *testing.T) {
	t.Parallel()
	s := newStack(t, loadTemplate(t), "ecs-sd", nil)
	want := map[string]any{"Enable": true, "Rollback": true}
	for _, service := range []string{"WebAppService", "PrometheusService"} {
		dc, _ := s.resource(service)["DeploymentConfiguration"].(map[string]any)
		if got := dc["DeploymentCircuitBreaker"]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s DeploymentCircuitBreaker = %v, want %v", service, got, want)
		}
	}
	dc := s.resource("PrometheusService")["DeploymentConfiguration"].(map[string]any)
	if dc["MaximumPercent"] != 100 || dc["MinimumHealthyPercent"] != 0 {
		t.Errorf("PrometheusService deployment %v, want one Prometheus at a time", dc)
	}
}

// statements returns the statements of a role's inline policies, by policy name.
func statements(t *testing.T, s *stack, role string) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	for _, p := range s.resource(role)["Policies"].([]any) {
		p := p.(map[string]any)
		for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			out[p["PolicyName"].(string)] = append(out[p["PolicyName"].(string)], st.(map[string]any))
		}
	}
	return out
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return nil
}

// TestExecutionRolePullsFromTheNamedRepositories: the ECR grant names the repositories the
// project images come from, and disappears when none does.
func TestExecutionRolePullsFromTheNamedRepositories(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	repo := func(name string) string { return "arn:aws:ecr:us-east-1:123456789012:repository/" + name }
	for _, tc := range []struct {
		values map[string]string
		repos  []string
	}{
		{nil, []string{repo("ecs-sd"), repo("webapp")}},
		{map[string]string{"EcsSdEcrRepository": "team/ecs-sd", "WebAppEcrRepository": ""}, []string{repo("team/ecs-sd")}},
		{map[string]string{"EcsSdEcrRepository": "", "WebAppEcrRepository": ""}, nil},
	} {
		var pulls []string
		login := false
		for _, st := range statements(t, newStack(t, c, "ecs-sd", tc.values), "TaskExecutionRole")["task-execution"] {
			actions := strs(st["Action"])
			switch {
			case slices.Contains(actions, "ecr:BatchGetImage"):
				pulls = strs(st["Resource"])
			case slices.Contains(actions, "ecr:GetAuthorizationToken"):
				login = true
			}
		}
		if !slices.Equal(pulls, tc.repos) || login != (len(tc.repos) > 0) {
			t.Errorf("repositories %v: the execution role pulls from %v (ECR login %v), want %v", tc.values, pulls, login, tc.repos)
		}
	}
}

// TestParameterNamesAndNamespace: a single stack uses the blog's parameter names; a second one
// prefixes them with its name. The namespaces parameter names the namespace by id, which unlike
// its name is unique in the account.
func TestParameterNamesAndNamespace(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	for _, tc := range []struct {
		stack, prefix, namespaces, config string
	}{
		{"ecs-sd", "false", "ECS-ServiceDiscovery-Namespaces", "ECS-Prometheus-Configuration"},
		{"second", "true", "second-ECS-ServiceDiscovery-Namespaces", "second-ECS-Prometheus-Configuration"},
	} {
		s := newStack(t, c, tc.stack, map[string]string{"PrefixParameterNamesWithStackName": tc.prefix})
		namespaces, config := s.resource("DiscoveryNamespacesParameter"), s.resource("PrometheusConfigParameter")
		if namespaces["Name"] != tc.namespaces || config["Name"] != tc.config {
			t.Errorf("stack %s (prefix %s): parameters %v and %v, want %s and %s", tc.stack, tc.prefix,
				namespaces["Name"], config["Name"], tc.namespaces, tc.config)
		}
		if namespaces["Value"] != "{Namespace}" {
			t.Errorf("the namespaces parameter holds %v, want the namespace's id (Ref Namespace)", namespaces["Value"])
		}
	}
	// The task reads, and the task role may read, the parameters the stack made.
	s := newStack(t, c, "ecs-sd", nil)
	env := map[string]any{}
	for _, ct := range s.resource("PrometheusTaskDefinition")["ContainerDefinitions"].([]any) {
		list, _ := ct.(map[string]any)["Environment"].([]any)
		for _, e := range list {
			e := e.(map[string]any)
			env[e["Name"].(string)] = e["Value"]
		}
	}
	if env["DISCOVERY_NAMESPACES_PARAMETER_NAME"] != "{DiscoveryNamespacesParameter}" ||
		env["PROMETHEUS_CONFIG_PARAMETER_NAME"] != "{PrometheusConfigParameter}" {
		t.Errorf("ecs-sd environment %v does not name the stack's parameters", env)
	}
}

// ecsSourceActions are the ECS API source's calls (docs/ecs-source.md) but ListClusters, which
// only all_clusters makes.
var ecsSourceActions = []string{"ec2:DescribeInstances", "ecs:DescribeClusters", "ecs:DescribeContainerInstances",
	"ecs:DescribeServices", "ecs:DescribeTaskDefinition", "ecs:DescribeTasks", "ecs:ListTasks"}

// TestEcsApiDiscoveryVariant: EcsApiDiscovery turns the ECS API source on for the stack's cluster
// and grants its reads, scoped to the cluster.
func TestEcsApiDiscoveryVariant(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	off := newStack(t, c, "ecs-sd", nil)
	if policies := statements(t, off, "PrometheusTaskRole"); policies["ecs-source"] != nil || slices.ContainsFunc(ecsSdCommand(t, off), func(a string) bool { return strings.HasPrefix(a, "--ecs.") }) {
		t.Errorf("without EcsApiDiscovery: task role policies %v, ecs-sd command %v; want no ECS source", slices.Sorted(maps.Keys(policies)), ecsSdCommand(t, off))
	}

	on := newStack(t, c, "ecs-sd", map[string]string{"EcsApiDiscovery": "Enabled"})
	if cmd := ecsSdCommand(t, on); !slices.Contains(cmd, "--ecs.cluster={Cluster}") {
		t.Errorf("with EcsApiDiscovery: ecs-sd command %v, want --ecs.cluster naming the stack's cluster", cmd)
	}
	ecsSource := statements(t, on, "PrometheusTaskRole")["ecs-source"]
	var statementsAsAny []any
	for _, st := range ecsSource {
		statementsAsAny = append(statementsAsAny, st)
	}
	checkPolicy(t, "template PrometheusTaskRole ecs-source", statementsAsAny, ecsSourceActions)
	for _, st := range ecsSource {
		actions := strs(st["Action"])
		switch {
		case slices.Contains(actions, "ecs:DescribeClusters"):
			if !slices.Equal(strs(st["Resource"]), []string{"{Cluster.Arn}"}) {
				t.Errorf("DescribeClusters on %v, want the cluster's ARN", st["Resource"])
			}
		case slices.Contains(actions, "ecs:ListTasks"):
			want := map[string]any{"ArnEquals": map[string]any{"ecs:cluster": "{Cluster.Arn}"}}
			if !reflect.DeepEqual(st["Condition"], want) {
				t.Errorf("%v with condition %v, want %v", actions, st["Condition"], want)
			}
		}
	}
}

// TestNodeExporterCannotReachTheInstanceCredentials: node exporter runs in host network mode,
// where neither the hop limit nor ECS_AWSVPC_BLOCK_IMDS applies; the container instances drop
// metadata traffic of the user it runs as.
func TestNodeExporterCannotReachTheInstanceCredentials(t *testing.T) {
	t.Parallel()
	s := newStack(t, loadTemplate(t), "ecs-sd", nil)
	data := s.resource("ContainerInstanceLaunchTemplate")["LaunchTemplateData"].(map[string]any)
	md := data["MetadataOptions"].(map[string]any)
	if md["HttpTokens"] != "required" || md["HttpPutResponseHopLimit"] != 1 {
		t.Errorf("metadata options %v, want IMDSv2 only with a hop limit of 1", md)
	}
	userData := s.str(data["UserData"])
	for _, want := range []string{"ECS_CLUSTER={Cluster}", "ECS_AWSVPC_BLOCK_IMDS=true",
		"-d 169.254.169.254/32 -m owner --uid-owner 65534 -j DROP", "systemctl enable ecs-sd-block-imds.service"} {
		if !strings.Contains(userData, want) {
			t.Errorf("user data lacks %q:\n%s", want, userData)
		}
	}
	td := s.resource("NodeExporterTaskDefinition")
	ct := td["ContainerDefinitions"].([]any)[0].(map[string]any)
	if td["NetworkMode"] != "host" || ct["User"] != "65534:65534" {
		t.Errorf("node exporter: network %v, user %v; want host network as uid 65534 (whose metadata traffic is dropped)", td["NetworkMode"], ct["User"])
	}
}
