//go:build integration

package ecs

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// fleet is 1 000 tasks in 100 services of one cluster, each service with a task definition of
// its own: even services awsvpc on Fargate (10 tasks each), odd services bridge on 10 container
// instances (one task per instance, dynamic host ports).
type fleet struct {
	cluster string
	network testenv.Network
	nodes   []string // container-instance ARNs
	defs    []string
	tasks   [][]string // per service, its task ARNs
}

const (
	fleetServices = 100
	fleetPerSvc   = 10
)

func loadFleet(tb testing.TB, f *testenv.ECSFixtures) *fleet {
	tb.Helper()
	fl := &fleet{cluster: "fleet", tasks: make([][]string, fleetServices)}
	f.CreateCluster(tb, fl.cluster, map[string]string{"env": "bench"})
	fl.network = f.CreateNetwork(tb, 10)
	for range fleetPerSvc {
		fl.nodes = append(fl.nodes, f.AddContainerInstance(tb, fl.cluster, fl.network).ARN)
	}
	for i := range fleetServices {
		var in *awsecs.RegisterTaskDefinitionInput
		if i%2 == 0 {
			in = taskDef(fmt.Sprintf("svc-%03d", i), ecstypes.NetworkModeAwsvpc, containerDef("app", exporterLabels("9100")))
		} else {
			in = taskDef(fmt.Sprintf("svc-%03d", i), ecstypes.NetworkModeBridge, containerDef("app", nil, portMap(8080, 0, "metrics")))
		}
		fl.defs = append(fl.defs, f.RegisterTaskDefinition(tb, in))
		f.CreateService(tb, fl.cluster, fmt.Sprintf("svc-%03d", i), fl.defs[i], map[string]string{"team": fmt.Sprint(i % 7)})
		fl.start(tb, f, i)
	}
	return fl
}

// start starts the tasks of service i.
func (fl *fleet) start(tb testing.TB, f *testenv.ECSFixtures, i int) {
	tb.Helper()
	group := aws.String(fmt.Sprintf("service:svc-%03d", i))
	var tasks []ecstypes.Task
	if i%2 == 0 {
		tasks = f.RunTask(tb, &awsecs.RunTaskInput{Cluster: &fl.cluster, TaskDefinition: &fl.defs[i], Count: aws.Int32(fleetPerSvc),
			LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: fl.network.AWSVPC(), Group: group})
	} else {
		tasks = f.StartTask(tb, &awsecs.StartTaskInput{Cluster: &fl.cluster, TaskDefinition: &fl.defs[i], ContainerInstances: fl.nodes, Group: group})
	}
	fl.tasks[i] = nil
	for _, t := range tasks {
		fl.tasks[i] = append(fl.tasks[i], aws.ToString(t.TaskArn))
	}
}

// replace stops every task of the given services and starts as many new ones, as a deployment
// would.
func (fl *fleet) replace(tb testing.TB, f *testenv.ECSFixtures, services []int) {
	tb.Helper()
	for _, i := range services {
		for _, arn := range fl.tasks[i] {
			f.StopTask(tb, fl.cluster, arn)
		}
		fl.start(tb, f, i)
	}
}

// refreshCost is what one refresh cost: calls per operation (as the proxy saw them), targets
// and time.
type refreshCost struct {
	calls   map[string]int
	targets int
	took    time.Duration
}

func (e *motoEnv) refresh(tb testing.TB, src *Source) refreshCost {
	tb.Helper()
	e.proxy.ResetCalls()
	start := time.Now()
	groups, err := src.Discover(tb.Context())
	took := time.Since(start)
	require.NoError(tb, err)
	calls := e.proxy.Calls()
	for op := range operations {
		require.Equal(tb, float64(calls[op]), testutil.ToFloat64(src.lastCalls.WithLabelValues(op)), "ecs_sd_ecs_api_calls_last_refresh{operation=%q}", op)
	}
	return refreshCost{calls: calls, targets: len(groups), took: took}
}

func (c refreshCost) String() string {
	var parts []string
	total := 0
	for _, op := range slices.Sorted(maps.Keys(c.calls)) {
		parts = append(parts, fmt.Sprintf("%d %s", c.calls[op], op))
		total += c.calls[op]
	}
	return fmt.Sprintf("| %d | %s | %d | %s |", total, strings.Join(parts, ", "), c.targets, c.took.Round(time.Millisecond))
}

// TestMotoCallsPerRefresh1000Tasks counts the AWS calls of a refresh over 1 000 tasks in 100
// services: the first, a second one of the unchanged cluster (which must describe nothing), and
// one after 10 % of the tasks were replaced. The table it logs is in docs/benchmarks.md.
func TestMotoCallsPerRefresh1000Tasks(t *testing.T) {
	t.Parallel()
	e := newMotoEnv(t, true)
	fl := loadFleet(t, e.f)
	src := e.source(t, []string{fl.cluster}, nil)

	first := e.refresh(t, src)
	require.Equal(t, 1000, first.targets)
	require.Equal(t, map[string]int{
		"ListTasks": 10, "DescribeTasks": 10, "DescribeTaskDefinition": 100, "DescribeServices": 10,
		"DescribeContainerInstances": 1, "DescribeInstances": 1, "DescribeClusters": 1,
	}, first.calls)

	steady := e.refresh(t, src)
	require.Equal(t, map[string]int{"ListTasks": 10}, steady.calls, "an unchanged cluster: no Describe call")
	require.Equal(t, 1000, steady.targets)

	var tenth []int
	for i := 0; i < fleetServices; i += 10 {
		tenth = append(tenth, i, i+1) // 5 awsvpc and 5 bridge services: 100 tasks
	}
	fl.replace(t, e.f, tenth[:10])
	changed := e.refresh(t, src)
	require.Equal(t, map[string]int{"ListTasks": 10, "DescribeTasks": 1}, changed.calls, "only the 100 new tasks are described")
	require.Equal(t, 1000, changed.targets)

	t.Logf("\n| refresh | AWS calls | by operation | targets | time |\n| --- | --- | --- | --- | --- |\n"+
		"| first %s\n| steady state %s\n| after 10 %% of tasks replaced %s", first, steady, changed)
}

// BenchmarkMotoRefresh1000Tasks measures a steady-state refresh over the 1 000-task fleet on
// moto (the time includes moto answering ListTasks) and reports its AWS calls.
func BenchmarkMotoRefresh1000Tasks(b *testing.B) {
	e := newMotoEnv(b, true)
	fl := loadFleet(b, e.f)
	src := e.source(b, []string{fl.cluster}, nil)
	first := e.refresh(b, src)
	e.proxy.ResetCalls()
	b.ResetTimer()
	for b.Loop() {
		if _, err := src.Discover(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(sumCalls(first.calls)), "calls-first-refresh")
	b.ReportMetric(float64(sumCalls(e.proxy.Calls()))/float64(b.N), "calls/refresh")
}
