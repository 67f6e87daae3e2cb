package ecs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	awstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-sd/ecs-sd/internal/harness/hold"
)

const (
	fakeRegion  = "us-east-1"
	fakeAccount = "123456789012"
	arnPrefix   = "arn:aws:ecs:" + fakeRegion + ":" + fakeAccount + ":"
)

var errInjected = errors.New("injected fault")

// fakeAWS is a small in-memory ECS and EC2 that pages and limits batches like AWS, and can be told
// to fail an operation for a key (cluster name, task-definition ARN) or to answer DescribeTasks
// with tasks of every cluster whose id is in an asked ARN, as moto does.
type fakeAWS struct {
	mu          sync.Mutex
	clusters    []fakeCluster
	tasks       map[string][]*awstypes.Task // cluster name -> tasks, in start order
	taskDefs    map[string]awstypes.TaskDefinition
	ciEC2       map[string]string // container-instance ARN -> EC2 instance id
	instances   map[string]ec2types.Instance
	services    map[string]awstypes.Service // "cluster/name" -> service
	nextPort    map[string]int32            // container-instance ARN -> next dynamic host port
	fail        map[string]error            // "Operation" or "Operation/key" -> error
	holds       *hold.Calls                 // by "Operation/key"
	calls       map[string]int
	looseTasks  bool            // DescribeTasks also answers with tasks not asked for (moto)
	vanished    map[string]bool // task ARNs ListTasks still lists but DescribeTasks answers MISSING for
	delay       time.Duration   // added to every call
	inFlight    int
	maxInFlight int
	serial      int
}

type fakeCluster struct {
	name string
	tags map[string]string
}

func newFakeAWS() *fakeAWS {
	return &fakeAWS{
		tasks: map[string][]*awstypes.Task{}, taskDefs: map[string]awstypes.TaskDefinition{}, ciEC2: map[string]string{},
		instances: map[string]ec2types.Instance{}, services: map[string]awstypes.Service{}, nextPort: map[string]int32{},
		fail: map[string]error{}, holds: hold.New(), calls: map[string]int{}, vanished: map[string]bool{},
	}
}

func clusterARN(name string) string { return arnPrefix + "cluster/" + name }

func awsTags(tags map[string]string) []awstypes.Tag {
	var out []awstypes.Tag
	for k, v := range tags {
		out = append(out, awstypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out
}

func (f *fakeAWS) addCluster(name string, tags map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clusters = append(f.clusters, fakeCluster{name, tags})
}

func (f *fakeAWS) removeCluster(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clusters = slices.DeleteFunc(f.clusters, func(c fakeCluster) bool { return c.name == name })
	delete(f.tasks, name)
}

func (f *fakeAWS) addTaskDef(family string, mode awstypes.NetworkMode, defs ...awstypes.ContainerDefinition) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	rev := 1
	for arn := range f.taskDefs {
		if strings.Contains(arn, "task-definition/"+family+":") {
			rev++
		}
	}
	arn := fmt.Sprintf("%stask-definition/%s:%d", arnPrefix, family, rev)
	f.taskDefs[arn] = awstypes.TaskDefinition{TaskDefinitionArn: aws.String(arn), Family: aws.String(family), Revision: int32(rev), NetworkMode: mode, ContainerDefinitions: defs}
	return arn
}

// addInstance registers an EC2 instance with private IP ip as a container instance of cluster.
func (f *fakeAWS) addInstance(cluster, ec2ID, ip string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	arn := fmt.Sprintf("%scontainer-instance/%s/%s", arnPrefix, cluster, ec2ID)
	f.ciEC2[arn] = ec2ID
	f.instances[ec2ID] = ec2types.Instance{
		InstanceId: aws.String(ec2ID), PrivateIpAddress: aws.String(ip), SubnetId: aws.String("subnet-ec2"),
		InstanceType: ec2types.InstanceTypeT3Small, Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String("node-" + ec2ID)}},
	}
	return arn
}

func (f *fakeAWS) addService(cluster, name string, tags map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.services[cluster+"/"+name] = awstypes.Service{
		ServiceName: aws.String(name), ServiceArn: aws.String(arnPrefix + "service/" + cluster + "/" + name),
		ClusterArn: aws.String(clusterARN(cluster)), Status: aws.String("ACTIVE"), Tags: awsTags(tags),
	}
}

// run describes a task to start.
type run struct {
	cluster, taskDef string
	group            string // "service:NAME" or "" for "family:FAMILY"
	instance         string // container-instance ARN; "" for Fargate
	launchType       awstypes.LaunchType
	lastStatus       string // "" for RUNNING
	noBindings       bool
	tags             map[string]string
}

// runTask starts a task: an awsvpc task gets an ENI address 10.1.x.y, a bridge task one dynamic
// host port per port mapping without a host port.
func (f *fakeAWS) runTask(r run) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serial++
	id := fmt.Sprintf("%032x", f.serial)
	arn := fmt.Sprintf("%stask/%s/%s", arnPrefix, r.cluster, id)
	def := f.taskDefs[r.taskDef]
	t := &awstypes.Task{
		TaskArn: aws.String(arn), ClusterArn: aws.String(clusterARN(r.cluster)), TaskDefinitionArn: aws.String(r.taskDef),
		DesiredStatus: aws.String("RUNNING"), LastStatus: aws.String("RUNNING"), LaunchType: awstypes.LaunchTypeEc2,
		Group: aws.String("family:" + aws.ToString(def.Family)), HealthStatus: awstypes.HealthStatusUnknown,
		AvailabilityZone: aws.String("us-east-1a"), Tags: awsTags(r.tags),
	}
	if r.group != "" {
		t.Group = aws.String(r.group)
	}
	if r.lastStatus != "" {
		t.LastStatus = aws.String(r.lastStatus)
	}
	if r.launchType != "" {
		t.LaunchType = r.launchType
	}
	if r.instance != "" {
		t.ContainerInstanceArn = aws.String(r.instance)
	}
	if def.NetworkMode == awstypes.NetworkModeAwsvpc || t.LaunchType == awstypes.LaunchTypeFargate {
		t.Attachments = []awstypes.Attachment{{Type: aws.String("ElasticNetworkInterface"), Details: []awstypes.KeyValuePair{
			{Name: aws.String("subnetId"), Value: aws.String("subnet-eni")},
			{Name: aws.String("privateIPv4Address"), Value: aws.String(fmt.Sprintf("10.1.%d.%d", f.serial/250, f.serial%250+1))},
		}}}
	}
	for _, cd := range def.ContainerDefinitions {
		c := awstypes.Container{Name: cd.Name, Image: cd.Image, TaskArn: aws.String(arn)}
		for _, pm := range cd.PortMappings {
			if r.noBindings || r.instance == "" || def.NetworkMode == awstypes.NetworkModeAwsvpc {
				continue
			}
			host := aws.ToInt32(pm.HostPort)
			if def.NetworkMode == awstypes.NetworkModeHost {
				host = aws.ToInt32(pm.ContainerPort)
			} else if host == 0 {
				host = 32768 + f.nextPort[r.instance]
				f.nextPort[r.instance]++
			}
			c.NetworkBindings = append(c.NetworkBindings, awstypes.NetworkBinding{ContainerPort: pm.ContainerPort, HostPort: aws.Int32(host), Protocol: awstypes.TransportProtocolTcp})
		}
		t.Containers = append(t.Containers, c)
	}
	f.tasks[r.cluster] = append(f.tasks[r.cluster], t)
	return arn
}

// update changes a running task in place.
func (f *fakeAWS) update(arn string, change func(*awstypes.Task)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tasks := range f.tasks {
		for _, t := range tasks {
			if aws.ToString(t.TaskArn) == arn {
				change(t)
			}
		}
	}
}

func (f *fakeAWS) stopTask(arn string) {
	f.update(arn, func(t *awstypes.Task) { t.DesiredStatus = aws.String("STOPPED") })
}

func (f *fakeAWS) setFail(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, key)
		return
	}
	f.fail[key] = err
}

func (f *fakeAWS) callCounts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.calls {
		out[k] = v
	}
	return out
}

func (f *fakeAWS) resetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = map[string]int{}
}

// enter counts a call, waits the delay (or holds the call when told to: holds) and returns the
// injected error for op or op/key.
func (f *fakeAWS) enter(ctx context.Context, op, key string) error {
	f.mu.Lock()
	f.calls[op]++
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	delay := f.delay
	err := f.fail[op]
	if err == nil {
		err = f.fail[op+"/"+key]
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	if held := f.holds.Wait(ctx, op+"/"+key); held != nil {
		return held
	}
	time.Sleep(delay)
	return err
}

// tooMany is the error AWS gives for a batch over its maximum.
func tooMany(what string, n, limit int) error {
	if n > limit {
		return fmt.Errorf("InvalidParameterException: %d %s, at most %d", n, what, limit)
	}
	return nil
}

func page[T any](items []T, token *string, maxResults *int32) ([]T, *string) {
	start, size := pageBounds(token, maxResults)
	end := min(start+size, len(items))
	if end < len(items) {
		return items[start:end], aws.String(strconv.Itoa(end))
	}
	return items[start:end], nil
}

// pageBounds returns the first item and the size of the page a request asks for.
func pageBounds(token *string, maxResults *int32) (start, size int) {
	if token != nil {
		start, _ = strconv.Atoi(*token)
	}
	size = 100
	if maxResults != nil {
		size = int(*maxResults)
	}
	return start, size
}

func (f *fakeAWS) cluster(nameOrARN string) (fakeCluster, bool) {
	for _, c := range f.clusters {
		if c.name == nameOrARN || clusterARN(c.name) == nameOrARN {
			return c, true
		}
	}
	return fakeCluster{}, false
}

func (f *fakeAWS) ListClusters(ctx context.Context, in *awsecs.ListClustersInput, _ ...func(*awsecs.Options)) (*awsecs.ListClustersOutput, error) {
	if err := f.enter(ctx, opListClusters, ""); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var arns []string
	for _, c := range f.clusters {
		arns = append(arns, clusterARN(c.name))
	}
	items, next := page(arns, in.NextToken, in.MaxResults)
	return &awsecs.ListClustersOutput{ClusterArns: items, NextToken: next}, nil
}

func (f *fakeAWS) DescribeClusters(ctx context.Context, in *awsecs.DescribeClustersInput, _ ...func(*awsecs.Options)) (*awsecs.DescribeClustersOutput, error) {
	if err := f.enter(ctx, opDescribeClusters, ""); err != nil {
		return nil, err
	}
	if err := tooMany("clusters", len(in.Clusters), describeClustersMax); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &awsecs.DescribeClustersOutput{}
	for _, name := range in.Clusters {
		c, ok := f.cluster(name)
		if !ok {
			out.Failures = append(out.Failures, awstypes.Failure{Arn: aws.String(name), Reason: aws.String("MISSING")})
			continue
		}
		cl := awstypes.Cluster{ClusterName: aws.String(c.name), ClusterArn: aws.String(clusterARN(c.name)), Status: aws.String("ACTIVE")}
		if slices.Contains(in.Include, awstypes.ClusterFieldTags) {
			cl.Tags = awsTags(c.tags)
		}
		out.Clusters = append(out.Clusters, cl)
	}
	return out, nil
}

func (f *fakeAWS) ListTasks(ctx context.Context, in *awsecs.ListTasksInput, _ ...func(*awsecs.Options)) (*awsecs.ListTasksOutput, error) {
	f.mu.Lock()
	c, ok := f.cluster(aws.ToString(in.Cluster))
	f.mu.Unlock()
	if err := f.enter(ctx, opListTasks, c.name); err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("ClusterNotFoundException: cluster not found")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Only the page's ARNs are copied, so that listing 10 000 tasks costs the benchmarks little.
	start, size := pageBounds(in.NextToken, in.MaxResults)
	out := &awsecs.ListTasksOutput{}
	n := 0
	for _, t := range f.tasks[c.name] {
		if in.DesiredStatus != "" && aws.ToString(t.DesiredStatus) != string(in.DesiredStatus) {
			continue
		}
		switch {
		case n >= start+size:
			out.NextToken = aws.String(strconv.Itoa(start + size))
			return out, nil
		case n >= start:
			out.TaskArns = append(out.TaskArns, aws.ToString(t.TaskArn))
		}
		n++
	}
	return out, nil
}

func (f *fakeAWS) DescribeTasks(ctx context.Context, in *awsecs.DescribeTasksInput, _ ...func(*awsecs.Options)) (*awsecs.DescribeTasksOutput, error) {
	f.mu.Lock()
	c, _ := f.cluster(aws.ToString(in.Cluster))
	f.mu.Unlock()
	if err := f.enter(ctx, opDescribeTasks, c.name); err != nil {
		return nil, err
	}
	if err := tooMany("tasks", len(in.Tasks), describeTasksMax); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &awsecs.DescribeTasksOutput{}
	for _, arn := range in.Tasks {
		found := false
		for _, t := range f.tasks[c.name] {
			found = found || (aws.ToString(t.TaskArn) == arn && !f.vanished[arn])
		}
		if !found {
			out.Failures = append(out.Failures, awstypes.Failure{Arn: aws.String(arn), Reason: aws.String("MISSING")})
		}
	}
	for name, tasks := range f.tasks {
		for _, t := range tasks {
			asked := slices.Contains(in.Tasks, aws.ToString(t.TaskArn)) && name == c.name
			if f.vanished[aws.ToString(t.TaskArn)] {
				continue
			}
			if asked || f.looseTasks {
				task := *t
				if !slices.Contains(in.Include, awstypes.TaskFieldTags) {
					task.Tags = nil
				}
				out.Tasks = append(out.Tasks, task)
			}
		}
	}
	return out, nil
}

func (f *fakeAWS) DescribeTaskDefinition(ctx context.Context, in *awsecs.DescribeTaskDefinitionInput, _ ...func(*awsecs.Options)) (*awsecs.DescribeTaskDefinitionOutput, error) {
	arn := aws.ToString(in.TaskDefinition)
	if err := f.enter(ctx, opDescribeTaskDefinition, arn); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	td, ok := f.taskDefs[arn]
	if !ok {
		return nil, errors.New("ClientException: unable to describe task definition")
	}
	return &awsecs.DescribeTaskDefinitionOutput{TaskDefinition: &td}, nil
}

func (f *fakeAWS) DescribeContainerInstances(ctx context.Context, in *awsecs.DescribeContainerInstancesInput, _ ...func(*awsecs.Options)) (*awsecs.DescribeContainerInstancesOutput, error) {
	if err := f.enter(ctx, opDescribeContainerInstances, aws.ToString(in.Cluster)); err != nil {
		return nil, err
	}
	if err := tooMany("container instances", len(in.ContainerInstances), describeContainerInstancesMax); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &awsecs.DescribeContainerInstancesOutput{}
	for _, arn := range in.ContainerInstances {
		if id, ok := f.ciEC2[arn]; ok {
			out.ContainerInstances = append(out.ContainerInstances, awstypes.ContainerInstance{ContainerInstanceArn: aws.String(arn), Ec2InstanceId: aws.String(id)})
		} else {
			out.Failures = append(out.Failures, awstypes.Failure{Arn: aws.String(arn), Reason: aws.String("MISSING")})
		}
	}
	return out, nil
}

func (f *fakeAWS) DescribeServices(ctx context.Context, in *awsecs.DescribeServicesInput, _ ...func(*awsecs.Options)) (*awsecs.DescribeServicesOutput, error) {
	f.mu.Lock()
	c, _ := f.cluster(aws.ToString(in.Cluster))
	f.mu.Unlock()
	if err := f.enter(ctx, opDescribeServices, c.name); err != nil {
		return nil, err
	}
	if err := tooMany("services", len(in.Services), describeServicesMax); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &awsecs.DescribeServicesOutput{}
	for _, name := range in.Services {
		svc, ok := f.services[c.name+"/"+name]
		if !ok {
			out.Failures = append(out.Failures, awstypes.Failure{Arn: aws.String(name), Reason: aws.String("MISSING")})
			continue
		}
		if !slices.Contains(in.Include, awstypes.ServiceFieldTags) {
			svc.Tags = nil
		}
		out.Services = append(out.Services, svc)
	}
	return out, nil
}

func (f *fakeAWS) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	if err := f.enter(ctx, opDescribeInstances, ""); err != nil {
		return nil, err
	}
	if len(in.InstanceIds) > 0 || len(in.Filters) != 1 || aws.ToString(in.Filters[0].Name) != "instance-id" {
		return nil, errors.New("fake: only the instance-id filter is supported")
	}
	if err := tooMany("filter values", len(in.Filters[0].Values), 200); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var res ec2types.Reservation
	for _, id := range in.Filters[0].Values {
		if i, ok := f.instances[id]; ok {
			res.Instances = append(res.Instances, i)
		}
	}
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{res}}, nil
}
