package ecs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// testConfig is ecs-sd's default configuration of the source for clusters, with no client-side
// rate limit, mutated by mutate (when not nil) and validated.
func testConfig(t testing.TB, clusters []string, mutate func(*Config)) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Clusters = clusters
	cfg.API.RequestsPerSecond = 0
	if mutate != nil {
		mutate(&cfg)
	}
	require.NoError(t, cfg.Validate())
	return cfg
}

func containerDef(name string, labels map[string]string, ports ...awstypes.PortMapping) awstypes.ContainerDefinition {
	return awstypes.ContainerDefinition{Name: aws.String(name), Image: aws.String(name + ":1"), DockerLabels: labels, PortMappings: ports}
}

// portMap maps a container port; a name of "" leaves it unnamed, hostPort 0 makes it dynamic.
func portMap(port, hostPort int32, name string) awstypes.PortMapping {
	pm := awstypes.PortMapping{ContainerPort: aws.Int32(port), Protocol: awstypes.TransportProtocolTcp}
	if hostPort != 0 {
		pm.HostPort = aws.Int32(hostPort)
	}
	if name != "" {
		pm.Name = aws.String(name)
	}
	return pm
}

func exporterLabels(port string) map[string]string {
	return map[string]string{"PROMETHEUS_EXPORTER_PORT": port}
}

type testEnv struct {
	aws       *fakeAWS
	src       *Source
	reg       *prometheus.Registry
	now       time.Time
	instances int // container instances seeded so far
}

func newTestEnv(t testing.TB, mutate func(*Config)) *testEnv {
	t.Helper()
	e := &testEnv{aws: newFakeAWS(), reg: prometheus.NewRegistry(), now: time.Unix(1_700_000_000, 0)}
	src, err := New(e.aws, e.aws, testConfig(t, []string{"prod"}, mutate), Options{
		Pair:       refresh.Pair{Account: fakeAccount, Region: fakeRegion},
		Registerer: e.reg,
		now:        func() time.Time { return e.now },
	})
	require.NoError(t, err)
	e.src = src
	return e
}

func (e *testEnv) discover(t testing.TB) []*targets.Group {
	t.Helper()
	groups, err := e.src.Discover(context.Background())
	require.NoError(t, err)
	return groups
}

// endpoints renders groups as "address/path" (with "scheme://" when a scheme is set), in the
// order targets.Sort gives (the source returns them in no particular order; the loop sorts the
// merged list).
func endpoints(groups []*targets.Group) []string {
	groups = slices.Clone(groups)
	targets.Sort(groups)
	out := []string{}
	for _, g := range groups {
		s := g.Address() + string(g.Labels[targets.LabelMetricsPath])
		if sch := g.Labels[targets.LabelScheme]; sch != "" {
			s = string(sch) + "://" + s
		}
		out = append(out, s)
	}
	return out
}

// skipped returns the endpoints skipped now for reason (ecs_sd_targets_skipped).
func (e *testEnv) skipped(reason string) float64 {
	now, _ := e.src.skips.Counts(reason)
	return float64(now)
}

func (e *testEnv) lastCalls() map[string]int {
	out := map[string]int{}
	for op := range operations {
		if n := int(testutil.ToFloat64(e.src.lastCalls.WithLabelValues(op))); n > 0 {
			out[op] = n
		}
	}
	return out
}

func TestTargetsByNetworkModeAndRule(t *testing.T) {
	t.Parallel()
	withLabels := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name  string
		mode  awstypes.NetworkMode
		defs  []awstypes.ContainerDefinition
		run   run
		rules func(*Config)
		want  []string
		skips []string
	}{
		{name: "awsvpc docker label", mode: awstypes.NetworkModeAwsvpc,
			defs: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("9100"))},
			want: []string{"10.1.0.2:9100/metrics"}},
		{name: "fargate without a network mode is awsvpc", mode: "",
			defs: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("9100"))},
			run:  run{launchType: awstypes.LaunchTypeFargate}, want: []string{"10.1.0.2:9100/metrics"}},
		{name: "bridge dynamic host port", mode: awstypes.NetworkModeBridge,
			defs: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("8080"), portMap(8080, 0, ""))},
			run:  run{instance: "ec2"}, want: []string{"10.0.0.10:32768/metrics"}},
		{name: "bridge static host port", mode: awstypes.NetworkModeBridge,
			defs: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("8080"), portMap(8080, 18080, ""))},
			run:  run{instance: "ec2"}, want: []string{"10.0.0.10:18080/metrics"}},
		{name: "host mode", mode: awstypes.NetworkModeHost,
			defs: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("9100"), portMap(9100, 0, ""))},
			run:  run{instance: "ec2"}, want: []string{"10.0.0.10:9100/metrics"}},
		{name: "host mode port without mapping", mode: awstypes.NetworkModeHost,
			defs: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("9100"))},
			run:  run{instance: "ec2"}, want: []string{"10.0.0.10:9100/metrics"}},
		{name: "path scheme and job labels", mode: awstypes.NetworkModeAwsvpc,
			defs: []awstypes.ContainerDefinition{containerDef("app", withLabels("PROMETHEUS_EXPORTER_PORT", "8443",
				"PROMETHEUS_EXPORTER_PATH", "/stats", "PROMETHEUS_EXPORTER_SCHEME", "HTTPS", "PROMETHEUS_EXPORTER_JOB_NAME", "api"))},
			want: []string{"https://10.1.0.2:8443/stats"}},
		{name: "several named ports in several containers", mode: awstypes.NetworkModeBridge,
			defs: []awstypes.ContainerDefinition{
				containerDef("app", nil, portMap(8080, 0, "http"), portMap(9100, 0, "metrics"), portMap(9200, 0, "metrics-jvm")),
				containerDef("envoy", nil, portMap(9901, 0, "metrics-envoy")),
			},
			run:  run{instance: "ec2"},
			want: []string{"10.0.0.10:32769/metrics", "10.0.0.10:32770/metrics", "10.0.0.10:32771/metrics"}},
		{name: "port names off", mode: awstypes.NetworkModeAwsvpc,
			defs:  []awstypes.ContainerDefinition{containerDef("app", nil, portMap(9100, 0, "metrics"))},
			rules: func(r *Config) { r.PortNames.Enabled = false }, want: []string{}},
		{name: "docker labels off", mode: awstypes.NetworkModeAwsvpc,
			defs:  []awstypes.ContainerDefinition{containerDef("app", exporterLabels("9100"))},
			rules: func(r *Config) { r.DockerLabels.Enabled = false }, want: []string{}},
		{name: "other label convention", mode: awstypes.NetworkModeAwsvpc,
			defs: []awstypes.ContainerDefinition{containerDef("app", withLabels("ECS_PROMETHEUS_EXPORTER_PORT", "9404", "PROMETHEUS_EXPORTER_PORT", "1"))},
			rules: func(r *Config) {
				r.DockerLabels.PortLabel = "ECS_PROMETHEUS_EXPORTER_PORT"
			},
			want: []string{"10.1.0.2:9404/metrics"}},
		{name: "docker label and port name on one endpoint give one target", mode: awstypes.NetworkModeAwsvpc,
			defs: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("9100"), portMap(9100, 0, "metrics"))},
			want: []string{"10.1.0.2:9100/metrics"}},
		{name: "matcher on service and ports", mode: awstypes.NetworkModeAwsvpc,
			defs: []awstypes.ContainerDefinition{containerDef("app", nil, portMap(8080, 0, ""), portMap(9090, 0, ""))},
			run:  run{group: "service:web-api"},
			rules: func(r *Config) {
				r.Matchers = []Matcher{{Service: "web-.*", Ports: []int{9090, 7777}, Path: "/prom"}}
			},
			want: []string{"10.1.0.2:9090/prom"}},
		{name: "matcher on service ignores standalone tasks", mode: awstypes.NetworkModeAwsvpc,
			defs:  []awstypes.ContainerDefinition{containerDef("app", nil, portMap(9090, 0, ""))},
			rules: func(r *Config) { r.Matchers = []Matcher{{Service: ".*", Ports: []int{9090}}} },
			want:  []string{}},
		{name: "matcher on family and container", mode: awstypes.NetworkModeAwsvpc,
			defs: []awstypes.ContainerDefinition{containerDef("app", nil, portMap(9090, 0, "")), containerDef("sidecar", nil, portMap(9091, 0, ""))},
			rules: func(r *Config) {
				r.Matchers = []Matcher{{TaskDefinition: "fam", Container: "side.*", Ports: []int{9090, 9091}, Scheme: "https", Job: "sidecars"}}
			},
			want: []string{"https://10.1.0.2:9091/metrics"}},
		{name: "bad port label skips only its container", mode: awstypes.NetworkModeAwsvpc,
			defs:  []awstypes.ContainerDefinition{containerDef("bad", exporterLabels("http")), containerDef("good", exporterLabels("9100"))},
			want:  []string{"10.1.0.2:9100/metrics"},
			skips: []string{reasonBadPort}},
		{name: "bad path and scheme labels", mode: awstypes.NetworkModeAwsvpc,
			defs: []awstypes.ContainerDefinition{
				containerDef("a", withLabels("PROMETHEUS_EXPORTER_PORT", "1", "PROMETHEUS_EXPORTER_PATH", "metrics")),
				containerDef("b", withLabels("PROMETHEUS_EXPORTER_PORT", "2", "PROMETHEUS_EXPORTER_SCHEME", "ftp")),
			},
			want: []string{}, skips: []string{reasonBadPath, reasonBadScheme}},
		{name: "bad scrape interval and timeout labels", mode: awstypes.NetworkModeAwsvpc,
			defs: []awstypes.ContainerDefinition{
				containerDef("a", withLabels("PROMETHEUS_EXPORTER_PORT", "1", "PROMETHEUS_EXPORTER_SCRAPE_INTERVAL", "fast")),
				containerDef("b", withLabels("PROMETHEUS_EXPORTER_PORT", "2", "PROMETHEUS_EXPORTER_SCRAPE_TIMEOUT", "1m", "PROMETHEUS_EXPORTER_SCRAPE_INTERVAL", "30s")),
				containerDef("c", withLabels("PROMETHEUS_EXPORTER_PORT", "3", "PROMETHEUS_EXPORTER_SCRAPE_TIMEOUT", "5s", "PROMETHEUS_EXPORTER_SCRAPE_INTERVAL", "30s")),
			},
			want: []string{"10.1.0.2:3/metrics"}, skips: []string{targets.ReasonBadScrapeInterval, targets.ReasonBadScrapeTimeout}},
		{name: "bridge port not bound", mode: awstypes.NetworkModeBridge,
			defs: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("9999"), portMap(8080, 0, ""))},
			run:  run{instance: "ec2"}, want: []string{}, skips: []string{reasonPortNotMapped}},
		{name: "bridge without bindings yet", mode: awstypes.NetworkModeBridge,
			defs: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("8080"), portMap(8080, 0, ""))},
			run:  run{instance: "ec2", noBindings: true}, want: []string{}, skips: []string{reasonNoBinding}},
		{name: "not running yet", mode: awstypes.NetworkModeAwsvpc,
			defs: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("9100"))},
			run:  run{lastStatus: "PROVISIONING"}, want: []string{}, skips: []string{reasonNotRunning}},
		{name: "network mode none", mode: awstypes.NetworkModeNone,
			defs: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("9100"))},
			run:  run{instance: "ec2"}, want: []string{}, skips: []string{reasonNetworkModeNone}},
		{name: "no rule matches: no target, no skip", mode: awstypes.NetworkModeAwsvpc,
			defs: []awstypes.ContainerDefinition{containerDef("app", nil, portMap(8080, 0, "http"))},
			run:  run{lastStatus: "PENDING"}, want: []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, tc.rules)
			e.aws.addCluster("prod", nil)
			r := tc.run
			r.cluster, r.taskDef = "prod", e.aws.addTaskDef("fam", tc.mode, tc.defs...)
			if r.instance != "" {
				r.instance = e.aws.addInstance("prod", "i-0abc", "10.0.0.10")
			}
			if r.launchType == "" && r.instance == "" {
				r.launchType = awstypes.LaunchTypeFargate
			}
			e.aws.runTask(r)
			groups := e.discover(t)
			require.Equal(t, tc.want, endpoints(groups))
			var reasons []string
			for _, reason := range skipReasons {
				for range int(e.skipped(reason)) {
					reasons = append(reasons, reason)
				}
			}
			require.ElementsMatch(t, tc.skips, reasons)
			// The status tells each skip with the ids that find it and what is wrong.
			skipped := e.src.Skipped()
			require.Len(t, skipped, len(tc.skips))
			for _, sk := range skipped {
				ids := map[string]string{}
				for _, id := range sk.IDs {
					ids[id.Name] = id.Value
				}
				require.Equal(t, Name, sk.Source)
				require.Contains(t, tc.skips, sk.Reason)
				require.NotEmpty(t, sk.Message)
				require.Equal(t, "prod", arnName(ids["cluster"]), sk.IDs)
				require.Contains(t, ids["task"], ":task/", sk.IDs)
				if sk.Reason != reasonNotRunning && sk.Reason != reasonNetworkModeNone {
					require.NotEmpty(t, ids["container"], "a container's skip names it: %v", sk.IDs)
				}
			}
			for _, g := range groups {
				require.NoError(t, g.Labels.Validate())
			}
		})
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	e.aws.addCluster("prod", map[string]string{"env": "production"})
	e.aws.addService("prod", "web", map[string]string{"team:owner": "payments"})
	def := e.aws.addTaskDef("web-task", awstypes.NetworkModeBridge,
		containerDef("app", map[string]string{"PROMETHEUS_EXPORTER_PORT": "8080", "com.example/tier": "front"}, portMap(8080, 0, "metrics")),
		containerDef("log", nil))
	ci := e.aws.addInstance("prod", "i-0abc", "10.0.0.10")
	arn := e.aws.runTask(run{cluster: "prod", taskDef: def, group: "service:web", instance: ci, tags: map[string]string{"version": "1.2"}})

	groups := e.discover(t)
	require.Len(t, groups, 1)
	g := groups[0]
	require.Equal(t, []string{"10.0.0.10:32768"}, g.Targets)
	want := map[string]string{
		"cluster": "prod", "service": "web", "taskdefinition": "web-task", "__metrics_path__": "/metrics",
		LabelCluster: "prod", LabelClusterARN: clusterARN("prod"), LabelService: "web",
		LabelServiceARN: arnPrefix + "service/prod/web", LabelServiceStatus: "ACTIVE",
		LabelTaskARN: arn, LabelTaskDefinition: def, LabelTaskGroup: "service:web", LabelLaunchType: "EC2",
		LabelDesiredStatus: "RUNNING", LabelLastStatus: "RUNNING", LabelHealthStatus: "UNKNOWN",
		LabelAvailabilityZone: "us-east-1a", LabelSubnetID: "subnet-ec2", LabelIPAddress: "10.0.0.10",
		LabelNetworkMode: "bridge", LabelRegion: fakeRegion, LabelContainerInstanceARN: ci,
		LabelEC2InstanceID: "i-0abc", LabelEC2InstanceType: "t3.small", LabelEC2InstancePrivateIP: "10.0.0.10",
		TagClusterLabelPrefix + "env": "production", TagServiceLabelPrefix + "team_owner": "payments",
		TagTaskLabelPrefix + "version": "1.2", TagEC2LabelPrefix + "Name": "node-i-0abc",
		LabelContainerName: "app", LabelContainerImage: "app:1", LabelContainerPort: "8080", LabelContainerPortName: "metrics",
		ContainerLabelLabelPrefix + "PROMETHEUS_EXPORTER_PORT": "8080", ContainerLabelLabelPrefix + "com_example_tier": "front",
		LabelRules:             ",docker_labels,port_names,",
		targets.LabelSource:    ",ecs,", // set by the source, so the merge need not copy the labels
		targets.LabelAccountID: fakeAccount, targets.LabelRegion: fakeRegion,
	}
	got := map[string]string{}
	for k, v := range g.Labels {
		got[string(k)] = string(v)
	}
	require.Equal(t, want, got)
	require.NoError(t, g.Labels.Validate())
}

// TestScrapeSettingsLabels: the scheme, scrape interval and scrape timeout docker labels (their
// names configurable) give __scheme__, __scrape_interval__ and __scrape_timeout__; an unusable
// one skips that container's docker-label target, with a detail naming the label and its value.
func TestScrapeSettingsLabels(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *Config) {
		c.DockerLabels.ScrapeIntervalLabel = "every"
		c.DockerLabels.ScrapeTimeoutLabel = "" // turned off
	})
	e.aws.addCluster("prod", nil)
	def := e.aws.addTaskDef("fam", awstypes.NetworkModeAwsvpc,
		containerDef("app", map[string]string{"PROMETHEUS_EXPORTER_PORT": "9100", "PROMETHEUS_EXPORTER_SCHEME": "https", "every": "120s",
			"PROMETHEUS_EXPORTER_SCRAPE_TIMEOUT": "not read", "PROMETHEUS_EXPORTER_SCRAPE_INTERVAL": "not read"}),
		containerDef("bad", map[string]string{"PROMETHEUS_EXPORTER_PORT": "9200", "every": "1x"}, portMap(9201, 0, "metrics")))
	e.aws.runTask(run{cluster: "prod", taskDef: def, launchType: awstypes.LaunchTypeFargate})

	groups := e.discover(t)
	require.Equal(t, []string{"10.1.0.2:9201/metrics", "https://10.1.0.2:9100/metrics"}, endpoints(groups))
	for _, g := range groups {
		require.NoError(t, g.Check())
		if g.Labels[LabelContainerName] == "app" {
			require.Equal(t, model.LabelValue("2m"), g.Labels[targets.LabelScrapeInterval])
			require.NotContains(t, g.Labels, model.LabelName(targets.LabelScrapeTimeout))
		} else {
			require.NotContains(t, g.Labels, model.LabelName(targets.LabelScrapeInterval), "the port-name rule's target has no scrape settings")
		}
	}
	require.Equal(t, 1.0, e.skipped(targets.ReasonBadScrapeInterval))

	rules := *testConfig(t, []string{"prod"}, nil).rules
	_, skips := rules.endpoints(containerDef("x", map[string]string{"PROMETHEUS_EXPORTER_PORT": "1", "PROMETHEUS_EXPORTER_SCRAPE_TIMEOUT": "abc"}), "", "fam")
	require.Equal(t, []skip{{reason: targets.ReasonBadScrapeTimeout, detail: `docker label PROMETHEUS_EXPORTER_SCRAPE_TIMEOUT="abc" is not a duration (such as 15s or 1m30s)`}}, skips)
	_, skips = rules.endpoints(containerDef("x", map[string]string{"PROMETHEUS_EXPORTER_PORT": "1", "PROMETHEUS_EXPORTER_SCHEME": "tcp"}), "", "fam")
	require.Equal(t, []skip{{reason: reasonBadScheme, detail: `docker label PROMETHEUS_EXPORTER_SCHEME="tcp" is neither http nor https`}}, skips)
}

// TestLabelNameCollisions: docker labels and tags whose keys differ only in characters that
// sanitising replaces give the label of the key that sorts first, at every run whatever Go's map
// order, and the collision is logged once, when it appears.
func TestLabelNameCollisions(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := newTestEnv(t, nil)
	e.src.opts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	e.aws.addCluster("prod", map[string]string{"env.x": "dot", "env-x": "dash", "env_x": "underscore"})
	labels := map[string]string{"PROMETHEUS_EXPORTER_PORT": "8080"}
	for i, k := range []string{"tier.a", "tier-a", "tier/a", "tier:a", "tier a"} {
		labels[k] = fmt.Sprint(i)
	}
	def := e.aws.addTaskDef("web-task", awstypes.NetworkModeAwsvpc, containerDef("app", labels, portMap(8080, 0, "")))
	arn := e.aws.runTask(run{cluster: "prod", taskDef: def, launchType: awstypes.LaunchTypeFargate})
	var first []byte
	for i := range 20 {
		groups := e.discover(t)
		require.Len(t, groups, 1)
		require.Equal(t, model.LabelValue("4"), groups[0].Labels[ContainerLabelLabelPrefix+"tier_a"], `"tier a" sorts first`)
		require.Equal(t, model.LabelValue("dash"), groups[0].Labels[TagClusterLabelPrefix+"env_x"], `"env-x" sorts first`)
		out, err := targets.Marshal(groups)
		require.NoError(t, err)
		if i == 0 {
			first = out
		}
		require.Equal(t, string(first), string(out), "cycle %d", i)
		// A fresh label builder every time: the result does not hang on a cache either.
		task := e.src.clusters["prod"].tasks[arn].task
		again, _ := buildTargets(taskFacts{task: &task, def: e.src.taskDefs[def]}, e.src.rules, &labeler{})
		require.Equal(t, model.LabelValue("4"), again[0].Labels[ContainerLabelLabelPrefix+"tier_a"])
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		if m["msg"] == "Keys give the same label name; the key that sorts first gives the label" {
			lines = append(lines, fmt.Sprint(m["label"], " ", m["kept"], " ", m["dropped"]))
		}
	}
	require.ElementsMatch(t, []string{
		"__meta_ecs_container_label_tier_a tier a tier-a", "__meta_ecs_container_label_tier_a tier a tier.a",
		"__meta_ecs_container_label_tier_a tier a tier/a", "__meta_ecs_container_label_tier_a tier a tier:a",
		"__meta_ecs_tag_cluster_env_x env-x env.x", "__meta_ecs_tag_cluster_env_x env-x env_x",
	}, lines, "each collision logged once in 20 cycles")
}

// seed starts n tasks in cluster, spread over services (10 per service) and task definitions,
// half awsvpc, half bridge on 4 container instances, and returns the task ARNs.
func (e *testEnv) seed(cluster string, n int) []string {
	e.aws.addCluster(cluster, map[string]string{"env": cluster})
	var instances []string
	for i := range 4 {
		e.instances++
		instances = append(instances, e.aws.addInstance(cluster, fmt.Sprintf("i-%s-%d", cluster, i), fmt.Sprintf("10.9.0.%d", e.instances)))
	}
	defs := []string{
		e.aws.addTaskDef(cluster+"-vpc", awstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100"))),
		e.aws.addTaskDef(cluster+"-bridge", awstypes.NetworkModeBridge, containerDef("app", nil, portMap(8080, 0, "metrics"))),
	}
	var arns []string
	for i := range n {
		svc := fmt.Sprintf("svc-%02d", i/10)
		if i%10 == 0 {
			e.aws.addService(cluster, svc, map[string]string{"n": svc})
		}
		r := run{cluster: cluster, taskDef: defs[i%2], group: "service:" + svc}
		if i%2 == 1 {
			r.instance = instances[i%4]
		}
		arns = append(arns, e.aws.runTask(r))
	}
	return arns
}

func TestSteadyStateCallsOnlyListTasks(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(o *Config) { o.Clusters = []string{"alpha", clusterARN("beta")} })
	alpha := e.seed("alpha", 250)
	e.seed("beta", 30)

	groups := e.discover(t)
	require.Len(t, groups, 280)
	require.Equal(t, map[string]int{
		"ListTasks": 3 + 1, "DescribeTasks": 3 + 1, "DescribeTaskDefinition": 4, "DescribeContainerInstances": 2,
		"DescribeInstances": 1, "DescribeServices": 3 + 1, "DescribeClusters": 1,
	}, e.aws.callCounts(), "batches of 100 tasks, 100 container instances, 10 services")
	require.Equal(t, e.aws.callCounts(), e.lastCalls())

	e.aws.resetCalls()
	again := e.discover(t)
	require.Equal(t, endpoints(groups), endpoints(again))
	require.Equal(t, map[string]int{"ListTasks": 4}, e.aws.callCounts(), "an unchanged cluster needs no Describe call")
	require.Equal(t, map[string]int{"ListTasks": 4}, e.lastCalls())
	require.Equal(t, 280.0, testutil.ToFloat64(e.src.cacheHits.WithLabelValues(cacheTask)))

	// 10 % of alpha's tasks replaced: one DescribeTasks call, nothing else described.
	for _, arn := range alpha[:25] {
		e.aws.stopTask(arn)
	}
	def := e.aws.addTaskDef("alpha-vpc", awstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100")))
	for range 25 {
		e.aws.runTask(run{cluster: "alpha", taskDef: def, group: "service:svc-00"})
	}
	e.aws.resetCalls()
	groups = e.discover(t)
	require.Len(t, groups, 280)
	require.Equal(t, map[string]int{"ListTasks": 4, "DescribeTasks": 1, "DescribeTaskDefinition": 1}, e.aws.callCounts())

	// After the refresh intervals, metadata and then tasks are read again, still in batches.
	e.now = e.now.Add(6 * time.Minute)
	e.aws.resetCalls()
	e.discover(t)
	require.Equal(t, map[string]int{"ListTasks": 4, "DescribeServices": 4, "DescribeClusters": 1}, e.aws.callCounts())
	e.now = e.now.Add(5 * time.Minute)
	e.aws.resetCalls()
	e.discover(t)
	require.Equal(t, 3+1, e.aws.callCounts()["DescribeTasks"])
	require.Zero(t, e.aws.callCounts()["DescribeInstances"])
}

func TestHealthStatusRefreshedAfterTaskRefreshInterval(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	e.aws.addCluster("prod", nil)
	def := e.aws.addTaskDef("fam", awstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100")))
	arn := e.aws.runTask(run{cluster: "prod", taskDef: def, launchType: awstypes.LaunchTypeFargate})
	require.Equal(t, model.LabelValue("UNKNOWN"), e.discover(t)[0].Labels[LabelHealthStatus])

	e.aws.update(arn, func(t *awstypes.Task) { t.HealthStatus = awstypes.HealthStatusHealthy })
	e.now = e.now.Add(9 * time.Minute)
	require.Equal(t, model.LabelValue("UNKNOWN"), e.discover(t)[0].Labels[LabelHealthStatus], "within the interval the task is not described again")
	e.now = e.now.Add(time.Minute)
	require.Equal(t, model.LabelValue("HEALTHY"), e.discover(t)[0].Labels[LabelHealthStatus])
}

// bridgeService seeds the cluster prod with a service web of one bridge task on the container
// instance of i-0abc (10.0.0.10), discovered: its target is 10.0.0.10:32768. It returns the
// container instance, the task definition and the task.
func (e *testEnv) bridgeService(t *testing.T) (ci, def, task string) {
	t.Helper()
	e.aws.addCluster("prod", nil)
	e.aws.addService("prod", "web", nil)
	ci = e.aws.addInstance("prod", "i-0abc", "10.0.0.10")
	def = e.aws.addTaskDef("fam", awstypes.NetworkModeBridge, containerDef("app", exporterLabels("8080"), portMap(8080, 0, "")))
	task = e.aws.runTask(run{cluster: "prod", taskDef: def, group: "service:web", instance: ci})
	require.Equal(t, []string{"10.0.0.10:32768/metrics"}, endpoints(e.discover(t)))
	return ci, def, task
}

func TestTasksComeAndGo(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	ci, def, first := e.bridgeService(t)

	// A task without bindings yet is skipped and described again every cycle until it has them.
	second := e.aws.runTask(run{cluster: "prod", taskDef: def, group: "service:web", instance: ci, noBindings: true})
	for range 2 {
		e.aws.resetCalls()
		require.Equal(t, []string{"10.0.0.10:32768/metrics"}, endpoints(e.discover(t)))
		require.Equal(t, 1, e.aws.callCounts()["DescribeTasks"])
	}
	require.Equal(t, 1.0, e.skipped(reasonNoBinding))
	_, newly := e.src.skips.Counts(reasonNoBinding)
	require.Equal(t, 1, newly, "skipped at two cycles, newly skipped once")
	e.aws.update(second, func(t *awstypes.Task) {
		t.Containers[0].NetworkBindings = []awstypes.NetworkBinding{{ContainerPort: aws.Int32(8080), HostPort: aws.Int32(32800)}}
	})
	require.Equal(t, []string{"10.0.0.10:32768/metrics", "10.0.0.10:32800/metrics"}, endpoints(e.discover(t)))
	e.aws.resetCalls()
	e.discover(t)
	require.Zero(t, e.aws.callCounts()["DescribeTasks"])

	// A stopped task leaves; what only it used is forgotten.
	e.aws.stopTask(first)
	e.aws.stopTask(second)
	require.Empty(t, e.discover(t))
	require.Empty(t, e.src.taskDefs)
	require.Empty(t, e.src.ciEC2)
	require.Empty(t, e.src.instances)
	require.Empty(t, e.src.services)
}

func TestFaultsKeepLastGoodTargets(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(o *Config) { o.Clusters = []string{"alpha", "beta"} })
	e.seed("alpha", 20)
	e.seed("beta", 20)
	ctx := context.Background()
	want := endpoints(e.discover(t))
	require.Len(t, want, 40)

	// The error names the failed operation and the cluster it was about.
	for fault, text := range map[string]string{
		"ListTasks/beta":         `cluster "beta": ListTasks: injected fault`,
		"DescribeServices/alpha": `cluster "alpha": DescribeServices: injected fault`,
		"DescribeClusters":       `call DescribeClusters: injected fault`,
		"DescribeInstances":      `call DescribeInstances: injected fault`,
	} {
		e.aws.setFail(fault, errInjected)
		e.now = e.now.Add(2 * time.Hour) // every cache is stale
		groups, err := e.src.Discover(ctx)
		require.ErrorIs(t, err, errInjected, fault)
		require.EqualError(t, err, text)
		var opErr *refresh.OpError
		require.ErrorAs(t, err, &opErr)
		require.Equal(t, strings.Split(fault, "/")[0], opErr.Op)
		require.Equal(t, want, endpoints(groups), "fault %s must not lose targets", fault)
		e.aws.setFail(fault, nil)
	}

	// New tasks whose description or task definition cannot be read are left out, the others
	// kept, and both are read next cycle.
	def := e.aws.addTaskDef("new", awstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("7000")))
	e.aws.runTask(run{cluster: "alpha", taskDef: def, launchType: awstypes.LaunchTypeFargate})
	newBeta := e.aws.runTask(run{cluster: "beta", taskDef: def, launchType: awstypes.LaunchTypeFargate})
	e.aws.setFail("DescribeTaskDefinition/"+def, errInjected)
	e.aws.setFail("DescribeTasks/beta", errInjected)
	groups, err := e.src.Discover(ctx)
	require.ErrorIs(t, err, errInjected)
	require.ErrorContains(t, err, def)
	require.ErrorContains(t, err, `cluster "beta"`)
	require.Equal(t, want, endpoints(groups))
	e.aws.setFail("DescribeTaskDefinition/"+def, nil)
	e.aws.setFail("DescribeTasks/beta", nil)
	groups = e.discover(t)
	require.Len(t, groups, 42)

	// A cluster that fails outright keeps the targets it had, new task included.
	e.aws.setFail("ListTasks/beta", errInjected)
	e.aws.stopTask(newBeta)
	groups, err = e.src.Discover(ctx)
	require.ErrorIs(t, err, errInjected)
	require.Len(t, groups, 42)
}

func TestDescribeTasksKeepsOnlyAskedTasks(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(o *Config) { o.Clusters = []string{"alpha"} })
	e.aws.looseTasks = true
	e.seed("alpha", 4)
	e.seed("beta", 6)
	require.Len(t, e.discover(t), 4)
}

func TestAllClusters(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(o *Config) { o.Clusters, o.AllClusters = nil, true })
	for i := range 120 {
		e.aws.addCluster(fmt.Sprintf("empty-%03d", i), nil)
	}
	e.seed("alpha", 3)
	e.seed("beta", 2)
	require.Len(t, e.discover(t), 5)
	require.Equal(t, 2, e.aws.callCounts()["ListClusters"], "pages of 100")
	require.Equal(t, 2, e.aws.callCounts()["DescribeClusters"], "batches of 100")

	// Clusters that cannot be listed: the last list is used.
	e.aws.setFail("ListClusters", errInjected)
	groups, err := e.src.Discover(context.Background())
	require.ErrorIs(t, err, errInjected)
	require.Len(t, groups, 5)
	e.aws.setFail("ListClusters", nil)

	// A deleted cluster takes its targets with it.
	e.aws.removeCluster("beta")
	require.Len(t, e.discover(t), 3)
	require.NotContains(t, e.src.clusters, clusterARN("beta"))
}

func TestNoClusterListYet(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(o *Config) { o.Clusters, o.AllClusters = nil, true })
	e.aws.setFail("ListClusters", errInjected)
	groups, err := e.src.Discover(context.Background())
	require.ErrorIs(t, err, errInjected)
	require.Nil(t, groups, "nothing to vouch for")
}

func TestClientSideLimits(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(o *Config) { o.API = APILimits{RequestsPerSecond: 50, Burst: 1, Concurrency: 2} })
	e.aws.delay = 5 * time.Millisecond
	e.aws.addCluster("prod", nil)
	for i := range 11 {
		def := e.aws.addTaskDef(fmt.Sprintf("fam-%d", i), awstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100")))
		e.aws.runTask(run{cluster: "prod", taskDef: def, launchType: awstypes.LaunchTypeFargate})
	}
	start := time.Now()
	require.Len(t, e.discover(t), 11)
	// 11 DescribeTaskDefinition calls at 50/s with a burst of 1 take at least 200 ms.
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	require.LessOrEqual(t, e.aws.maxInFlight, 2)
	require.Positive(t, testutil.ToFloat64(e.src.limits.wait.WithLabelValues("ecs_task_definition_read")))
}

func TestBadRulesAreRejected(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Clusters = []string{"prod"}
	cfg.PortNames.Pattern = "metrics("
	cfg.Matchers = []Matcher{{Service: "[", Path: "nope", Scheme: "ftp"}, {Ports: []int{70000}}}
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{"port name pattern", "matcher 1", "service pattern", "no ports", `path "nope"`, "ftp", "matcher 2", "70000"} {
		require.ErrorContains(t, err, want)
	}
	require.False(t, strings.Contains(err.Error(), "matcher 3"))
	require.Equal(t, `ecs port name pattern "metrics(": error parsing regexp: missing closing ): `+"`^(?:metrics()$`"+`
ecs matcher 1: service pattern "[": error parsing regexp: missing closing ]: `+"`[)$`"+`
ecs matcher 1: no ports
ecs matcher 1: path "nope" does not start with /
ecs matcher 1: scheme "ftp" is neither http nor https
ecs matcher 2: port 70000 is not a port number (1-65535)`, err.Error(), "every bad setting named, in a fixed order")
	for range 20 {
		require.EqualError(t, cfg.Validate(), err.Error(), "the same errors in the same order every time")
	}

	_, err = New(newFakeAWS(), newFakeAWS(), cfg, Options{})
	require.ErrorContains(t, err, "not validated", "New takes only a validated configuration")
}

func TestIPv6OnlyTask(t *testing.T) {
	t.Parallel()
	rules, err := compileRules(DefaultConfig())
	require.NoError(t, err)
	def := &awstypes.TaskDefinition{Family: aws.String("v6"), NetworkMode: awstypes.NetworkModeAwsvpc,
		ContainerDefinitions: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("9100"))}}
	task := &awstypes.Task{LastStatus: aws.String("RUNNING"), Attachments: []awstypes.Attachment{{
		Type: aws.String("ElasticNetworkInterface"), Details: []awstypes.KeyValuePair{{Name: aws.String("ipv6Address"), Value: aws.String("2600:1f18::5")}},
	}}}
	groups, skips := buildTargets(taskFacts{task: task, def: def}, rules, &labeler{})
	require.Empty(t, skips)
	require.Equal(t, []string{"[2600:1f18::5]:9100/metrics"}, endpoints(groups))
}
