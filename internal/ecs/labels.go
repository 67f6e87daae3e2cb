package ecs

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/prometheus/common/model"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Metadata label names. Where upstream Prometheus's ECS discovery (aws_sd_configs, role: ecs)
// exposes the same fact, the name is the same, so that relabelling rules carry over.
const (
	metaPrefix = model.MetaLabelPrefix + "ecs_"

	LabelCluster              = metaPrefix + "cluster"
	LabelClusterARN           = metaPrefix + "cluster_arn"
	LabelService              = metaPrefix + "service"
	LabelServiceARN           = metaPrefix + "service_arn"
	LabelServiceStatus        = metaPrefix + "service_status"
	LabelTaskARN              = metaPrefix + "task_arn"
	LabelTaskDefinition       = metaPrefix + "task_definition"
	LabelTaskGroup            = metaPrefix + "task_group"
	LabelLaunchType           = metaPrefix + "launch_type"
	LabelDesiredStatus        = metaPrefix + "desired_status"
	LabelLastStatus           = metaPrefix + "last_status"
	LabelHealthStatus         = metaPrefix + "health_status"
	LabelAvailabilityZone     = metaPrefix + "availability_zone"
	LabelSubnetID             = metaPrefix + "subnet_id"
	LabelIPAddress            = metaPrefix + "ip_address"
	LabelNetworkMode          = metaPrefix + "network_mode"
	LabelPlatformFamily       = metaPrefix + "platform_family"
	LabelPlatformVersion      = metaPrefix + "platform_version"
	LabelRegion               = metaPrefix + "region"
	LabelContainerInstanceARN = metaPrefix + "container_instance_arn"
	LabelEC2InstanceID        = metaPrefix + "ec2_instance_id"
	LabelEC2InstanceType      = metaPrefix + "ec2_instance_type"
	LabelEC2InstancePrivateIP = metaPrefix + "ec2_instance_private_ip"
	LabelEC2InstancePublicIP  = metaPrefix + "ec2_instance_public_ip"
	TagClusterLabelPrefix     = metaPrefix + "tag_cluster_"
	TagServiceLabelPrefix     = metaPrefix + "tag_service_"
	TagTaskLabelPrefix        = metaPrefix + "tag_task_"
	TagEC2LabelPrefix         = metaPrefix + "tag_ec2_"

	// Container-level labels, which upstream Prometheus lacks.
	LabelContainerName        = metaPrefix + "container_name"
	LabelContainerImage       = metaPrefix + "container_image"
	LabelContainerPort        = metaPrefix + "container_port"
	LabelContainerPortName    = metaPrefix + "container_port_name"
	ContainerLabelLabelPrefix = metaPrefix + "container_label_"
	// LabelRules lists the rules that found the endpoint (",docker_labels,port_names,").
	LabelRules = metaPrefix + "rules"
)

// Reasons why a task or container endpoint gave no target.
const (
	reasonNotRunning      = "not_running"           // the task is not RUNNING yet (retried)
	reasonNoIP            = "no_ip"                 // no address yet (awsvpc: retried) or no EC2 address
	reasonNoBinding       = "no_binding"            // a bridge container has no network bindings yet (retried)
	reasonPortNotMapped   = "port_not_mapped"       // a bridge container has no binding for the port
	reasonBadPort         = "bad_port"              // the port docker label is not a port number
	reasonBadPath         = "bad_path"              // the path docker label does not start with /
	reasonBadScheme       = targets.ReasonBadScheme // the scheme docker label is neither http nor https
	reasonNetworkModeNone = "network_mode_none"     // the task has no network
)

var skipReasons = []string{reasonNotRunning, reasonNoIP, reasonNoBinding, reasonPortNotMapped, reasonBadPort, reasonBadPath, reasonBadScheme,
	targets.ReasonBadScrapeInterval, targets.ReasonBadScrapeTimeout, reasonNetworkModeNone}

// skip tells why a task or one of its container endpoints gave no target. A transient skip is a
// state that passes (a task still starting): the task is described again next cycle.
type skip struct {
	reason, detail, container string
	port                      int32 // the container port of an endpoint's skip
	transient                 bool
}

// Network modes, as in task definitions. Windows' "default" (NAT) mode has network bindings and
// is resolved like bridge.
const (
	modeAWSVPC = "awsvpc"
	modeBridge = "bridge"
	modeHost   = "host"
	modeNone   = "none"
)

// clusterInfo, serviceInfo and ec2Instance are what DescribeClusters, DescribeServices and
// DescribeInstances tell; found is false when AWS answered that the resource does not exist.
type clusterInfo struct {
	arn, name string
	tags      map[string]string
	found     bool
}

type serviceInfo struct {
	arn, status string
	tags        map[string]string
	found       bool
}

type ec2Instance struct {
	privateIP, publicIP, subnetID, instanceType string
	tags                                        map[string]string
	found                                       bool
}

// taskFacts is everything the targets of one task are made of.
type taskFacts struct {
	task     *awstypes.Task
	def      *awstypes.TaskDefinition
	cluster  clusterInfo
	service  string       // from the task group; "" for a standalone task
	svc      *serviceInfo // nil for a standalone task
	ec2ID    string       // of the container instance; "" on Fargate
	instance *ec2Instance // nil on Fargate
	pair     refresh.Pair // account and region
}

// sourceValue is the value of targets.LabelSource on every target of the source.
var sourceValue = targets.SourceValue(Name)

// labeler builds the label sets of the targets of many tasks (a cluster's, in one cycle): names
// and repeated values are held once, and the keys of docker labels and tags become label names
// in byte order: when two keys give one name ("a.b" and "a-b" both give a_b), the key that sorts
// first wins, whatever the order of Go's maps. It records those collisions. A labeler is used by
// one goroutine.
type labeler struct {
	lb         targets.LabelBuilder
	collisions []collision // distinct
}

// collision is a targets.Collision with where it was met first.
type collision struct {
	targets.Collision
	taskDefinition, container string
}

// set sets a label when the value is not empty.
func (l *labeler) set(labels model.LabelSet, name, value string) {
	l.lb.Set(labels, model.LabelName(name), value)
}

// setMap sets a label per key of m with a non-empty value: prefix + the key, sanitized.
func (l *labeler) setMap(labels model.LabelSet, prefix string, m map[string]string, taskDefinition, container string) {
	for _, c := range l.lb.SetMap(labels, prefix, m) {
		if !slices.ContainsFunc(l.collisions, func(o collision) bool { return o.Collision == c }) {
			l.collisions = append(l.collisions, collision{c, taskDefinition, container})
		}
	}
}

// buildTargets returns the targets of a task: one per distinct endpoint (scheme, address, path)
// of its containers, and why endpoints were left out.
func buildTargets(f taskFacts, r compiledRules, l *labeler) ([]*targets.Group, []skip) {
	family := aws.ToString(f.def.Family)
	type found struct {
		def awstypes.ContainerDefinition
		eps []endpoint
	}
	var (
		containers []found
		skips      []skip
	)
	for _, def := range f.def.ContainerDefinitions {
		eps, sks := r.endpoints(def, f.service, family)
		for _, sk := range sks {
			sk.container = aws.ToString(def.Name)
			skips = append(skips, sk)
		}
		if len(eps) > 0 {
			containers = append(containers, found{def, eps})
		}
	}
	if len(containers) == 0 {
		return nil, skips
	}
	if status := aws.ToString(f.task.LastStatus); status != "RUNNING" {
		return nil, append(skips, skip{reason: reasonNotRunning, detail: "last status " + status, transient: true})
	}
	// ECS sets desiredStatus STOPPED first, while lastStatus stays RUNNING through draining
	// (load-balancer deregistration); such a task was listed as RUNNING a moment before it was
	// described, and is on its way out.
	if desired := aws.ToString(f.task.DesiredStatus); desired != "" && desired != "RUNNING" {
		return nil, append(skips, skip{reason: reasonNotRunning, detail: "desired status " + desired, transient: true})
	}
	mode := networkMode(f)
	ip, subnet, sk := taskAddress(f, mode)
	if sk != nil {
		return nil, append(skips, *sk)
	}
	base := l.baseLabels(f, mode, ip, subnet)

	var groups []*targets.Group
	index := map[string]*targets.Group{}
	for _, c := range containers {
		name := aws.ToString(c.def.Name)
		runtime := runtimeContainer(f.task, name)
		for _, ep := range c.eps {
			port, sk := hostPort(mode, runtime, ep.port)
			if sk != nil {
				sk.container, sk.port = name, ep.port
				skips = append(skips, *sk)
				continue
			}
			g := l.newGroup(base, f.def, c.def, runtime, ep, ip, port)
			if prev, ok := index[g.Key()]; ok {
				addRule(prev, ep.rule)
				continue
			}
			index[g.Key()] = g
			groups = append(groups, g)
		}
	}
	return groups, skips
}

// networkMode returns the task's network mode; a task definition without one uses bridge on EC2
// and awsvpc on Fargate.
func networkMode(f taskFacts) string {
	if m := string(f.def.NetworkMode); m != "" {
		return m
	}
	if f.task.LaunchType == awstypes.LaunchTypeFargate {
		return modeAWSVPC
	}
	return modeBridge
}

// taskAddress returns the IP address Prometheus reaches the task's containers at, and its subnet.
func taskAddress(f taskFacts, mode string) (ip, subnet string, sk *skip) {
	switch mode {
	case modeNone:
		return "", "", &skip{reason: reasonNetworkModeNone, detail: "network mode none"}
	case modeAWSVPC:
		ip, subnet = eniAddress(f.task)
		if ip == "" {
			return "", "", &skip{reason: reasonNoIP, detail: "the task's network interface has no address yet", transient: true}
		}
		return ip, subnet, nil
	}
	switch {
	case f.ec2ID == "":
		return "", "", &skip{reason: reasonNoIP, detail: "the task runs on no EC2 container instance"}
	case f.instance == nil || !f.instance.found || f.instance.privateIP == "":
		return "", "", &skip{reason: reasonNoIP, detail: fmt.Sprintf("EC2 instance %s has no private IP address", f.ec2ID)}
	}
	return f.instance.privateIP, f.instance.subnetID, nil
}

// eniAddress returns the private IP address (IPv4, else IPv6) and subnet of an awsvpc task's
// network interface, from its attachment or else from its containers' interfaces. The attachment
// detail names are not part of the API's schema: IPv4 is "privateIPv4Address"; IPv6 has been
// seen both as "ipv6Address" and "privateIPv6Address", so both are read, and names are compared
// without regard to case.
func eniAddress(t *awstypes.Task) (ip, subnet string) {
	var v4, v6 string
	for _, a := range t.Attachments {
		if !strings.EqualFold(aws.ToString(a.Type), "ElasticNetworkInterface") {
			continue
		}
		for _, d := range a.Details {
			value := aws.ToString(d.Value)
			switch strings.ToLower(aws.ToString(d.Name)) {
			case "privateipv4address":
				v4 = cmp.Or(v4, value)
			case "ipv6address", "privateipv6address":
				v6 = cmp.Or(v6, value)
			case "subnetid":
				subnet = cmp.Or(subnet, value)
			}
		}
	}
	for _, c := range t.Containers {
		for _, ni := range c.NetworkInterfaces {
			v4 = cmp.Or(v4, aws.ToString(ni.PrivateIpv4Address))
			v6 = cmp.Or(v6, aws.ToString(ni.Ipv6Address))
		}
	}
	return cmp.Or(v4, v6), subnet
}

func runtimeContainer(t *awstypes.Task, name string) *awstypes.Container {
	for i, c := range t.Containers {
		if aws.ToString(c.Name) == name {
			return &t.Containers[i]
		}
	}
	return nil
}

// hostPort returns the port Prometheus reaches a container port at: itself for awsvpc, the
// bound host port for bridge (dynamic ports included) and host.
func hostPort(mode string, c *awstypes.Container, port int32) (int32, *skip) {
	if mode == modeAWSVPC {
		return port, nil
	}
	var bindings []awstypes.NetworkBinding
	if c != nil {
		bindings = c.NetworkBindings
	}
	for _, b := range bindings {
		if b.Protocol != "" && b.Protocol != awstypes.TransportProtocolTcp {
			continue
		}
		if aws.ToInt32(b.ContainerPort) == port && b.HostPort != nil {
			return *b.HostPort, nil
		}
		if host, ok := rangeBinding(b, port); ok {
			return host, nil
		}
	}
	switch {
	case mode == modeHost:
		return port, nil
	case len(bindings) == 0:
		return 0, &skip{reason: reasonNoBinding, detail: fmt.Sprintf("container port %d: the container has no network bindings yet", port), transient: true}
	default:
		return 0, &skip{reason: reasonPortNotMapped, detail: fmt.Sprintf("container port %d is not bound to a host port", port)}
	}
}

// rangeBinding returns the host port a port-range binding (containerPortRange "9000-9099" bound
// to hostPortRange "32768-32867") gives port: Docker binds the two ranges in order.
func rangeBinding(b awstypes.NetworkBinding, port int32) (int32, bool) {
	c0, c1, ok := parsePortRange(aws.ToString(b.ContainerPortRange))
	if !ok || port < c0 || port > c1 {
		return 0, false
	}
	h0, h1, ok := parsePortRange(aws.ToString(b.HostPortRange))
	if !ok || h1-h0 != c1-c0 {
		return 0, false
	}
	return h0 + port - c0, true
}

// parsePortRange parses "FROM-TO" (or a single port).
func parsePortRange(s string) (from, to int32, ok bool) {
	a, b, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		b = a
	}
	x, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	y, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	if err1 != nil || err2 != nil || x == 0 || y < x {
		return 0, 0, false
	}
	return int32(x), int32(y), true
}

func (l *labeler) newGroup(base model.LabelSet, task *awstypes.TaskDefinition, def awstypes.ContainerDefinition, runtime *awstypes.Container, ep endpoint, ip string, port int32) *targets.Group {
	labels := make(model.LabelSet, len(base)+len(def.DockerLabels)+8)
	maps.Copy(labels, base)
	l.set(labels, targets.LabelMetricsPath, ep.path)
	l.lb.SetScrape(labels, ep.scrape)
	l.set(labels, targets.LabelJob, ep.job)
	image := aws.ToString(def.Image)
	if runtime != nil && aws.ToString(runtime.Image) != "" {
		image = aws.ToString(runtime.Image)
	}
	l.set(labels, LabelContainerName, aws.ToString(def.Name))
	l.set(labels, LabelContainerImage, image)
	l.set(labels, LabelContainerPort, strconv.Itoa(int(ep.port)))
	if pm := portMapping(def, ep.port); pm != nil {
		l.set(labels, LabelContainerPortName, aws.ToString(pm.Name))
	}
	l.setMap(labels, ContainerLabelLabelPrefix, def.DockerLabels, aws.ToString(task.TaskDefinitionArn), aws.ToString(def.Name))
	labels[LabelRules] = model.LabelValue("," + ep.rule + ",")
	return &targets.Group{Targets: []string{targets.JoinHostPort(ip, int(port))}, Labels: labels}
}

// addRule adds rule to the rules a group was found by.
func addRule(g *targets.Group, rule string) {
	rules := string(g.Labels[LabelRules])
	if !strings.Contains(rules, ","+rule+",") {
		g.Labels[LabelRules] = model.LabelValue(rules + rule + ",")
	}
}

func (l *labeler) baseLabels(f taskFacts, mode, ip, subnet string) model.LabelSet {
	t := f.task
	labels := model.LabelSet{targets.LabelSource: sourceValue}
	clusterName := f.cluster.name
	if clusterName == "" {
		clusterName = arnName(aws.ToString(t.ClusterArn))
	}
	for _, kv := range [...][2]string{
		{targets.LabelCluster, clusterName},
		{targets.LabelService, f.service},
		{targets.LabelTaskDefinition, aws.ToString(f.def.Family)},
		{LabelCluster, clusterName},
		{LabelClusterARN, aws.ToString(t.ClusterArn)},
		{LabelService, f.service},
		{LabelTaskARN, aws.ToString(t.TaskArn)},
		{LabelTaskDefinition, aws.ToString(t.TaskDefinitionArn)},
		{LabelTaskGroup, aws.ToString(t.Group)},
		{LabelLaunchType, string(t.LaunchType)},
		{LabelDesiredStatus, aws.ToString(t.DesiredStatus)},
		{LabelLastStatus, aws.ToString(t.LastStatus)},
		{LabelHealthStatus, string(t.HealthStatus)},
		{LabelAvailabilityZone, aws.ToString(t.AvailabilityZone)},
		{LabelSubnetID, subnet},
		{LabelIPAddress, ip},
		{LabelNetworkMode, mode},
		{LabelPlatformFamily, aws.ToString(t.PlatformFamily)},
		{LabelPlatformVersion, aws.ToString(t.PlatformVersion)},
		{LabelRegion, f.pair.Region},
		{targets.LabelAccountID, f.pair.Account},
		{targets.LabelRegion, f.pair.Region},
		{LabelEC2InstanceID, f.ec2ID},
		{LabelContainerInstanceARN, aws.ToString(t.ContainerInstanceArn)},
	} {
		l.set(labels, kv[0], kv[1])
	}
	taskDef := aws.ToString(t.TaskDefinitionArn)
	if f.instance != nil && f.instance.found {
		l.set(labels, LabelEC2InstanceType, f.instance.instanceType)
		l.set(labels, LabelEC2InstancePrivateIP, f.instance.privateIP)
		l.set(labels, LabelEC2InstancePublicIP, f.instance.publicIP)
		l.setMap(labels, TagEC2LabelPrefix, f.instance.tags, taskDef, "")
	}
	if f.svc != nil && f.svc.found {
		l.set(labels, LabelServiceARN, f.svc.arn)
		l.set(labels, LabelServiceStatus, f.svc.status)
		l.setMap(labels, TagServiceLabelPrefix, f.svc.tags, taskDef, "")
	}
	l.setMap(labels, TagClusterLabelPrefix, f.cluster.tags, taskDef, "")
	l.setMap(labels, TagTaskLabelPrefix, ecsTags(t.Tags), taskDef, "")
	return labels
}

// arnName returns the last path element of an ARN (the name in ".../cluster/NAME").
func arnName(arn string) string {
	return arn[strings.LastIndex(arn, "/")+1:]
}

// serviceOf returns the service name of a task group ("service:NAME"), or "".
func serviceOf(group string) string {
	name, ok := strings.CutPrefix(group, "service:")
	if !ok {
		return ""
	}
	return name
}

// reportSkips reports the skips of a task to the tracker of skipped items, and whether one of them
// is a passing state (the task is described again next cycle). The task is the scope; an item is
// the task (by id), its container and the container port, as far as the skip is about them.
// Changes are logged by cluster and task definition.
func (s *Source) reportSkips(cluster, task, taskDefinition string, skips []skip) (transient bool) {
	out := make([]refresh.Skip, 0, len(skips))
	for _, sk := range skips {
		transient = transient || sk.transient
		item := arnName(task)
		ids := []refresh.ID{{Name: "task", Value: task}}
		if sk.container != "" {
			item += "/" + sk.container
			ids = append(ids, refresh.ID{Name: "container", Value: sk.container})
		}
		if sk.port != 0 {
			item += ":" + strconv.Itoa(int(sk.port))
			ids = append(ids, refresh.ID{Name: "container_port", Value: strconv.Itoa(int(sk.port))})
		}
		out = append(out, refresh.Skip{Item: item, Reason: sk.reason, Detail: sk.detail, Quiet: sk.transient, IDs: ids})
	}
	s.skips.Set(task, out, "cluster", cluster, "task_definition", taskDefinition)
	return transient
}

// reportCollisions logs the label-name collisions met in a cluster's cycle that the previous cycle
// did not meet.
func (s *Source) reportCollisions(cluster string, l *labeler) {
	for _, c := range l.collisions {
		if s.collisions.New(string(c.Name) + "\x00" + c.Kept + "\x00" + c.Dropped) {
			s.opts.Logger.Warn("Keys give the same label name; the key that sorts first gives the label",
				"cluster", cluster, "task_definition", c.taskDefinition, "container", c.container, "label", c.Name, "kept", c.Kept, "dropped", c.Dropped)
		}
	}
}

// endCycle ends a discovery: the skipped items of tasks no longer held are skipped no more, and
// the label-name collisions of the cycle are what the next one compares with.
func (s *Source) endCycle(ctx context.Context) {
	s.skips.Done(ctx, func(task string) bool {
		for _, st := range s.clusters {
			if _, ok := st.tasks[task]; ok {
				return true
			}
		}
		return false
	})
	s.collisions.Next()
}
