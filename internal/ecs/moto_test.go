//go:build integration

package ecs

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/awsclient"
	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// The moto tests share one patched moto_server (testenv.StartPatchedMoto), started on first use;
// each test works in clusters of its own, through a call-counting proxy of its own.
var (
	stopMoto   func()
	sharedMoto = sync.OnceValues(func() (*testenv.Moto, error) {
		m, stop, err := testenv.StartPatchedMotoMain()
		stopMoto = stop
		return m, err
	})
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stopMoto != nil {
		stopMoto()
	}
	os.Exit(code)
}

type motoEnv struct {
	moto  *testenv.Moto
	f     *testenv.ECSFixtures
	proxy *testenv.Proxy
}

// newMotoEnv returns the shared moto (or, with own, a moto of the test's own) behind a new proxy.
func newMotoEnv(t testing.TB, own bool) *motoEnv {
	t.Helper()
	var m *testenv.Moto
	if own {
		m = testenv.StartPatchedMoto(t)
	} else {
		var err error
		if m, err = sharedMoto(); err != nil {
			t.Fatalf("start the shared moto: %v", err)
		}
	}
	return &motoEnv{moto: m, f: m.ECS(t), proxy: testenv.NewProxy(t, m.URL)}
}

// newMotoCluster returns a test environment on the shared moto with a cluster and a network of
// its own (subnet 10.0.<third>.0/24).
func newMotoCluster(t testing.TB, cluster string, tags map[string]string, third int) (*motoEnv, testenv.Network) {
	t.Helper()
	e := newMotoEnv(t, false)
	e.f.CreateCluster(t, cluster, tags)
	return e, e.f.CreateNetwork(t, third)
}

// source returns an ECS source for clusters that calls AWS through the proxy, with the default
// rules and no client-side rate limit.
func (e *motoEnv) source(t testing.TB, clusters []string, mutate func(*Config)) *Source {
	t.Helper()
	cfg := e.proxy.Config(t)
	src, err := New(awsclient.ECS(cfg), awsclient.EC2(cfg), testConfig(t, clusters, func(c *Config) {
		c.API.Concurrency = 8
		if mutate != nil {
			mutate(c)
		}
	}), Options{Pair: refresh.Pair{Region: testenv.Region}, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	return src
}

// describeCalls returns the Describe* calls the proxy counted.
func describeCalls(calls map[string]int) map[string]int {
	out := map[string]int{}
	for op, n := range calls {
		if strings.HasPrefix(op, "Describe") {
			out[op] = n
		}
	}
	return out
}

// taskDef is a task definition for moto, which wants container-level memory.
func taskDef(family string, mode ecstypes.NetworkMode, containers ...ecstypes.ContainerDefinition) *awsecs.RegisterTaskDefinitionInput {
	for i := range containers {
		containers[i].Memory = aws.Int32(32)
	}
	in := &awsecs.RegisterTaskDefinitionInput{Family: aws.String(family), NetworkMode: mode, ContainerDefinitions: containers}
	if mode == ecstypes.NetworkModeAwsvpc {
		in.RequiresCompatibilities = []ecstypes.Compatibility{ecstypes.CompatibilityEc2, ecstypes.CompatibilityFargate}
		in.Cpu, in.Memory = aws.String("256"), aws.String("512")
	}
	return in
}

// byTask indexes groups by task ARN and then by "address/path".
func byTask(groups []*targets.Group) map[string]map[string]model.LabelSet {
	out := map[string]map[string]model.LabelSet{}
	for _, g := range groups {
		arn := string(g.Labels[LabelTaskARN])
		if out[arn] == nil {
			out[arn] = map[string]model.LabelSet{}
		}
		out[arn][g.Address()+string(g.Labels[targets.LabelMetricsPath])] = g.Labels
	}
	return out
}

func hostPortOf(t ecstypes.Task, container string, port int32) string {
	for _, c := range t.Containers {
		for _, b := range c.NetworkBindings {
			if aws.ToString(c.Name) == container && aws.ToInt32(b.ContainerPort) == port {
				return fmt.Sprint(aws.ToInt32(b.HostPort))
			}
		}
	}
	return "none"
}

func TestMotoNetworkModes(t *testing.T) {
	t.Parallel()
	const cluster = "modes"
	e, n := newMotoCluster(t, cluster, map[string]string{"env": "test"}, 1)
	nodes := []testenv.ContainerInstance{e.f.AddContainerInstance(t, cluster, n), e.f.AddContainerInstance(t, cluster, n)}
	vpcDef := e.f.RegisterTaskDefinition(t, taskDef("vpc", ecstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100"))))
	fargateDef := e.f.RegisterTaskDefinition(t, taskDef("fargate", ecstypes.NetworkModeAwsvpc,
		containerDef("app", map[string]string{"PROMETHEUS_EXPORTER_PORT": "8080", "PROMETHEUS_EXPORTER_PATH": "/stats"})))
	bridgeDef := e.f.RegisterTaskDefinition(t, taskDef("bridge", ecstypes.NetworkModeBridge, containerDef("app", exporterLabels("8080"), portMap(8080, 0, ""))))
	hostDef := e.f.RegisterTaskDefinition(t, taskDef("node", ecstypes.NetworkModeHost, containerDef("node", exporterLabels("9100"), portMap(9100, 9100, ""))))
	e.f.CreateService(t, cluster, "web", bridgeDef, map[string]string{"team": "a"})

	vpc := e.f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String(cluster), TaskDefinition: &vpcDef, LaunchType: ecstypes.LaunchTypeEc2, NetworkConfiguration: n.AWSVPC()})[0]
	fargate := e.f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String(cluster), TaskDefinition: &fargateDef, LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: n.AWSVPC()})[0]
	var bridge []ecstypes.Task
	for _, node := range []testenv.ContainerInstance{nodes[0], nodes[1], nodes[1]} {
		bridge = append(bridge, e.f.StartTask(t, &awsecs.StartTaskInput{Cluster: aws.String(cluster), TaskDefinition: &bridgeDef,
			ContainerInstances: []string{node.ARN}, Group: aws.String("service:web")})...)
	}
	host := e.f.StartTask(t, &awsecs.StartTaskInput{Cluster: aws.String(cluster), TaskDefinition: &hostDef, ContainerInstances: []string{nodes[0].ARN}})[0]

	groups, err := e.source(t, []string{cluster}, nil).Discover(t.Context())
	require.NoError(t, err)
	got := byTask(groups)
	described := func(task ecstypes.Task) ecstypes.Task {
		return e.f.DescribeTask(t, cluster, aws.ToString(task.TaskArn))
	}
	want := map[string][]string{
		aws.ToString(vpc.TaskArn):     {testenv.TaskIP(described(vpc)) + ":9100/metrics"},
		aws.ToString(fargate.TaskArn): {testenv.TaskIP(described(fargate)) + ":8080/stats"},
		aws.ToString(host.TaskArn):    {nodes[0].PrivateIP + ":9100/metrics"},
	}
	for i, node := range []testenv.ContainerInstance{nodes[0], nodes[1], nodes[1]} {
		want[aws.ToString(bridge[i].TaskArn)] = []string{node.PrivateIP + ":" + hostPortOf(described(bridge[i]), "app", 8080) + "/metrics"}
	}
	require.Len(t, got, len(want))
	for arn, endpoints := range want {
		require.Contains(t, got, arn)
		require.ElementsMatch(t, endpoints, slices.Collect(maps.Keys(got[arn])), arn)
	}
	// Dynamic host ports: two tasks on one instance differ by port, two instances by address.
	require.NotEqual(t, want[aws.ToString(bridge[1].TaskArn)], want[aws.ToString(bridge[2].TaskArn)])
	require.NotEqual(t, nodes[0].PrivateIP, nodes[1].PrivateIP)

	labels := func(task ecstypes.Task) model.LabelSet {
		for _, l := range got[aws.ToString(task.TaskArn)] {
			return l
		}
		return nil
	}
	assertLabels(t, labels(vpc), map[string]string{
		LabelNetworkMode: "awsvpc", LabelLaunchType: "EC2", LabelSubnetID: n.SubnetID, LabelAvailabilityZone: "us-east-1a",
		LabelEC2InstanceID: nodes[0].EC2InstanceID, LabelEC2InstancePrivateIP: nodes[0].PrivateIP, LabelIPAddress: testenv.TaskIP(described(vpc)),
		LabelTaskGroup: "family:vpc", "taskdefinition": "vpc", "cluster": cluster, TagClusterLabelPrefix + "env": "test",
	})
	assertLabels(t, labels(fargate), map[string]string{LabelNetworkMode: "awsvpc", LabelLaunchType: "FARGATE", LabelEC2InstanceID: ""})
	assertLabels(t, labels(bridge[2]), map[string]string{
		LabelNetworkMode: "bridge", LabelLaunchType: "EC2", "service": "web", LabelService: "web", LabelServiceStatus: "ACTIVE",
		LabelServiceARN: "arn:aws:ecs:us-east-1:123456789012:service/" + cluster + "/web", TagServiceLabelPrefix + "team": "a",
		LabelEC2InstanceID: nodes[1].EC2InstanceID, LabelEC2InstanceType: "t3.small", LabelSubnetID: n.SubnetID,
		TagEC2LabelPrefix + "Name": cluster + "-node", LabelContainerInstanceARN: nodes[1].ARN, LabelHealthStatus: "UNKNOWN",
	})
	assertLabels(t, labels(host), map[string]string{LabelNetworkMode: "host", LabelIPAddress: nodes[0].PrivateIP})
}

func assertLabels(t *testing.T, got model.LabelSet, want map[string]string) {
	t.Helper()
	require.NotNil(t, got)
	for k, v := range want {
		assert.Equal(t, v, string(got[model.LabelName(k)]), k)
	}
	assert.NoError(t, got.Validate())
}

func TestMotoRules(t *testing.T) {
	t.Parallel()
	const cluster = "rules"
	e, n := newMotoCluster(t, cluster, nil, 2)
	node := e.f.AddContainerInstance(t, cluster, n)
	multiDef := e.f.RegisterTaskDefinition(t, taskDef("multi", ecstypes.NetworkModeBridge,
		containerDef("app", nil, portMap(8080, 0, "http"), portMap(9100, 0, "metrics"), portMap(9404, 0, "metrics-jvm")),
		containerDef("envoy", nil, portMap(9901, 0, "metrics-envoy")),
		containerDef("log", nil)))
	apiDef := e.f.RegisterTaskDefinition(t, taskDef("api", ecstypes.NetworkModeAwsvpc, containerDef("api", nil, portMap(8080, 0, ""), portMap(9090, 0, ""))))
	otelDef := e.f.RegisterTaskDefinition(t, taskDef("otel", ecstypes.NetworkModeAwsvpc,
		containerDef("app", map[string]string{"ECS_PROMETHEUS_EXPORTER_PORT": "9464", "ECS_PROMETHEUS_METRICS_PATH": "/otel"})))
	e.f.CreateService(t, cluster, "api-gateway", apiDef, nil)

	multi := e.f.StartTask(t, &awsecs.StartTaskInput{Cluster: aws.String(cluster), TaskDefinition: &multiDef, ContainerInstances: []string{node.ARN}})[0]
	api := e.f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String(cluster), TaskDefinition: &apiDef, LaunchType: ecstypes.LaunchTypeFargate,
		NetworkConfiguration: n.AWSVPC(), Group: aws.String("service:api-gateway")})[0]
	otel := e.f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String(cluster), TaskDefinition: &otelDef, LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: n.AWSVPC()})[0]

	// Default rules and a matcher.
	src := e.source(t, []string{cluster}, func(o *Config) {
		o.Matchers = []Matcher{{Service: "api-.*", Ports: []int{9090}, Path: "/prom", Job: "api"}}
	})
	groups, err := src.Discover(t.Context())
	require.NoError(t, err)
	got := byTask(groups)
	multiDesc := e.f.DescribeTask(t, cluster, aws.ToString(multi.TaskArn))
	apiIP := testenv.TaskIP(e.f.DescribeTask(t, cluster, aws.ToString(api.TaskArn)))
	require.ElementsMatch(t, []string{
		node.PrivateIP + ":" + hostPortOf(multiDesc, "app", 9100) + "/metrics",
		node.PrivateIP + ":" + hostPortOf(multiDesc, "app", 9404) + "/metrics",
		node.PrivateIP + ":" + hostPortOf(multiDesc, "envoy", 9901) + "/metrics",
	}, slices.Collect(maps.Keys(got[aws.ToString(multi.TaskArn)])), "every named metrics port of every container")
	for _, l := range got[aws.ToString(multi.TaskArn)] {
		require.Contains(t, []model.LabelValue{"metrics", "metrics-jvm", "metrics-envoy"}, l[LabelContainerPortName])
		require.Equal(t, model.LabelValue(",port_names,"), l[LabelRules])
	}
	apiTargets := got[aws.ToString(api.TaskArn)]
	require.Equal(t, []string{apiIP + ":9090/prom"}, slices.Collect(maps.Keys(apiTargets)))
	assertLabels(t, apiTargets[apiIP+":9090/prom"], map[string]string{"job": "api", "service": "api-gateway", LabelRules: ",matchers,", LabelContainerPort: "9090"})
	require.NotContains(t, got, aws.ToString(otel.TaskArn), "the OpenTelemetry label names are not the default")

	// The OpenTelemetry / CloudWatch-agent docker-label convention, by configuration.
	otelSrc := e.source(t, []string{cluster}, func(o *Config) {
		o.DockerLabels.PortLabel, o.DockerLabels.PathLabel = "ECS_PROMETHEUS_EXPORTER_PORT", "ECS_PROMETHEUS_METRICS_PATH"
		o.PortNames.Enabled = false
	})
	groups, err = otelSrc.Discover(t.Context())
	require.NoError(t, err)
	otelIP := testenv.TaskIP(e.f.DescribeTask(t, cluster, aws.ToString(otel.TaskArn)))
	require.Equal(t, []string{otelIP + ":9464/otel"}, endpoints(groups))
}

func TestMotoTaskLifecycle(t *testing.T) {
	t.Parallel()
	const cluster = "life"
	e, n := newMotoCluster(t, cluster, nil, 3)
	soloDef := e.f.RegisterTaskDefinition(t, taskDef("solo", ecstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100"))))
	badDef := e.f.RegisterTaskDefinition(t, taskDef("bad-labels", ecstypes.NetworkModeAwsvpc,
		containerDef("broken", exporterLabels("http")), containerDef("fine", exporterLabels("9100"))))
	solo := e.f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String(cluster), TaskDefinition: &soloDef, LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: n.AWSVPC()})[0]
	bad := e.f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String(cluster), TaskDefinition: &badDef, LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: n.AWSVPC()})[0]
	src := e.source(t, []string{cluster}, nil)

	groups, err := src.Discover(t.Context())
	require.NoError(t, err)
	got := byTask(groups)
	require.Len(t, got, 2)
	for _, l := range got[aws.ToString(solo.TaskArn)] {
		assertLabels(t, l, map[string]string{"service": "", LabelService: "", LabelTaskGroup: "family:solo", "taskdefinition": "solo"})
	}
	badTargets := got[aws.ToString(bad.TaskArn)]
	require.Len(t, badTargets, 1, "the bad container is skipped, its neighbour kept")
	for _, l := range badTargets {
		require.Equal(t, model.LabelValue("fine"), l[LabelContainerName])
	}
	require.Equal(t, [2]int{1, 1}, skipCounts(src, reasonBadPort))

	// Steady state: nothing is described again.
	e.proxy.ResetCalls()
	again, err := src.Discover(t.Context())
	require.NoError(t, err)
	require.Equal(t, endpoints(groups), endpoints(again))
	require.Empty(t, describeCalls(e.proxy.Calls()))
	require.Equal(t, 1, e.proxy.Calls()["ListTasks"])

	// A stopped task leaves at the next cycle, at no extra cost.
	e.f.StopTask(t, cluster, aws.ToString(solo.TaskArn))
	e.proxy.ResetCalls()
	groups, err = src.Discover(t.Context())
	require.NoError(t, err)
	require.NotContains(t, byTask(groups), aws.ToString(solo.TaskArn))
	require.Len(t, groups, 1)
	require.Empty(t, describeCalls(e.proxy.Calls()))
}

// rewriteTask returns a proxy response hook that passes DescribeTasks answers about task arn
// through change (on the decoded JSON of the task).
func rewriteTask(arn string, change func(task map[string]any)) func(op string, req, resp []byte) []byte {
	return func(op string, _, resp []byte) []byte {
		if op != "DescribeTasks" {
			return resp
		}
		var doc map[string]any
		if json.Unmarshal(resp, &doc) != nil {
			return resp
		}
		tasks, _ := doc["tasks"].([]any)
		for _, t := range tasks {
			if task, ok := t.(map[string]any); ok && task["taskArn"] == arn {
				change(task)
			}
		}
		out, err := json.Marshal(doc)
		if err != nil {
			return resp
		}
		return out
	}
}

func TestMotoTaskNotReadyIsRetried(t *testing.T) {
	t.Parallel()
	const cluster = "starting"
	e, n := newMotoCluster(t, cluster, nil, 4)
	node := e.f.AddContainerInstance(t, cluster, n)
	def := e.f.RegisterTaskDefinition(t, taskDef("web", ecstypes.NetworkModeBridge, containerDef("app", exporterLabels("8080"), portMap(8080, 0, ""))))
	task := e.f.StartTask(t, &awsecs.StartTaskInput{Cluster: aws.String(cluster), TaskDefinition: &def, ContainerInstances: []string{node.ARN}})[0]
	arn := aws.ToString(task.TaskArn)
	withoutBindings := func(task map[string]any) {
		for _, c := range task["containers"].([]any) {
			delete(c.(map[string]any), "networkBindings")
		}
	}
	src := e.source(t, []string{cluster}, nil)
	cycle := func() []*targets.Group {
		t.Helper()
		e.proxy.ResetCalls()
		groups, err := src.Discover(t.Context())
		require.NoError(t, err)
		return groups
	}

	// Still provisioning: skipped, and described again every cycle.
	e.proxy.SetResponseHook(rewriteTask(arn, func(task map[string]any) {
		task["lastStatus"] = "PROVISIONING"
		withoutBindings(task)
	}))
	for range 2 {
		require.Empty(t, cycle())
		require.Equal(t, 1, e.proxy.Calls()["DescribeTasks"])
	}
	require.Equal(t, [2]int{1, 1}, skipCounts(src, reasonNotRunning), "skipped now, and newly skipped once in two cycles")

	// Running, but the agent has not reported the bindings yet.
	e.proxy.SetResponseHook(rewriteTask(arn, withoutBindings))
	require.Empty(t, cycle())
	require.Equal(t, [2]int{1, 1}, skipCounts(src, reasonNoBinding))
	require.Equal(t, [2]int{0, 1}, skipCounts(src, reasonNotRunning))

	// Ready: a target, and the task is not described again.
	e.proxy.SetResponseHook(nil)
	want := node.PrivateIP + ":" + hostPortOf(e.f.DescribeTask(t, cluster, arn), "app", 8080) + "/metrics"
	require.Equal(t, []string{want}, endpoints(cycle()))
	require.Equal(t, []string{want}, endpoints(cycle()))
	require.Empty(t, describeCalls(e.proxy.Calls()))
}

func TestMotoFailingClusterKeepsItsTargets(t *testing.T) {
	t.Parallel()
	e := newMotoEnv(t, false)
	n := e.f.CreateNetwork(t, 5)
	def := e.f.RegisterTaskDefinition(t, taskDef("east-west", ecstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100"))))
	tasks := map[string][]ecstypes.Task{}
	for _, c := range []string{"east", "west"} {
		e.f.CreateCluster(t, c, nil)
		tasks[c] = e.f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String(c), TaskDefinition: &def, Count: aws.Int32(2),
			LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: n.AWSVPC()})
	}
	src := e.source(t, []string{"east", "west"}, nil)
	first, err := src.Discover(t.Context())
	require.NoError(t, err)
	require.Len(t, first, 4)

	e.proxy.FailWhen(func(op string, body []byte) bool {
		return op == "ListTasks" && strings.Contains(string(body), `"west"`)
	}, "AccessDeniedException")
	e.f.StopTask(t, "west", aws.ToString(tasks["west"][0].TaskArn))
	added := e.f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String("east"), TaskDefinition: &def, LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: n.AWSVPC()})[0]

	groups, err := src.Discover(t.Context())
	require.ErrorContains(t, err, `cluster "west"`)
	require.ErrorContains(t, err, "AccessDeniedException")
	got := byTask(groups)
	require.Len(t, got, 5, "west keeps its last targets; east goes on")
	require.Contains(t, got, aws.ToString(added.TaskArn))
	require.Contains(t, got, aws.ToString(tasks["west"][0].TaskArn), "west cannot tell that its task stopped")

	e.proxy.ClearFaults()
	groups, err = src.Discover(t.Context())
	require.NoError(t, err)
	require.Len(t, groups, 4)
}

func TestMotoAllClusters(t *testing.T) {
	t.Parallel()
	e := newMotoEnv(t, true)
	n := e.f.CreateNetwork(t, 6)
	def := e.f.RegisterTaskDefinition(t, taskDef("everywhere", ecstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100"))))
	for _, c := range []string{"one", "two", "three"} {
		e.f.CreateCluster(t, c, nil)
		e.f.RunTask(t, &awsecs.RunTaskInput{Cluster: aws.String(c), TaskDefinition: &def, LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: n.AWSVPC()})
	}
	src := e.source(t, nil, func(o *Config) { o.AllClusters = true })
	groups, err := src.Discover(t.Context())
	require.NoError(t, err)
	var clusters []string
	for _, g := range groups {
		clusters = append(clusters, string(g.Labels[targets.LabelCluster]))
	}
	require.ElementsMatch(t, []string{"one", "two", "three"}, clusters)
	require.Equal(t, 1, e.proxy.Calls()["ListClusters"])
}

// skipCounts returns the endpoints src skips now for reason, and how many times one was newly
// skipped for it.
func skipCounts(src *Source, reason string) [2]int {
	now, newly := src.skips.Counts(reason)
	return [2]int{now, newly}
}
