// Package ecs discovers targets with the Amazon ECS API: the containers of the running tasks of
// chosen clusters (or of every cluster) that a rule marks as metrics endpoints — a docker label,
// a named port mapping, or a matcher on service, task-definition family and container — each
// resolved to the address Prometheus must use (awsvpc and Fargate: the task's ENI IP and the
// container port; bridge: the EC2 instance's IP and the bound host port, dynamic ports included;
// host: the EC2 instance's IP and the port).
//
// What AWS says about a resource that cannot change is read once. A running task keeps its
// address, container instance and bindings for its life, and a task definition never changes:
// so every cycle calls ListTasks (one page per 100 tasks) per cluster, and describes only what it
// has not seen:
//
//   - DescribeTasks for task ARNs not seen before (100 per call, with tags), and again for a task
//     after TaskRefreshInterval, which refreshes its health and last status;
//   - DescribeTaskDefinition for task-definition ARNs not seen before, never again;
//   - DescribeContainerInstances (100 per call) and EC2 DescribeInstances (100 per call) for
//     container instances and EC2 instances not seen within InstanceRefreshInterval;
//   - DescribeServices (10 per call, with tags) and DescribeClusters (100 per call, with tags)
//     for services and clusters not read within MetadataRefreshInterval, as tags change;
//   - ListClusters pages every cycle in all-clusters mode.
//
// A task that is not RUNNING yet, or whose awsvpc address or bridge bindings are not there yet,
// is skipped with a reason and described again next cycle. Every API family has its own
// client-side rate limit and cap on calls in flight; the SDK's retryer backs off on throttling.
//
// Failures never cost good data: a cluster whose tasks cannot be listed keeps its last targets, a
// task whose description, task definition, service or instance cannot be read keeps its last
// targets, and metadata that cannot be refreshed is used stale. A container whose labels are
// unusable (a non-numeric port) is skipped alone, with a reason.
package ecs

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	awstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Name is the source's name in metrics, logs and the __meta_ecs_sd_source label.
const Name = "ecs"

// API maxima per call.
const (
	pageSize                      = 100 // ListClusters, ListTasks
	describeTasksMax              = 100
	describeContainerInstancesMax = 100
	describeServicesMax           = 10
	describeClustersMax           = 100
	describeInstancesMax          = 100 // instance ids in one DescribeInstances filter
)

// Cache names, in the cache-hit metrics.
const (
	cacheTask              = "task"
	cacheTaskDefinition    = "task_definition"
	cacheContainerInstance = "container_instance"
	cacheEC2Instance       = "ec2_instance"
	cacheService           = "service"
	cacheCluster           = "cluster"
)

// Options are what the source needs beside its Config.
type Options struct {
	// Pair is the account and region the source discovers in: every target is labelled with
	// them (targets.LabelAccountID, targets.LabelRegion and __meta_ecs_region, when set), and so
	// are the source's shared metrics when they are labelled by pair.
	Pair refresh.Pair
	// Account, when Pair has no account, reads it (ecs-sd's own account id, from STS): at the
	// start of the first discoveries, until it can (see refresh.Place).
	Account func(context.Context) (string, error)
	Logger  *slog.Logger
	// Metrics are the metrics every source shares; Registerer receives the source's own.
	Metrics    *refresh.Metrics
	Registerer prometheus.Registerer
	// now is the clock, for tests.
	now func() time.Time
}

// Source is the ECS API source.
type Source struct {
	ecs    ECSAPI
	ec2    EC2API
	cfg    Config
	opts   Options
	place  *refresh.Place
	rules  compiledRules
	limits *limits

	mu          sync.Mutex // one Discover at a time
	cacheMu     sync.Mutex // guards the maps below while a phase's calls run
	lastEntries []string   // the last cluster list read in all-clusters mode
	clusters    map[string]*clusterState
	clusterInfo map[string]*cached[clusterInfo] // by cluster entry
	taskDefs    map[string]*awstypes.TaskDefinition
	ciEC2       map[string]*cached[string] // container-instance ARN -> EC2 instance id ("" when none)
	instances   map[string]*cached[ec2Instance]
	services    map[serviceKey]*cached[serviceInfo]
	collisions  refresh.Once // label-name collisions, logged when they appear

	curMu   sync.Mutex       // guards current alone, so that Current never waits for a discovery
	current []*targets.Group // every target held: the last discovery's, with the tasks applied since

	*metrics
}

// clusterState is what the source holds for one cluster entry (a name or ARN, as configured or
// listed).
type clusterState struct {
	tasks  map[string]*taskState // by task ARN: described tasks that are still listed
	groups []*targets.Group      // the targets of the last cycle, kept when ListTasks fails
}

type taskState struct {
	task      awstypes.Task
	described time.Time
	retry     bool             // a passing state (not running yet, no bindings yet): describe again next cycle
	groups    []*targets.Group // last built, kept when something the task needs cannot be read
}

type serviceKey struct{ cluster, name string }

type cached[T any] struct {
	value T
	read  time.Time
}

// fresh reports whether c holds a value read less than ttl ago (any value when ttl is 0).
func fresh[T any](c *cached[T], ttl model.Duration, now time.Time) bool {
	return c != nil && (ttl <= 0 || now.Sub(c.read) < time.Duration(ttl))
}

// New creates the source from cfg, which Config.Validate has checked and compiled.
func New(ecsAPI ECSAPI, ec2API EC2API, cfg Config, opts Options) (*Source, error) {
	if cfg.rules == nil {
		return nil, errors.New("ecs: the configuration was not validated")
	}
	opts.Logger = refresh.LoggerOrDiscard(opts.Logger)
	if opts.now == nil {
		opts.now = time.Now
	}
	s := &Source{
		cfg:         cfg,
		opts:        opts,
		place:       refresh.NewPlace(opts.Pair, opts.Account),
		rules:       *cfg.rules,
		clusters:    map[string]*clusterState{},
		clusterInfo: map[string]*cached[clusterInfo]{},
		taskDefs:    map[string]*awstypes.TaskDefinition{},
		ciEC2:       map[string]*cached[string]{},
		instances:   map[string]*cached[ec2Instance]{},
		services:    map[serviceKey]*cached[serviceInfo]{},
		metrics:     newMetrics(opts.Metrics, opts.Pair, opts.Registerer, opts.Logger),
	}
	s.limits = newLimits(cfg.API, s.wait)
	s.ecs = limitedECS{api: ecsAPI, l: s.limits}
	s.ec2 = limitedEC2{api: ec2API, l: s.limits}
	return s, nil
}

// Name implements refresh.Source.
func (s *Source) Name() string { return Name }

// Pair implements refresh.Paired: the pair as configured, whose account is empty when it is read
// by the first discovery (refresh.Place): the loop's key of the source never changes. Targets
// carry the account once read.
func (s *Source) Pair() refresh.Pair { return s.opts.Pair }

// Location implements refresh.Located: the pair with its account once read.
func (s *Source) Location() refresh.Pair { return s.place.Pair() }

// clusterRun is one cluster's share of a cycle.
type clusterRun struct {
	entry   string
	state   *clusterState
	listed  []string
	listErr error
	due     []string // task ARNs to describe
}

// Discover implements refresh.Source.
func (s *Source) Discover(ctx context.Context) ([]*targets.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.place.Resolve(ctx); err != nil {
		return nil, err
	}
	s.limits.takeCalls()
	defer s.publishCalls()
	now := s.opts.now()

	var errs []error
	entries, err := s.clusterEntries(ctx)
	if err != nil {
		if entries == nil {
			return nil, err
		}
		errs = append(errs, err)
	}
	errs = append(errs, s.readClusters(ctx, entries, now))
	runs := s.startRuns(entries)
	errs = append(errs, s.listTasks(ctx, runs, now))
	errs = append(errs, s.describeTasks(ctx, runs, now))
	errs = append(errs, s.readFacts(ctx, runs, now))

	s.targetsGauge.Reset()
	s.tasksGauge.Reset()
	out := []*targets.Group{}
	for _, run := range runs {
		if run.listErr == nil {
			run.state.groups = s.build(ctx, run)
			s.tasksGauge.WithLabelValues(arnName(run.entry)).Set(float64(len(run.listed)))
		}
		s.targetsGauge.WithLabelValues(arnName(run.entry)).Set(float64(len(run.state.groups)))
		out = append(out, run.state.groups...)
	}
	s.evict()
	s.endCycle(ctx)
	s.setCurrent(out)
	return out, errors.Join(errs...)
}

func (s *Source) publishCalls() {
	for op, n := range s.limits.takeCalls() {
		s.lastCalls.WithLabelValues(op).Set(float64(n))
	}
}

// clusterEntries returns the clusters to discover: the configured ones, or every cluster of the
// region. When the clusters cannot be listed it returns the last list with the error.
func (s *Source) clusterEntries(ctx context.Context) ([]string, error) {
	if !s.cfg.AllClusters {
		return s.cfg.Clusters, nil
	}
	var arns []string
	p := awsecs.NewListClustersPaginator(s.ecs, &awsecs.ListClustersInput{MaxResults: aws.Int32(pageSize)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			e := &refresh.OpError{Op: opListClusters, Err: err}
			s.opts.Logger.Error("Cannot list ECS clusters; using the last list", append(e.LogAttrs(), "clusters", len(s.lastEntries))...)
			return s.lastEntries, e
		}
		arns = append(arns, page.ClusterArns...)
	}
	if arns == nil {
		arns = []string{}
	}
	s.lastEntries = arns
	return arns, nil
}

// startRuns prepares this cycle's clusters and forgets the clusters no longer discovered. Entries
// that name one cluster (its name and its ARN) make one run, or every task would be a target
// twice.
func (s *Source) startRuns(entries []string) []*clusterRun {
	runs := make([]*clusterRun, 0, len(entries))
	keep := map[string]bool{}
	arns := map[string]bool{}
	for _, e := range entries {
		if keep[e] {
			continue
		}
		keep[e] = true
		if info := s.clusterInfo[e]; info != nil && info.value.found {
			if arns[info.value.arn] {
				s.opts.Logger.Debug("ECS cluster given twice; discovered once", "cluster", e, "arn", info.value.arn)
				delete(s.clusters, e)
				continue
			}
			arns[info.value.arn] = true
		}
		st := s.clusters[e]
		if st == nil {
			st = &clusterState{tasks: map[string]*taskState{}}
			s.clusters[e] = st
		}
		runs = append(runs, &clusterRun{entry: e, state: st})
	}
	for e := range s.clusters {
		if !keep[e] {
			delete(s.clusters, e)
		}
	}
	for e := range s.clusterInfo {
		if !keep[e] {
			delete(s.clusterInfo, e)
		}
	}
	return runs
}

// hit counts a cache lookup.
func (s *Source) hit(cache string, ok bool) {
	if ok {
		s.cacheHits.WithLabelValues(cache).Inc()
	} else {
		s.cacheMisses.WithLabelValues(cache).Inc()
	}
}

// parallel runs fn on every item at once (the API families cap the calls in flight) and joins
// the errors.
func parallel[T any](items []T, fn func(T) error) error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() { errs[i] = fn(it) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// batch is up to an API maximum of keys for one call about one cluster.
type batch struct {
	cluster string
	keys    []string
}

func batches(cluster string, keys []string, size int) []batch {
	var out []batch
	for chunk := range slices.Chunk(keys, size) {
		out = append(out, batch{cluster, chunk})
	}
	return out
}

// failed logs a failed call about r and returns it as an error that names its operation and
// resource.
func (s *Source) failed(op string, r refresh.Resource, err error) error {
	e := &refresh.OpError{Op: op, Resource: r, Err: err}
	s.opts.Logger.Warn("ECS discovery call failed; keeping last-known data", e.LogAttrs()...)
	return e
}

// clusterResource is the resource of a call about one cluster; "" (a call about several) gives
// none.
func clusterResource(entry string) refresh.Resource {
	if entry == "" {
		return refresh.Resource{}
	}
	return refresh.Resource{Kind: "cluster", Name: entry}
}

// readClusters describes the clusters whose name, ARN and tags are not fresh.
func (s *Source) readClusters(ctx context.Context, entries []string, now time.Time) error {
	var due []string
	for _, e := range entries {
		ok := fresh(s.clusterInfo[e], s.cfg.MetadataRefreshInterval, now)
		s.hit(cacheCluster, ok)
		if !ok {
			due = append(due, e)
		}
	}
	return parallel(batches("", due, describeClustersMax), func(b batch) error {
		out, err := s.ecs.DescribeClusters(ctx, &awsecs.DescribeClustersInput{Clusters: b.keys, Include: []awstypes.ClusterField{awstypes.ClusterFieldTags}})
		if err != nil {
			return s.failed(opDescribeClusters, refresh.Resource{}, err)
		}
		s.cacheMu.Lock()
		defer s.cacheMu.Unlock()
		for _, e := range b.keys {
			info := clusterInfo{}
			for _, c := range out.Clusters {
				if e == aws.ToString(c.ClusterArn) || e == aws.ToString(c.ClusterName) {
					info = clusterInfo{arn: aws.ToString(c.ClusterArn), name: aws.ToString(c.ClusterName), tags: ecsTags(c.Tags), found: true}
				}
			}
			if !info.found {
				s.opts.Logger.Warn("ECS cluster not found", "cluster", e)
			}
			s.clusterInfo[e] = &cached[clusterInfo]{info, now}
		}
		return nil
	})
}

// listTasks lists the RUNNING tasks of every cluster, forgets the tasks no longer listed and
// picks the tasks to describe: those not seen before and those due for a refresh.
func (s *Source) listTasks(ctx context.Context, runs []*clusterRun, now time.Time) error {
	err := parallel(runs, func(run *clusterRun) error {
		p := awsecs.NewListTasksPaginator(s.ecs, &awsecs.ListTasksInput{
			Cluster: aws.String(run.entry), DesiredStatus: awstypes.DesiredStatusRunning, MaxResults: aws.Int32(pageSize),
		})
		var arns []string
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				run.listErr = s.failed(opListTasks, clusterResource(run.entry), err)
				return run.listErr
			}
			arns = append(arns, page.TaskArns...)
		}
		run.listed = arns
		return nil
	})
	for _, run := range runs {
		if run.listErr != nil {
			continue
		}
		listed := make(map[string]bool, len(run.listed))
		for _, arn := range run.listed {
			listed[arn] = true
			ts := run.state.tasks[arn]
			ok := ts != nil && !ts.retry && (s.cfg.TaskRefreshInterval <= 0 || now.Sub(ts.described) < time.Duration(s.cfg.TaskRefreshInterval))
			s.hit(cacheTask, ok)
			if !ok {
				run.due = append(run.due, arn)
			}
		}
		maps.DeleteFunc(run.state.tasks, func(arn string, _ *taskState) bool { return !listed[arn] })
	}
	return err
}

// describeTasks describes the due tasks of every cluster, 100 per call.
func (s *Source) describeTasks(ctx context.Context, runs []*clusterRun, now time.Time) error {
	var all []batch
	state := map[string]*clusterState{}
	for _, run := range runs {
		all = append(all, batches(run.entry, run.due, describeTasksMax)...)
		state[run.entry] = run.state
	}
	return parallel(all, func(b batch) error {
		out, err := s.ecs.DescribeTasks(ctx, &awsecs.DescribeTasksInput{
			Cluster: aws.String(b.cluster), Tasks: b.keys, Include: []awstypes.TaskField{awstypes.TaskFieldTags},
		})
		if err != nil {
			return s.failed(opDescribeTasks, clusterResource(b.cluster), err)
		}
		got := map[string]awstypes.Task{}
		for _, t := range out.Tasks {
			got[aws.ToString(t.TaskArn)] = t
		}
		for _, f := range out.Failures {
			s.opts.Logger.Debug("ECS task not described", "cluster", b.cluster, "task", aws.ToString(f.Arn), "reason", aws.ToString(f.Reason))
		}
		s.cacheMu.Lock()
		defer s.cacheMu.Unlock()
		tasks := state[b.cluster].tasks
		for _, arn := range b.keys { // AWS answers only for the ARNs asked; some emulators do not
			t, ok := got[arn]
			if !ok {
				delete(tasks, arn)
				continue
			}
			ts := &taskState{task: t, described: now}
			if prev := tasks[arn]; prev != nil {
				ts.groups = prev.groups
			}
			tasks[arn] = ts
		}
		return nil
	})
}

// cachedTasks calls fn for every task held for a cluster whose tasks were listed this cycle.
func cachedTasks(runs []*clusterRun, fn func(run *clusterRun, t *awstypes.Task)) {
	for _, run := range runs {
		if run.listErr != nil {
			continue
		}
		for _, ts := range run.state.tasks {
			fn(run, &ts.task)
		}
	}
}

// readTaskDefinitions describes the task definitions not seen before, once each.
func (s *Source) readTaskDefinitions(ctx context.Context, runs []*clusterRun) error {
	need := map[string]bool{}
	cachedTasks(runs, func(_ *clusterRun, t *awstypes.Task) { need[aws.ToString(t.TaskDefinitionArn)] = true })
	var due []string
	for _, arn := range slices.Sorted(maps.Keys(need)) {
		_, ok := s.taskDefs[arn]
		s.hit(cacheTaskDefinition, ok)
		if !ok {
			due = append(due, arn)
		}
	}
	return parallel(due, func(arn string) error {
		out, err := s.ecs.DescribeTaskDefinition(ctx, &awsecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(arn)})
		if err != nil {
			return s.failed(opDescribeTaskDefinition, refresh.Resource{Kind: "task_definition", Name: arn}, err)
		}
		s.cacheMu.Lock()
		defer s.cacheMu.Unlock()
		s.taskDefs[arn] = out.TaskDefinition
		return nil
	})
}

// readContainerInstances describes the container instances (for their EC2 instance) that are
// not fresh, 100 per call.
func (s *Source) readContainerInstances(ctx context.Context, runs []*clusterRun, now time.Time) error {
	need := map[string]map[string]bool{}
	cachedTasks(runs, func(run *clusterRun, t *awstypes.Task) {
		if arn := aws.ToString(t.ContainerInstanceArn); arn != "" {
			if need[run.entry] == nil {
				need[run.entry] = map[string]bool{}
			}
			need[run.entry][arn] = true
		}
	})
	var all []batch
	for cluster, arns := range need {
		var due []string
		for _, arn := range slices.Sorted(maps.Keys(arns)) {
			ok := fresh(s.ciEC2[arn], s.cfg.InstanceRefreshInterval, now)
			s.hit(cacheContainerInstance, ok)
			if !ok {
				due = append(due, arn)
			}
		}
		all = append(all, batches(cluster, due, describeContainerInstancesMax)...)
	}
	return parallel(all, func(b batch) error {
		out, err := s.ecs.DescribeContainerInstances(ctx, &awsecs.DescribeContainerInstancesInput{Cluster: aws.String(b.cluster), ContainerInstances: b.keys})
		if err != nil {
			return s.failed(opDescribeContainerInstances, clusterResource(b.cluster), err)
		}
		for _, f := range out.Failures {
			s.opts.Logger.Warn("ECS container instance not described; its tasks keep their last targets", "cluster", b.cluster,
				"container_instance", aws.ToString(f.Arn), "reason", aws.ToString(f.Reason), "detail", aws.ToString(f.Detail))
		}
		// A container instance AWS did not answer for is not cached as "no EC2 instance": that
		// would cost its tasks their targets for a whole InstanceRefreshInterval. Its last value
		// (if any) is kept stale and it is asked for again next cycle.
		s.cacheMu.Lock()
		defer s.cacheMu.Unlock()
		for _, ci := range out.ContainerInstances {
			if arn := aws.ToString(ci.ContainerInstanceArn); slices.Contains(b.keys, arn) {
				s.ciEC2[arn] = &cached[string]{aws.ToString(ci.Ec2InstanceId), now}
			}
		}
		return nil
	})
}

// isEC2Instance reports whether id names an EC2 instance (not an ECS Anywhere managed instance).
func isEC2Instance(id string) bool { return strings.HasPrefix(id, "i-") }

// readInstances describes the EC2 instances of the container instances in use that are not
// fresh, 100 per call.
func (s *Source) readInstances(ctx context.Context, runs []*clusterRun, now time.Time) error {
	need := map[string]bool{}
	cachedTasks(runs, func(_ *clusterRun, t *awstypes.Task) {
		if ci := s.ciEC2[aws.ToString(t.ContainerInstanceArn)]; ci != nil && isEC2Instance(ci.value) {
			need[ci.value] = true
		}
	})
	var due []string
	for _, id := range slices.Sorted(maps.Keys(need)) {
		ok := fresh(s.instances[id], s.cfg.InstanceRefreshInterval, now)
		s.hit(cacheEC2Instance, ok)
		if !ok {
			due = append(due, id)
		}
	}
	return parallel(batches("", due, describeInstancesMax), func(b batch) error {
		found := map[string]ec2Instance{}
		p := ec2.NewDescribeInstancesPaginator(s.ec2, &ec2.DescribeInstancesInput{
			Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: b.keys}},
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return s.failed(opDescribeInstances, refresh.Resource{}, err)
			}
			for _, r := range page.Reservations {
				for _, i := range r.Instances {
					found[aws.ToString(i.InstanceId)] = ec2Facts(i)
				}
			}
		}
		// An instance the filter did not return is not cached as "no address" (EC2's read API is
		// eventually consistent): its last value (if any) is kept stale and it is asked for again.
		s.cacheMu.Lock()
		defer s.cacheMu.Unlock()
		for _, id := range b.keys {
			if inst, ok := found[id]; ok {
				s.instances[id] = &cached[ec2Instance]{inst, now}
			} else {
				s.opts.Logger.Warn("EC2 instance not found; its tasks keep their last targets", "instance", id)
			}
		}
		return nil
	})
}

func ec2Facts(i ec2types.Instance) ec2Instance {
	tags := map[string]string{}
	for _, t := range i.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return ec2Instance{
		privateIP:    aws.ToString(i.PrivateIpAddress),
		publicIP:     aws.ToString(i.PublicIpAddress),
		subnetID:     aws.ToString(i.SubnetId),
		instanceType: string(i.InstanceType),
		tags:         tags,
		found:        true,
	}
}

// readServices describes the services (ARN, status, tags) that are not fresh, 10 per call.
func (s *Source) readServices(ctx context.Context, runs []*clusterRun, now time.Time) error {
	need := map[string]map[string]bool{}
	cachedTasks(runs, func(run *clusterRun, t *awstypes.Task) {
		if name := serviceOf(aws.ToString(t.Group)); name != "" {
			if need[run.entry] == nil {
				need[run.entry] = map[string]bool{}
			}
			need[run.entry][name] = true
		}
	})
	var all []batch
	for cluster, names := range need {
		var due []string
		for _, name := range slices.Sorted(maps.Keys(names)) {
			ok := fresh(s.services[serviceKey{cluster, name}], s.cfg.MetadataRefreshInterval, now)
			s.hit(cacheService, ok)
			if !ok {
				due = append(due, name)
			}
		}
		all = append(all, batches(cluster, due, describeServicesMax)...)
	}
	return parallel(all, func(b batch) error {
		out, err := s.ecs.DescribeServices(ctx, &awsecs.DescribeServicesInput{
			Cluster: aws.String(b.cluster), Services: b.keys, Include: []awstypes.ServiceField{awstypes.ServiceFieldTags},
		})
		if err != nil {
			return s.failed(opDescribeServices, clusterResource(b.cluster), err)
		}
		s.cacheMu.Lock()
		defer s.cacheMu.Unlock()
		for _, name := range b.keys {
			s.services[serviceKey{b.cluster, name}] = &cached[serviceInfo]{serviceInfo{}, now}
		}
		for _, svc := range out.Services {
			if name := aws.ToString(svc.ServiceName); slices.Contains(b.keys, name) {
				info := serviceInfo{arn: aws.ToString(svc.ServiceArn), status: aws.ToString(svc.Status), tags: ecsTags(svc.Tags), found: true}
				s.services[serviceKey{b.cluster, name}] = &cached[serviceInfo]{info, now}
			}
		}
		return nil
	})
}

func ecsTags(tags []awstypes.Tag) map[string]string {
	out := make(map[string]string, len(tags))
	for _, t := range tags {
		out[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return out
}

// facts gathers what a task's targets are made of; missing names what could not be read.
func (s *Source) facts(cluster string, t *awstypes.Task) (f taskFacts, missing string) {
	f = taskFacts{task: t, pair: s.place.Pair(), service: serviceOf(aws.ToString(t.Group))}
	var ok bool
	if f.def, ok = s.taskDefs[aws.ToString(t.TaskDefinitionArn)]; !ok {
		return f, "task definition " + aws.ToString(t.TaskDefinitionArn)
	}
	info := s.clusterInfo[cluster]
	if info == nil {
		return f, "cluster " + cluster
	}
	f.cluster = info.value
	if f.service != "" {
		svc := s.services[serviceKey{cluster, f.service}]
		if svc == nil {
			return f, "service " + f.service
		}
		f.svc = &svc.value
	}
	if ciARN := aws.ToString(t.ContainerInstanceArn); ciARN != "" {
		ci := s.ciEC2[ciARN]
		if ci == nil {
			return f, "container instance " + ciARN
		}
		f.ec2ID = ci.value
		if isEC2Instance(f.ec2ID) {
			inst := s.instances[f.ec2ID]
			if inst == nil {
				return f, "EC2 instance " + f.ec2ID
			}
			f.instance = &inst.value
		}
	}
	return f, ""
}

// build returns the targets of a cluster's tasks. A task whose facts cannot all be read keeps
// its last targets; a task skipped for a passing state is described again next cycle, and keeps
// the targets it has meanwhile (also when that description fails).
func (s *Source) build(ctx context.Context, run *clusterRun) []*targets.Group {
	var out []*targets.Group
	l := &labeler{}
	for _, arn := range slices.Sorted(maps.Keys(run.state.tasks)) {
		ts := run.state.tasks[arn]
		f, missing := s.facts(run.entry, &ts.task)
		if missing != "" {
			s.opts.Logger.Debug("Task keeps its last targets: a resource it needs could not be read", "unreadable", missing, "cluster", run.entry, "task", arn, "targets", len(ts.groups))
			out = append(out, ts.groups...)
			continue
		}
		groups, skips := buildTargets(f, s.rules, l)
		ts.retry = s.reportSkips(run.entry, arn, aws.ToString(f.def.TaskDefinitionArn), skips)
		ts.groups = targets.Reuse(groups, ts.groups)
		out = append(out, ts.groups...)
	}
	s.reportCollisions(run.entry, l)
	return out
}

// evict forgets what no held task refers to any more.
func (s *Source) evict() {
	defs, cis, svcs, ids := map[string]bool{}, map[string]bool{}, map[serviceKey]bool{}, map[string]bool{}
	for entry, st := range s.clusters {
		for _, ts := range st.tasks {
			defs[aws.ToString(ts.task.TaskDefinitionArn)] = true
			if ci := aws.ToString(ts.task.ContainerInstanceArn); ci != "" {
				cis[ci] = true
				if c := s.ciEC2[ci]; c != nil {
					ids[c.value] = true
				}
			}
			if name := serviceOf(aws.ToString(ts.task.Group)); name != "" {
				svcs[serviceKey{entry, name}] = true
			}
		}
	}
	maps.DeleteFunc(s.taskDefs, func(arn string, _ *awstypes.TaskDefinition) bool { return !defs[arn] })
	maps.DeleteFunc(s.ciEC2, func(arn string, _ *cached[string]) bool { return !cis[arn] })
	maps.DeleteFunc(s.instances, func(id string, _ *cached[ec2Instance]) bool { return !ids[id] })
	maps.DeleteFunc(s.services, func(k serviceKey, _ *cached[serviceInfo]) bool { return !svcs[k] })
}
