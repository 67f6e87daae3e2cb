package ecs

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// Tests of how the source reads what real AWS answers, where moto and the fake differ from it.

func TestENIAddressFromEveryPlaceAWSPutsIt(t *testing.T) {
	t.Parallel()
	rules, err := compileRules(DefaultConfig())
	require.NoError(t, err)
	def := &awstypes.TaskDefinition{Family: aws.String("vpc"), NetworkMode: awstypes.NetworkModeAwsvpc,
		ContainerDefinitions: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("9100"))}}
	detail := func(kv ...string) []awstypes.Attachment {
		var d []awstypes.KeyValuePair
		for i := 0; i < len(kv); i += 2 {
			d = append(d, awstypes.KeyValuePair{Name: aws.String(kv[i]), Value: aws.String(kv[i+1])})
		}
		return []awstypes.Attachment{{Type: aws.String("ElasticNetworkInterface"), Status: aws.String("ATTACHED"), Details: d}}
	}
	cases := []struct {
		name        string
		attachments []awstypes.Attachment
		interfaces  []awstypes.NetworkInterface
		want        string
	}{
		{name: "attachment IPv4", attachments: detail("networkInterfaceId", "eni-1", "subnetId", "subnet-1", "privateIPv4Address", "10.0.0.5"), want: "10.0.0.5:9100"},
		{name: "attachment ipv6Address", attachments: detail("ipv6Address", "2600:1f18::5"), want: "[2600:1f18::5]:9100"},
		{name: "attachment privateIPv6Address", attachments: detail("privateIPv6Address", "2600:1f18::6"), want: "[2600:1f18::6]:9100"},
		{name: "dual stack prefers IPv4", attachments: detail("privateIPv6Address", "2600:1f18::6", "privateIPv4Address", "10.0.0.7"), want: "10.0.0.7:9100"},
		{name: "container network interface only", interfaces: []awstypes.NetworkInterface{{AttachmentId: aws.String("a"), PrivateIpv4Address: aws.String("10.0.0.8")}}, want: "10.0.0.8:9100"},
		{name: "container network interface IPv6 only", interfaces: []awstypes.NetworkInterface{{Ipv6Address: aws.String("2600:1f18::9")}}, want: "[2600:1f18::9]:9100"},
		{name: "other attachments are ignored", attachments: []awstypes.Attachment{{Type: aws.String("Service Connect"), Details: []awstypes.KeyValuePair{
			{Name: aws.String("privateIPv4Address"), Value: aws.String("192.0.2.1")}}}}, want: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			task := &awstypes.Task{LastStatus: aws.String("RUNNING"), DesiredStatus: aws.String("RUNNING"), LaunchType: awstypes.LaunchTypeFargate,
				Attachments: tc.attachments, Containers: []awstypes.Container{{Name: aws.String("app"), NetworkInterfaces: tc.interfaces}}}
			groups, skips := buildTargets(taskFacts{task: task, def: def}, rules, &labeler{})
			if tc.want == "" {
				require.Empty(t, groups)
				require.Len(t, skips, 1)
				require.Equal(t, reasonNoIP, skips[0].reason)
				return
			}
			require.Empty(t, skips)
			require.Len(t, groups, 1)
			require.Equal(t, []string{tc.want}, groups[0].Targets)
		})
	}
}

func TestDrainingTaskIsNotATarget(t *testing.T) {
	t.Parallel()
	rules, err := compileRules(DefaultConfig())
	require.NoError(t, err)
	def := &awstypes.TaskDefinition{Family: aws.String("vpc"), NetworkMode: awstypes.NetworkModeAwsvpc,
		ContainerDefinitions: []awstypes.ContainerDefinition{containerDef("app", exporterLabels("9100"))}}
	// Listed with desiredStatus RUNNING, then stopped before DescribeTasks: lastStatus stays
	// RUNNING while the task drains.
	task := &awstypes.Task{LastStatus: aws.String("RUNNING"), DesiredStatus: aws.String("STOPPED"), Attachments: []awstypes.Attachment{{
		Type: aws.String("ElasticNetworkInterface"), Details: []awstypes.KeyValuePair{{Name: aws.String("privateIPv4Address"), Value: aws.String("10.0.0.5")}},
	}}}
	groups, skips := buildTargets(taskFacts{task: task, def: def}, rules, &labeler{})
	require.Empty(t, groups)
	require.Len(t, skips, 1)
	require.Equal(t, reasonNotRunning, skips[0].reason)
	require.Contains(t, skips[0].detail, "desired status STOPPED")

	for _, last := range []string{"PROVISIONING", "PENDING", "ACTIVATING", "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"} {
		task.LastStatus, task.DesiredStatus = aws.String(last), aws.String("RUNNING")
		groups, skips = buildTargets(taskFacts{task: task, def: def}, rules, &labeler{})
		require.Empty(t, groups, last)
		require.Equal(t, reasonNotRunning, skips[0].reason, last)
		require.True(t, skips[0].transient, last)
	}
}

func TestBridgePortRangeBindings(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(o *Config) {
		o.Matchers = []Matcher{{Container: "app", Ports: []int{9003}, Path: "/m"}}
	})
	e.aws.addCluster("prod", nil)
	ci := e.aws.addInstance("prod", "i-0abc", "10.0.0.10")
	pm := awstypes.PortMapping{ContainerPortRange: aws.String("9000-9010"), Protocol: awstypes.TransportProtocolTcp}
	def := e.aws.addTaskDef("ranges", awstypes.NetworkModeBridge, containerDef("app", exporterLabels("9005"), pm))
	arn := e.aws.runTask(run{cluster: "prod", taskDef: def, instance: ci, noBindings: true})
	e.aws.update(arn, func(t *awstypes.Task) {
		t.Containers[0].NetworkBindings = []awstypes.NetworkBinding{
			{BindIP: aws.String("0.0.0.0"), Protocol: awstypes.TransportProtocolUdp, ContainerPortRange: aws.String("9000-9010"), HostPortRange: aws.String("40000-40010")},
			{BindIP: aws.String("0.0.0.0"), Protocol: awstypes.TransportProtocolTcp, ContainerPortRange: aws.String("9000-9010"), HostPortRange: aws.String("32800-32810")},
			{BindIP: aws.String("::"), Protocol: awstypes.TransportProtocolTcp, ContainerPortRange: aws.String("9000-9010"), HostPortRange: aws.String("32800-32810")},
		}
	})
	require.Equal(t, []string{"10.0.0.10:32803/m", "10.0.0.10:32805/metrics"}, endpoints(e.discover(t)))
	require.Zero(t, e.skipped(reasonPortNotMapped))
}

func TestPassingStateKeepsTargetsThroughThrottling(t *testing.T) {
	t.Parallel()
	for _, refresh := range []int{10, 0} {
		t.Run(fmt.Sprintf("task refresh %d min", refresh), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, func(o *Config) { o.TaskRefreshInterval = model.Duration(time.Duration(refresh) * time.Minute) })
			e.aws.addCluster("prod", nil)
			ci := e.aws.addInstance("prod", "i-0abc", "10.0.0.10")
			// A non-essential sidecar that has not started has no bindings on a RUNNING task.
			def := e.aws.addTaskDef("fam", awstypes.NetworkModeBridge,
				containerDef("app", exporterLabels("8080"), portMap(8080, 0, "")),
				containerDef("sidecar", exporterLabels("9100"), portMap(9100, 0, "")))
			arn := e.aws.runTask(run{cluster: "prod", taskDef: def, instance: ci})
			e.aws.update(arn, func(t *awstypes.Task) { t.Containers[1].NetworkBindings = nil })
			require.Equal(t, []string{"10.0.0.10:32768/metrics"}, endpoints(e.discover(t)))
			require.Equal(t, 1.0, e.skipped(reasonNoBinding))

			throttled := errors.New("ThrottlingException: Rate exceeded")
			e.aws.setFail("DescribeTasks", throttled)
			e.aws.resetCalls()
			groups, err := e.src.Discover(context.Background())
			require.ErrorIs(t, err, throttled)
			require.Equal(t, 1, e.aws.callCounts()["DescribeTasks"], "the task is described again")
			require.Equal(t, []string{"10.0.0.10:32768/metrics"}, endpoints(groups), "a throttled DescribeTasks keeps the targets")
			e.aws.setFail("DescribeTasks", nil)

			e.aws.update(arn, func(t *awstypes.Task) {
				t.Containers[1].NetworkBindings = []awstypes.NetworkBinding{{ContainerPort: aws.Int32(9100), HostPort: aws.Int32(32900)}}
			})
			require.Equal(t, []string{"10.0.0.10:32768/metrics", "10.0.0.10:32900/metrics"}, endpoints(e.discover(t)))
			e.aws.resetCalls()
			e.discover(t)
			require.Zero(t, e.aws.callCounts()["DescribeTasks"], "a complete task is not described again")

			if refresh > 0 {
				// A refresh that is throttled keeps the targets too.
				e.now = e.now.Add(11 * time.Minute)
				e.aws.setFail("DescribeTasks", throttled)
				groups, err = e.src.Discover(context.Background())
				require.ErrorIs(t, err, throttled)
				require.Len(t, groups, 2)
			}
		})
	}
}

func TestTaskVanishedBetweenListAndDescribe(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	e.aws.addCluster("prod", nil)
	def := e.aws.addTaskDef("fam", awstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100")))
	kept := e.aws.runTask(run{cluster: "prod", taskDef: def, launchType: awstypes.LaunchTypeFargate})
	gone := e.aws.runTask(run{cluster: "prod", taskDef: def, launchType: awstypes.LaunchTypeFargate})
	e.aws.vanished[gone] = true
	groups := e.discover(t)
	require.Len(t, groups, 1)
	require.Equal(t, kept, string(groups[0].Labels[LabelTaskARN]))
	require.NotContains(t, e.src.clusters["prod"].tasks, gone)

	// Still listed next cycle: asked for again, and found once AWS answers for it.
	delete(e.aws.vanished, gone)
	e.aws.resetCalls()
	require.Len(t, e.discover(t), 2)
	require.Equal(t, 1, e.aws.callCounts()["DescribeTasks"])
}

func TestMissingInstancesAreAskedForAgain(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	e.aws.addCluster("prod", nil)
	def := e.aws.addTaskDef("fam", awstypes.NetworkModeBridge, containerDef("app", exporterLabels("8080"), portMap(8080, 0, "")))

	// DescribeContainerInstances answers MISSING for a container instance it does not know yet.
	ci := fmt.Sprintf("%scontainer-instance/prod/i-0late", arnPrefix)
	e.aws.runTask(run{cluster: "prod", taskDef: def, instance: ci})
	require.Empty(t, e.discover(t))
	require.Zero(t, e.skipped(reasonNoIP), "an unread container instance is not 'no EC2 instance'")
	require.Equal(t, ci, e.aws.addInstance("prod", "i-0late", "10.0.0.20"))
	require.Equal(t, []string{"10.0.0.20:32768/metrics"}, endpoints(e.discover(t)), "read again next cycle, not after InstanceRefreshInterval")

	// EC2 DescribeInstances does not return an instance: its last value is kept until it does.
	e.aws.mu.Lock()
	inst := e.aws.instances["i-0late"]
	delete(e.aws.instances, "i-0late")
	e.aws.mu.Unlock()
	e.now = e.now.Add(2 * time.Hour)
	require.Equal(t, []string{"10.0.0.20:32768/metrics"}, endpoints(e.discover(t)))
	e.aws.resetCalls()
	e.discover(t)
	require.Equal(t, 1, e.aws.callCounts()["DescribeInstances"], "asked for again")
	e.aws.mu.Lock()
	e.aws.instances["i-0late"] = inst
	e.aws.mu.Unlock()
	e.discover(t)
	e.aws.resetCalls()
	e.discover(t)
	require.Zero(t, e.aws.callCounts()["DescribeInstances"])
}

func TestClusterGivenByNameAndARNIsDiscoveredOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(o *Config) { o.Clusters = []string{"prod", clusterARN("prod")} })
	e.aws.addCluster("prod", nil)
	def := e.aws.addTaskDef("fam", awstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100")))
	e.aws.runTask(run{cluster: "prod", taskDef: def, launchType: awstypes.LaunchTypeFargate})
	require.Len(t, e.discover(t), 1)
	e.aws.resetCalls()
	require.Len(t, e.discover(t), 1)
	require.Equal(t, map[string]int{"ListTasks": 1}, e.aws.callCounts())
}
