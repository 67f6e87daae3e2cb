package awscheck

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	sd "github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	sdtypes "github.com/aws/aws-sdk-go-v2/service/servicediscovery/types"
	"github.com/aws/smithy-go"

	"github.com/ecs-sd/ecs-sd/internal/awsclient"
	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/ssmparam"
)

// Status is the outcome of one action.
type Status string

// The outcomes.
const (
	OK      Status = "ok"
	Denied  Status = "denied"  // IAM refused it: Statement says what to grant
	Failed  Status = "failed"  // another error (not found, throttled, unreachable)
	Skipped Status = "skipped" // not called: nothing to call it on, or an earlier call failed
)

// Result is the outcome of one action.
type Result struct {
	Action string
	Status Status
	// On is what the action was called on ("cluster prod"), or why it was skipped.
	On  string
	Err error
	// Statement grants the action (Denied only).
	Statement string
}

// Section is the results of one (account, region) pair, or of ecs-sd's own calls.
type Section struct {
	Title   string // empty with one pair
	Results []Result
}

// Pair is one (account, region) pair to check.
type Pair struct {
	Region string
	// RoleARN is the role assumed in the pair's account; empty for ecs-sd's own account.
	RoleARN string
	AWS     aws.Config
}

// Options is what to check.
type Options struct {
	Config config.Config
	Pairs  []Pair
	// Own is ecs-sd's own configuration (own account and region): the events queue and the
	// Prometheus configuration parameter are read with it.
	Own aws.Config
}

// Run calls every read-only action the configuration needs, once per pair (and once for ecs-sd's
// own calls), and returns the outcomes.
func Run(ctx context.Context, opts Options) []Section {
	several := len(opts.Pairs) > 1
	var sections []Section
	for _, p := range opts.Pairs {
		c := &checker{cfg: opts.Config, aws: p.AWS, region: p.Region, several: several}
		if p.RoleARN != "" {
			c.account = config.RoleAccount(p.RoleARN) // until STS says
		}
		c.pair(ctx, p.RoleARN)
		s := Section{Results: c.results}
		if several {
			s.Title = fmt.Sprintf("account %s region %s", c.account, p.Region)
			if p.RoleARN != "" {
				s.Title += " role " + p.RoleARN
			}
		}
		sections = append(sections, s)
	}
	own := &checker{cfg: opts.Config, aws: opts.Own, region: opts.Own.Region, several: several}
	own.own(ctx)
	if len(own.results) == 0 {
		return sections
	}
	if several || len(sections) == 0 {
		sections = append(sections, Section{Title: fmt.Sprintf("ecs-sd's own account %s region %s", own.account, own.region), Results: own.results})
	} else {
		// One pair: its section holds ecs-sd's own calls too, without a second identity line.
		sections[0].Results = append(sections[0].Results, own.results[1:]...)
	}
	return sections
}

// checker checks one pair.
type checker struct {
	cfg     config.Config
	aws     aws.Config
	region  string
	account string
	several bool
	results []Result
}

// add records the outcome of action on what (err nil: allowed); arns are the resources of the
// statement that grants it.
func (c *checker) add(action, on string, err error, arns ...string) bool {
	r := Result{Action: action, On: on, Status: OK, Err: err}
	if err != nil {
		r.Status = Failed
		if denied(err) {
			r.Status = Denied
			if a, ok := Lookup(action); ok {
				if st, ok := a.Statement(arns...); ok {
					r.Statement = st.String()
				}
			}
		}
	}
	c.results = append(c.results, r)
	return err == nil
}

// skip records an action that is not called, and why.
func (c *checker) skip(action, why string) {
	c.results = append(c.results, Result{Action: action, Status: Skipped, On: why})
}

// deniedCodes are the error codes with which AWS services refuse a call that IAM does not allow.
var deniedCodes = map[string]bool{
	"AccessDenied":          true, // STS, SQS (query protocol)
	"AccessDeniedException": true, // ECS, Cloud Map, SSM, SQS (JSON protocol)
	"UnauthorizedOperation": true, // EC2
}

// denied reports whether err is IAM refusing the call.
func denied(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return deniedCodes[apiErr.ErrorCode()] || strings.Contains(apiErr.ErrorMessage(), "not authorized to perform")
}

// pair checks the actions of the pair's sources.
func (c *checker) pair(ctx context.Context, roleARN string) {
	if roleARN != "" {
		if _, err := c.aws.Credentials.Retrieve(ctx); !c.add(AssumeRole, "role "+roleARN, err, roleARN) {
			c.skipRest("the role cannot be assumed")
			return
		}
	}
	if !c.identity(ctx) {
		c.skipRest("no answer from STS with these credentials")
		return
	}
	if c.cfg.CloudMap.Enabled {
		c.cloudMap(ctx)
	}
	if c.cfg.ECS.Enabled() {
		c.ecs(ctx)
	}
}

// identity reads the account id of the credentials.
func (c *checker) identity(ctx context.Context) bool {
	id, err := awsclient.Identity(ctx, c.aws)
	if err != nil {
		return c.add(GetCallerIdentity, "", err)
	}
	c.account = id
	return c.add(GetCallerIdentity, "account "+id, nil)
}

// skipRest records the actions of the pair's sources as skipped, for why.
func (c *checker) skipRest(why string) {
	var actions []string
	if c.cfg.CloudMap.Enabled {
		if len(c.cfg.CloudMap.Namespaces) == 0 {
			actions = append(actions, GetParameter)
		}
		actions = append(actions, ListNamespaces, ListServices, GetService, ListTagsForResource, DiscoverInstances, ListInstances, GetInstancesHealthStatus)
	}
	if c.cfg.ECS.Enabled() {
		if c.cfg.ECS.AllClusters {
			actions = append(actions, ListClusters)
		}
		actions = append(actions, DescribeClusters, ListTasks, DescribeTasks, DescribeTaskDefinition, DescribeContainerInstances, DescribeInstances, DescribeServices)
	}
	for _, a := range actions {
		c.skip(a, "not tried: "+why)
	}
}

// parameterARN returns the ARN of the SSM parameter name (a name with a path begins with "/").
func (c *checker) parameterARN(name string) string {
	return arn("ssm", c.region, c.account, "parameter/"+strings.TrimPrefix(name, "/"))
}

// cloudMap checks the Cloud Map source's actions: the namespaces parameter, the namespaces, and
// one service of them.
func (c *checker) cloudMap(ctx context.Context) {
	cm := c.cfg.CloudMap
	entries := cm.Namespaces
	if len(entries) == 0 {
		list, err := ssmparam.List(awsclient.SSM(c.aws), cm.NamespacesParameter)(ctx)
		on := "parameter " + cm.NamespacesParameter
		if errors.Is(err, ssmparam.ErrNotFound) && c.several {
			// As the daemon has it: an account without the parameter uses no Cloud Map.
			c.add(GetParameter, on+" (not found: no Cloud Map namespaces here)", nil)
		} else {
			c.add(GetParameter, on, err, c.parameterARN(cm.NamespacesParameter))
		}
		entries = list
	}
	api := awsclient.CloudMap(c.aws)
	var namespaces []sdtypes.NamespaceSummary
	p := sd.NewListNamespacesPaginator(api, &sd.ListNamespacesInput{MaxResults: aws.Int32(100)})
	var err error
	for p.HasMorePages() && err == nil {
		var page *sd.ListNamespacesOutput
		if page, err = p.NextPage(ctx); err == nil {
			namespaces = append(namespaces, page.Namespaces...)
		}
	}
	c.add(ListNamespaces, "", err, "*")
	var ns *sdtypes.NamespaceSummary
	for i := range namespaces {
		for _, e := range entries {
			if ns == nil && (aws.ToString(namespaces[i].Id) == e || aws.ToString(namespaces[i].Name) == e) {
				ns = &namespaces[i]
			}
		}
	}
	in := &sd.ListServicesInput{MaxResults: aws.Int32(100)}
	on := "every namespace (no configured namespace found)"
	if ns != nil {
		on = "namespace " + aws.ToString(ns.Name)
		in.Filters = []sdtypes.ServiceFilter{{Name: sdtypes.ServiceFilterNameNamespaceId, Values: []string{aws.ToString(ns.Id)}, Condition: sdtypes.FilterConditionEq}}
	}
	services, err := api.ListServices(ctx, in)
	if !c.add(ListServices, on, err, "*") || len(services.Services) == 0 {
		why := "no service to call it on"
		if err != nil {
			why = "not tried: " + ListServices + " failed"
		}
		for _, a := range []string{GetService, ListTagsForResource, DiscoverInstances, ListInstances, GetInstancesHealthStatus} {
			c.skip(a, why)
		}
		return
	}
	c.cloudMapService(ctx, api, services.Services[0], namespaces)
}

// cloudMapService checks the actions on one service, in its namespace.
func (c *checker) cloudMapService(ctx context.Context, api *sd.Client, sum sdtypes.ServiceSummary, namespaces []sdtypes.NamespaceSummary) {
	id, name, serviceARN := aws.ToString(sum.Id), aws.ToString(sum.Name), aws.ToString(sum.Arn)
	on := "service " + name + " (" + id + ")"
	got, err := api.GetService(ctx, &sd.GetServiceInput{Id: aws.String(id)})
	c.add(GetService, on, err, serviceARN)
	_, err = api.ListTagsForResource(ctx, &sd.ListTagsForResourceInput{ResourceARN: aws.String(serviceARN)})
	c.add(ListTagsForResource, on, err, "*")
	var ns *sdtypes.NamespaceSummary
	if got != nil && got.Service != nil {
		for i := range namespaces {
			if aws.ToString(namespaces[i].Id) == aws.ToString(got.Service.NamespaceId) {
				ns = &namespaces[i]
			}
		}
	}
	if ns == nil {
		c.skip(DiscoverInstances, "the namespace of "+on+" is not known")
	} else {
		httpName := aws.ToString(ns.Name)
		if ns.Properties != nil && ns.Properties.HttpProperties != nil && ns.Properties.HttpProperties.HttpName != nil {
			httpName = aws.ToString(ns.Properties.HttpProperties.HttpName)
		}
		_, err = api.DiscoverInstances(ctx, &sd.DiscoverInstancesInput{NamespaceName: aws.String(httpName), ServiceName: aws.String(name), MaxResults: aws.Int32(1)})
		c.add(DiscoverInstances, on+" in namespace "+httpName, err, aws.ToString(ns.Arn), serviceARN)
	}
	_, err = api.ListInstances(ctx, &sd.ListInstancesInput{ServiceId: aws.String(id), MaxResults: aws.Int32(1)})
	c.add(ListInstances, on, err, serviceARN)
	if got == nil || got.Service == nil || (got.Service.HealthCheckConfig == nil && got.Service.HealthCheckCustomConfig == nil) {
		c.skip(GetInstancesHealthStatus, on+" has no health check (ecs-sd calls it for services that have one)")
		return
	}
	_, err = api.GetInstancesHealthStatus(ctx, &sd.GetInstancesHealthStatusInput{ServiceId: aws.String(id), MaxResults: aws.Int32(1)})
	c.add(GetInstancesHealthStatus, on, err, serviceARN)
}

// clusterARN returns the ARN of the cluster named (or given as an ARN) by entry.
func (c *checker) clusterARN(entry string) string {
	if strings.HasPrefix(entry, "arn:") {
		return entry
	}
	return arn("ecs", c.region, c.account, "cluster/"+entry)
}

// ecs checks the ECS source's actions: the clusters, and one running task of the first.
func (c *checker) ecs(ctx context.Context) {
	api := awsclient.ECS(c.aws)
	clusters := c.cfg.ECS.Clusters
	if c.cfg.ECS.AllClusters {
		out, err := api.ListClusters(ctx, &awsecs.ListClustersInput{MaxResults: aws.Int32(100)})
		if c.add(ListClusters, "", err, "*") {
			clusters = out.ClusterArns
		}
	}
	rest := []string{DescribeTasks, DescribeTaskDefinition, DescribeContainerInstances, DescribeInstances, DescribeServices}
	if len(clusters) == 0 {
		for _, a := range append([]string{DescribeClusters, ListTasks}, rest...) {
			c.skip(a, "no cluster to call it on")
		}
		return
	}
	arns := make([]string, len(clusters))
	for i, cl := range clusters {
		arns[i] = c.clusterARN(cl)
	}
	_, err := api.DescribeClusters(ctx, &awsecs.DescribeClustersInput{Clusters: clusters, Include: []ecstypes.ClusterField{ecstypes.ClusterFieldTags}})
	c.add(DescribeClusters, "clusters "+strings.Join(clusters, ", "), err, arns...)
	cluster, clusterARN := clusters[0], arns[0]
	on := "cluster " + cluster
	tasks, err := api.ListTasks(ctx, &awsecs.ListTasksInput{Cluster: aws.String(cluster), DesiredStatus: ecstypes.DesiredStatusRunning, MaxResults: aws.Int32(100)})
	if !c.add(ListTasks, on, err, clusterARN) || len(tasks.TaskArns) == 0 {
		why := "no running task in " + on
		if err != nil {
			why = "not tried: " + ListTasks + " failed"
		}
		for _, a := range rest {
			c.skip(a, why)
		}
		return
	}
	described, err := api.DescribeTasks(ctx, &awsecs.DescribeTasksInput{Cluster: aws.String(cluster), Tasks: tasks.TaskArns, Include: []ecstypes.TaskField{ecstypes.TaskFieldTags}})
	c.add(DescribeTasks, fmt.Sprintf("%d task(s) in %s", len(tasks.TaskArns), on), err, clusterARN)
	// The task that reaches the most actions: on an EC2 container instance, and of a service.
	var task ecstypes.Task
	best := -1
	if described != nil {
		for _, t := range described.Tasks {
			score := 0
			if t.ContainerInstanceArn != nil {
				score += 2
			}
			if strings.HasPrefix(aws.ToString(t.Group), "service:") {
				score++
			}
			if score > best {
				task, best = t, score
			}
		}
	}
	if task.TaskArn == nil {
		for _, a := range rest[1:] {
			c.skip(a, "no task described in "+on)
		}
		return
	}
	c.ecsTask(ctx, api, task, cluster, clusterARN)
}

// ecsTask checks the actions about one task: its definition, container instance, EC2 instance
// and service.
func (c *checker) ecsTask(ctx context.Context, api *awsecs.Client, task ecstypes.Task, cluster, clusterARN string) {
	def := aws.ToString(task.TaskDefinitionArn)
	_, err := api.DescribeTaskDefinition(ctx, &awsecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(def)})
	c.add(DescribeTaskDefinition, "task definition "+def, err, "*")
	ec2In := &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)}
	if ci := aws.ToString(task.ContainerInstanceArn); ci == "" {
		c.skip(DescribeContainerInstances, "no task on an EC2 container instance in cluster "+cluster)
	} else {
		out, err := api.DescribeContainerInstances(ctx, &awsecs.DescribeContainerInstancesInput{Cluster: aws.String(cluster), ContainerInstances: []string{ci}})
		c.add(DescribeContainerInstances, "container instance "+ci, err, clusterARN)
		if out != nil && len(out.ContainerInstances) > 0 && out.ContainerInstances[0].Ec2InstanceId != nil {
			ec2In = &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(out.ContainerInstances[0].Ec2InstanceId)}}
		}
	}
	on := "any instance"
	if len(ec2In.InstanceIds) > 0 {
		on = "instance " + ec2In.InstanceIds[0]
	}
	_, err = awsclient.EC2(c.aws).DescribeInstances(ctx, ec2In)
	c.add(DescribeInstances, on, err, "*")
	service, ok := strings.CutPrefix(aws.ToString(task.Group), "service:")
	if !ok {
		c.skip(DescribeServices, "no service task in cluster "+cluster)
		return
	}
	_, err = api.DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: []string{service}, Include: []ecstypes.ServiceField{ecstypes.ServiceFieldTags}})
	c.add(DescribeServices, "service "+service+" in cluster "+cluster, err, clusterARN)
}

// own checks ecs-sd's own calls: the events queue and the Prometheus configuration parameter.
func (c *checker) own(ctx context.Context) {
	cfg := c.cfg
	if cfg.Events.QueueURL == "" && !cfg.PrometheusConfig.Enabled {
		return
	}
	if !c.identity(ctx) {
		if cfg.Events.QueueURL != "" {
			c.skip(ReceiveMessage, "not tried: no answer from STS with these credentials")
		}
		if cfg.PrometheusConfig.Enabled {
			c.skip(GetParameter, "not tried: no answer from STS with these credentials")
		}
		return
	}
	if u := cfg.Events.QueueURL; u != "" {
		_, err := awsclient.SQS(c.aws).ReceiveMessage(ctx, peekInput(u), peek)
		c.add(ReceiveMessage, "queue "+u, err, queueARN(u, c.region, c.account))
		if a, ok := Lookup(DeleteMessage); ok {
			c.skip(DeleteMessage, "not called: "+a.NotCalled)
		}
	}
	if cfg.PrometheusConfig.Enabled {
		name := cfg.PrometheusConfig.Parameter
		_, err := ssmparam.Read(ctx, awsclient.SSM(c.aws), name)
		on := "parameter " + name
		if errors.Is(err, ssmparam.ErrNotFound) {
			// As the daemon has it: the configuration file is left as it is.
			c.add(GetParameter, on+" (not found: the Prometheus configuration file is left as it is)", nil)
			return
		}
		c.add(GetParameter, on, err, c.parameterARN(name))
	}
}

// queueARN returns the ARN of the queue at URL u (https://HOST/ACCOUNT_ID/QUEUE_NAME, as
// config.Validate checks), in region unless the host names another.
func queueARN(u, region, account string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	acct, name, _ := strings.Cut(strings.TrimPrefix(p.Path, "/"), "/")
	if acct == "" {
		acct = account
	}
	if r, ok := strings.CutPrefix(p.Hostname(), "sqs."); ok {
		if r, _, ok = strings.Cut(r, "."); ok && r != "amazonaws" {
			region = r
		}
	}
	return arn("sqs", region, acct, name)
}
