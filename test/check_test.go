//go:build integration

package test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// checkFixtures creates on m what `ecs-sd check aws` calls every action on: the namespaces and
// Prometheus configuration parameters, a Cloud Map namespace with a service and an instance, an
// ECS cluster with an EC2 container instance running a service's task, and the events queue. It
// returns the check's arguments and the queue.
func checkFixtures(t *testing.T, m *testenv.Moto) ([]string, *testenv.EventQueue) {
	t.Helper()
	m.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "shop.local", ssmtypes.ParameterTypeString)
	m.PutParameter(t, "ECS-Prometheus-Configuration", "scrape_configs: []\n", ssmtypes.ParameterTypeString)
	ns := m.CreateHTTPNamespace(t, "shop.local")
	svc, _ := m.CreateService(t, ns, "cart", map[string]string{"METRICS_PORT": "8080"})
	m.RegisterTask(t, svc, testenv.Task{ID: "cart-1", IPv4: "10.0.1.10", Port: 8080, Cluster: "shop", Service: "cart", Family: "cart"})

	f := m.ECS(t)
	network := f.CreateNetwork(t, 1)
	f.CreateCluster(t, "shop", nil)
	instance := f.AddContainerInstance(t, "shop", network)
	def := f.RegisterTaskDefinition(t, &awsecs.RegisterTaskDefinitionInput{
		Family: aws.String("cart"), NetworkMode: ecstypes.NetworkModeBridge,
		ContainerDefinitions: []ecstypes.ContainerDefinition{{
			Name: aws.String("app"), Image: aws.String("cart:1"), Memory: aws.Int32(64),
			DockerLabels: map[string]string{"PROMETHEUS_EXPORTER_PORT": "8080"},
			PortMappings: []ecstypes.PortMapping{{ContainerPort: aws.Int32(8080), HostPort: aws.Int32(0)}},
		}},
	})
	f.CreateService(t, "shop", "cart", def, nil)
	tasks := f.StartTask(t, &awsecs.StartTaskInput{Cluster: aws.String("shop"), TaskDefinition: &def,
		ContainerInstances: []string{instance.ARN}, Group: aws.String("service:cart")})
	require.Len(t, tasks, 1)
	queue := m.CreateEventQueue(t, "ecs-sd-events", nil)
	return []string{"check", "aws", "--ecs.cluster", "shop", "--events.queue-url", queue.URL,
		"--aws.call-timeout=5s", "--aws.attempt-timeout=2s", "--log.level=warn"}, queue
}

// checkLine matches a line of `ecs-sd check aws`: status, action, and what follows.
var checkLine = regexp.MustCompile(`^(ok|denied|failed|skipped) {2}(\S+)(?: {2}(.*))?$`)

// checkLines returns the lines of the output by action: every line must have the shape of one.
func checkLines(t *testing.T, stdout string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		m := checkLine.FindStringSubmatch(line)
		require.NotNil(t, m, "line %q of:\n%s", line, stdout)
		out[m[2]] = append(out[m[2]], line)
	}
	return out
}

// everyAction is what `ecs-sd check aws` calls with Cloud Map (namespaces from SSM), ECS on a
// named cluster, events and the Prometheus configuration sync.
var everyAction = []string{
	"sts:GetCallerIdentity", "ssm:GetParameter",
	"servicediscovery:ListNamespaces", "servicediscovery:ListServices", "servicediscovery:GetService",
	"servicediscovery:ListTagsForResource", "servicediscovery:DiscoverInstances", "servicediscovery:ListInstances",
	"servicediscovery:GetInstancesHealthStatus",
	"ecs:DescribeClusters", "ecs:ListTasks", "ecs:DescribeTasks", "ecs:DescribeTaskDefinition",
	"ecs:DescribeContainerInstances", "ec2:DescribeInstances", "ecs:DescribeServices", "sqs:ReceiveMessage",
}

// TestCheckAWS: on moto every action the configuration needs is allowed (exit 0, one ok line
// each; the two parameters one line each); when one action is denied, its line says so with the
// statement to add, and the exit code is 1. No message of the queue is consumed.
func TestCheckAWS(t *testing.T) {
	t.Parallel()
	m := testenv.StartPatchedMoto(t)
	args, queue := checkFixtures(t, m)
	message := queue.Send(t, `{"detail-type":"ECS Task State Change"}`)

	code, stdout, stderr := run(t, m.Env(), args...)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	t.Logf("ecs-sd check aws on moto:\n%s", stdout)
	lines := checkLines(t, stdout)
	for _, action := range everyAction {
		require.NotEmpty(t, lines[action], "no line of %s in:\n%s", action, stdout)
		for _, l := range lines[action] {
			require.True(t, strings.HasPrefix(l, "ok  "+action), l)
		}
	}
	require.Len(t, lines["ssm:GetParameter"], 2, "the namespaces and the Prometheus configuration parameters")
	require.Contains(t, stdout, "ok  servicediscovery:DiscoverInstances  service cart")
	require.Contains(t, stdout, "ok  ecs:DescribeServices  service cart in cluster shop")
	require.Contains(t, stdout, "skipped  sqs:DeleteMessage  not called")

	proxy := testenv.NewProxy(t, m.URL)
	proxy.FailWhen(func(op string, _ []byte) bool { return op == "ListTasks" }, "AccessDeniedException")
	code, stdout, stderr = run(t, testenv.AWSEnv(proxy.URL), args...)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	t.Logf("ecs-sd check aws with ListTasks denied:\n%s", stdout)
	lines = checkLines(t, stdout)
	require.Equal(t, []string{`denied  ecs:ListTasks  cluster shop  AccessDeniedException: injected fault  add: ` +
		`{"Effect":"Allow","Action":"ecs:ListTasks","Resource":"*","Condition":{"ArnLike":{"ecs:cluster":"arn:aws:ecs:us-east-1:123456789012:cluster/shop"}}}`},
		lines["ecs:ListTasks"])
	require.True(t, strings.HasPrefix(lines["ecs:DescribeTasks"][0], "skipped  ecs:DescribeTasks  not tried: ecs:ListTasks failed"), lines["ecs:DescribeTasks"])
	require.True(t, strings.HasPrefix(lines["servicediscovery:ListServices"][0], "ok  "), "the other actions are checked still")
	require.Equal(t, 1, proxy.Calls()["ListTasks"], "one call: a denial is not retried")
	require.Zero(t, proxy.Calls()["DeleteMessage"])

	// The message received by both checks is there still, visible at once.
	got, err := queue.SQS.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: &queue.URL, MaxNumberOfMessages: 10})
	require.NoError(t, err)
	require.Len(t, got.Messages, 1)
	require.Equal(t, message, aws.ToString(got.Messages[0].MessageId))
}
