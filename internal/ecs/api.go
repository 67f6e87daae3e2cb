package ecs

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// ECSAPI is the part of the ECS client the source uses.
type ECSAPI interface {
	ListClusters(ctx context.Context, in *awsecs.ListClustersInput, optFns ...func(*awsecs.Options)) (*awsecs.ListClustersOutput, error)
	DescribeClusters(ctx context.Context, in *awsecs.DescribeClustersInput, optFns ...func(*awsecs.Options)) (*awsecs.DescribeClustersOutput, error)
	ListTasks(ctx context.Context, in *awsecs.ListTasksInput, optFns ...func(*awsecs.Options)) (*awsecs.ListTasksOutput, error)
	DescribeTasks(ctx context.Context, in *awsecs.DescribeTasksInput, optFns ...func(*awsecs.Options)) (*awsecs.DescribeTasksOutput, error)
	DescribeTaskDefinition(ctx context.Context, in *awsecs.DescribeTaskDefinitionInput, optFns ...func(*awsecs.Options)) (*awsecs.DescribeTaskDefinitionOutput, error)
	DescribeContainerInstances(ctx context.Context, in *awsecs.DescribeContainerInstancesInput, optFns ...func(*awsecs.Options)) (*awsecs.DescribeContainerInstancesOutput, error)
	DescribeServices(ctx context.Context, in *awsecs.DescribeServicesInput, optFns ...func(*awsecs.Options)) (*awsecs.DescribeServicesOutput, error)
}

// EC2API is the part of the EC2 client the source uses.
type EC2API interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// The operations the source calls, as they are named in metrics.
const (
	opListClusters               = "ListClusters"
	opDescribeClusters           = "DescribeClusters"
	opListTasks                  = "ListTasks"
	opDescribeTasks              = "DescribeTasks"
	opDescribeTaskDefinition     = "DescribeTaskDefinition"
	opDescribeContainerInstances = "DescribeContainerInstances"
	opDescribeServices           = "DescribeServices"
	opDescribeInstances          = "DescribeInstances"
)

// operations lists every operation with its API family: AWS throttles each family with its own
// token bucket (ECS: cluster reads, cluster-resource reads, service reads, task-definition reads;
// EC2: its non-mutating actions), so the source limits each family on its own too.
var operations = map[string]string{
	opListClusters:               "ecs_cluster_read",
	opDescribeClusters:           "ecs_cluster_read",
	opListTasks:                  "ecs_cluster_resource_read",
	opDescribeTasks:              "ecs_cluster_resource_read",
	opDescribeContainerInstances: "ecs_cluster_resource_read",
	opDescribeServices:           "ecs_service_read",
	opDescribeTaskDefinition:     "ecs_task_definition_read",
	opDescribeInstances:          "ec2_read",
}

// family limits the calls of one API family: at most concurrency in flight, at rate per second
// with bursts of burst.
type family struct {
	name    string
	limiter *rate.Limiter
	slots   chan struct{}
}

// limits applies the per-family limits to every call and counts the calls of the current
// refresh per operation.
type limits struct {
	families map[string]*family
	calls    map[string]*atomic.Int64
	wait     *prometheus.CounterVec
}

func newLimits(c APILimits, wait *prometheus.CounterVec) *limits {
	l := &limits{families: map[string]*family{}, calls: map[string]*atomic.Int64{}, wait: wait}
	limit := rate.Limit(c.RequestsPerSecond)
	if c.RequestsPerSecond <= 0 {
		limit = rate.Inf
	}
	for op, name := range operations {
		l.calls[op] = &atomic.Int64{}
		if l.families[name] == nil {
			l.families[name] = &family{name: name, limiter: rate.NewLimiter(limit, c.Burst), slots: make(chan struct{}, c.Concurrency)}
		}
	}
	return l
}

// do runs one call of op through its family's limits and counts it.
func do[T any](ctx context.Context, l *limits, op string, call func() (T, error)) (T, error) {
	f := l.families[operations[op]]
	start := time.Now()
	var zero T
	select {
	case f.slots <- struct{}{}:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	defer func() { <-f.slots }()
	if err := f.limiter.Wait(ctx); err != nil {
		return zero, err
	}
	l.wait.WithLabelValues(f.name).Add(time.Since(start).Seconds())
	l.calls[op].Add(1)
	return call()
}

// takeCalls returns the calls per operation since the last takeCalls and starts counting anew.
func (l *limits) takeCalls() map[string]int64 {
	out := make(map[string]int64, len(l.calls))
	for op, n := range l.calls {
		out[op] = n.Swap(0)
	}
	return out
}

// limitedECS is an ECSAPI whose every call goes through limits.
type limitedECS struct {
	api ECSAPI
	l   *limits
}

func (c limitedECS) ListClusters(ctx context.Context, in *awsecs.ListClustersInput, optFns ...func(*awsecs.Options)) (*awsecs.ListClustersOutput, error) {
	return do(ctx, c.l, opListClusters, func() (*awsecs.ListClustersOutput, error) { return c.api.ListClusters(ctx, in, optFns...) })
}

func (c limitedECS) DescribeClusters(ctx context.Context, in *awsecs.DescribeClustersInput, optFns ...func(*awsecs.Options)) (*awsecs.DescribeClustersOutput, error) {
	return do(ctx, c.l, opDescribeClusters, func() (*awsecs.DescribeClustersOutput, error) { return c.api.DescribeClusters(ctx, in, optFns...) })
}

func (c limitedECS) ListTasks(ctx context.Context, in *awsecs.ListTasksInput, optFns ...func(*awsecs.Options)) (*awsecs.ListTasksOutput, error) {
	return do(ctx, c.l, opListTasks, func() (*awsecs.ListTasksOutput, error) { return c.api.ListTasks(ctx, in, optFns...) })
}

func (c limitedECS) DescribeTasks(ctx context.Context, in *awsecs.DescribeTasksInput, optFns ...func(*awsecs.Options)) (*awsecs.DescribeTasksOutput, error) {
	return do(ctx, c.l, opDescribeTasks, func() (*awsecs.DescribeTasksOutput, error) { return c.api.DescribeTasks(ctx, in, optFns...) })
}

func (c limitedECS) DescribeTaskDefinition(ctx context.Context, in *awsecs.DescribeTaskDefinitionInput, optFns ...func(*awsecs.Options)) (*awsecs.DescribeTaskDefinitionOutput, error) {
	return do(ctx, c.l, opDescribeTaskDefinition, func() (*awsecs.DescribeTaskDefinitionOutput, error) {
		return c.api.DescribeTaskDefinition(ctx, in, optFns...)
	})
}

func (c limitedECS) DescribeContainerInstances(ctx context.Context, in *awsecs.DescribeContainerInstancesInput, optFns ...func(*awsecs.Options)) (*awsecs.DescribeContainerInstancesOutput, error) {
	return do(ctx, c.l, opDescribeContainerInstances, func() (*awsecs.DescribeContainerInstancesOutput, error) {
		return c.api.DescribeContainerInstances(ctx, in, optFns...)
	})
}

func (c limitedECS) DescribeServices(ctx context.Context, in *awsecs.DescribeServicesInput, optFns ...func(*awsecs.Options)) (*awsecs.DescribeServicesOutput, error) {
	return do(ctx, c.l, opDescribeServices, func() (*awsecs.DescribeServicesOutput, error) { return c.api.DescribeServices(ctx, in, optFns...) })
}

// limitedEC2 is an EC2API whose every call goes through limits.
type limitedEC2 struct {
	api EC2API
	l   *limits
}

func (c limitedEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	return do(ctx, c.l, opDescribeInstances, func() (*ec2.DescribeInstancesOutput, error) { return c.api.DescribeInstances(ctx, in, optFns...) })
}
