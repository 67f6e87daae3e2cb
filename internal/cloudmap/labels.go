package cloudmap

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Metadata label names. Every instance attribute becomes AttributeLabelPrefix + sanitized name
// and every service tag ServiceTagLabelPrefix + sanitized key.
const (
	metaPrefix = model.MetaLabelPrefix + "cloudmap_"

	LabelNamespaceID         = metaPrefix + "namespace_id"
	LabelNamespaceName       = metaPrefix + "namespace_name"
	LabelNamespaceType       = metaPrefix + "namespace_type"
	LabelNamespaceHostedZone = metaPrefix + "namespace_hosted_zone_id"
	LabelServiceID           = metaPrefix + "service_id"
	LabelServiceName         = metaPrefix + "service_name"
	LabelInstanceID          = metaPrefix + "instance_id"
	LabelHealthStatus        = metaPrefix + "health_status"
	LabelMetricsEndpoint     = metaPrefix + "metrics_endpoint"
	AttributeLabelPrefix     = metaPrefix + "attribute_"
	ServiceTagLabelPrefix    = metaPrefix + "service_tag_"
	endpointApplication      = "application"
	endpointECS              = "ecs"
	healthUnhealthy          = "UNHEALTHY"
	attrIPv4                 = "AWS_INSTANCE_IPV4"
	attrIPv6                 = "AWS_INSTANCE_IPV6"
	attrPort                 = "AWS_INSTANCE_PORT"
	attrCluster              = "ECS_CLUSTER_NAME"
	attrService              = "ECS_SERVICE_NAME"
	attrTaskDefinitionFamily = "ECS_TASK_DEFINITION_FAMILY"
	tagMetricsPath           = "METRICS_PATH"
	tagMetricsPort           = "METRICS_PORT"
	tagECSMetricsPath        = "ECS_METRICS_PATH"
	tagECSMetricsPort        = "ECS_METRICS_PORT"
	tagMetricsScheme         = "METRICS_SCHEME"
	tagMetricsInterval       = "METRICS_SCRAPE_INTERVAL"
	tagMetricsTimeout        = "METRICS_SCRAPE_TIMEOUT"
	defaultPort              = 80
	reasonUnhealthy          = "unhealthy"
	reasonNoIP               = "no_ip"
	reasonBadIP              = "bad_ip"
	reasonBadPort            = "bad_port"
	reasonBadPath            = "bad_path"
)

// namespace is what a target needs to know of its Cloud Map namespace.
type namespace struct {
	ID, Name, Type, HTTPName, HostedZoneID string
}

// service is what a target needs to know of its Cloud Map service.
type service struct {
	ID, Name, ARN string
	Tags          map[string]string
}

// instance is one registered instance with its health.
type instance struct {
	ID         string
	Attributes map[string]string
	Health     string
}

// defaults records which default a service's targets fell back to, for the debug log.
type defaults struct {
	Port string // "" when METRICS_PORT was set
	Path bool   // METRICS_PATH missing
}

// sourceValue is the value of targets.LabelSource on every target of the source.
var sourceValue = targets.SourceValue(Name)

// ecsAttributes are the attributes that ECS registers and that give the seed's labels.
var ecsAttributes = [...]struct {
	label model.LabelName
	attr  string
}{
	{targets.LabelCluster, attrCluster},
	{targets.LabelService, attrService},
	{targets.LabelTaskDefinition, attrTaskDefinitionFamily},
}

// builder makes the targets of the instances of one service, in one cycle. Each target has a label
// set of its own, whose names and repeated values are shared (one copy of each), and the keys of
// attributes and tags become label names in byte order: when two keys give one name ("a.b" and "a-b" both give
// a_b), the key that sorts first wins, whatever the order of Go's maps. A builder is used by one
// goroutine.
type builder struct {
	svc              service
	includeUnhealthy bool
	lb               targets.LabelBuilder
	base             model.LabelSet      // the namespace's and the service's labels
	collisions       []targets.Collision // distinct
	// The application endpoint's scheme, scrape interval and timeout (METRICS_SCHEME,
	// METRICS_SCRAPE_INTERVAL, METRICS_SCRAPE_TIMEOUT), or why they are unusable.
	scrape    targets.ScrapeSettings
	scrapeErr *targets.ScrapeError
}

func newBuilder(ns namespace, svc service, includeUnhealthy bool) *builder {
	b := &builder{svc: svc, includeUnhealthy: includeUnhealthy}
	b.base = model.LabelSet{
		targets.LabelSource: sourceValue,
		LabelNamespaceID:    model.LabelValue(ns.ID),
		LabelNamespaceName:  model.LabelValue(ns.Name),
		LabelNamespaceType:  model.LabelValue(ns.Type),
		LabelServiceID:      model.LabelValue(svc.ID),
		LabelServiceName:    model.LabelValue(svc.Name),
	}
	b.lb.Set(b.base, LabelNamespaceHostedZone, ns.HostedZoneID)
	b.collided(b.lb.SetMap(b.base, ServiceTagLabelPrefix, svc.Tags))
	b.scrape, b.scrapeErr = targets.ParseScrapeSettings(tagSetting(svc, tagMetricsScheme), tagSetting(svc, tagMetricsInterval), tagSetting(svc, tagMetricsTimeout))
	return b
}

// tagSetting returns a service tag as a scrape setting.
func tagSetting(svc service, tag string) targets.Setting {
	v, ok := svc.Tags[tag]
	return targets.Setting{Name: "service tag " + tag, Value: v, Set: ok}
}

// collided records collisions not recorded yet (every instance of a service usually has the same
// attribute keys).
func (b *builder) collided(cs []targets.Collision) {
	for _, c := range cs {
		if !slices.Contains(b.collisions, c) {
			b.collisions = append(b.collisions, c)
		}
	}
}

// build maps one instance to its target groups: the application endpoint and, when the service
// is tagged ECS_METRICS_PORT, the ECS-agent endpoint (the seed's infrastructure target). The
// METRICS_* tags are the application endpoint's: its port, path, scheme, scrape interval and
// timeout; an unusable one skips that endpoint. A skip's item is the instance id, followed by the
// endpoint for a skip of one endpoint.
func (b *builder) build(inst instance) ([]*targets.Group, []refresh.Skip, defaults) {
	var def defaults
	if inst.Health == healthUnhealthy && !b.includeUnhealthy {
		return nil, []refresh.Skip{{Item: inst.ID, Reason: reasonUnhealthy, Detail: "instance is UNHEALTHY", Quiet: true, IDs: instanceIDs(inst.ID)}}, def
	}
	ip, sk := instanceIP(inst)
	if sk != nil {
		sk.Item, sk.IDs = inst.ID, instanceIDs(inst.ID)
		return nil, []refresh.Skip{*sk}, def
	}
	svc := b.svc
	var (
		groups []*targets.Group
		skips  []refresh.Skip
		labels model.LabelSet // the instance's: the first endpoint takes them, the second a copy
	)
	add := func(port int, portErr error, pathTag, path, endpoint string, scrape targets.ScrapeSettings, scrapeErr *targets.ScrapeError) {
		item := inst.ID + "/" + endpoint
		ids := append(instanceIDs(inst.ID), refresh.ID{Name: "endpoint", Value: endpoint})
		switch {
		case portErr != nil:
			skips = append(skips, refresh.Skip{Item: item, Reason: reasonBadPort, Detail: portErr.Error(), IDs: ids})
		case scrapeErr != nil:
			skips = append(skips, refresh.Skip{Item: item, Reason: scrapeErr.Reason, Detail: scrapeErr.Error(), IDs: ids})
		case !strings.HasPrefix(path, "/"):
			skips = append(skips, refresh.Skip{Item: item, Reason: reasonBadPath, Detail: fmt.Sprintf("service tag %s=%q does not start with /", pathTag, path), IDs: ids})
		default:
			if labels == nil {
				labels = b.instanceLabels(inst)
			} else {
				labels = maps.Clone(labels)
			}
			labels[targets.LabelMetricsPath] = b.lb.Value(path)
			labels[LabelMetricsEndpoint] = model.LabelValue(endpoint)
			b.lb.SetScrape(labels, scrape)
			groups = append(groups, &targets.Group{Targets: []string{targets.JoinHostPort(ip, port)}, Labels: labels})
		}
	}

	port, portSource, err := applicationPort(svc, inst)
	if portSource != tagMetricsPort {
		def.Port = portSource
	}
	path, pathSet := svc.Tags[tagMetricsPath]
	if !pathSet {
		path = targets.DefaultMetricsPath
		def.Path = true
	}
	add(port, err, tagMetricsPath, path, endpointApplication, b.scrape, b.scrapeErr)

	if v, ok := svc.Tags[tagECSMetricsPort]; ok {
		ecsPath, ok := svc.Tags[tagECSMetricsPath]
		if !ok {
			ecsPath = targets.DefaultMetricsPath
		}
		ecsPort, err := parsePort("service tag "+tagECSMetricsPort, v)
		add(ecsPort, err, tagECSMetricsPath, ecsPath, endpointECS, targets.ScrapeSettings{}, nil)
	}
	return groups, skips, def
}

// instanceLabels returns the labels of an instance's targets but the path, the endpoint and the
// scrape settings, in a set with room for those.
func (b *builder) instanceLabels(inst instance) model.LabelSet {
	labels := make(model.LabelSet, len(b.base)+len(ecsAttributes)+len(inst.Attributes)+7)
	maps.Copy(labels, b.base)
	labels[LabelInstanceID] = model.LabelValue(inst.ID)
	b.lb.Set(labels, LabelHealthStatus, inst.Health)
	for _, a := range ecsAttributes {
		b.lb.Set(labels, a.label, inst.Attributes[a.attr])
	}
	b.collided(b.lb.SetMap(labels, AttributeLabelPrefix, inst.Attributes))
	return labels
}

// instanceIDs are the ids of a skipped instance within its service.
func instanceIDs(id string) []refresh.ID { return []refresh.ID{{Name: "instance", Value: id}} }

func instanceIP(inst instance) (string, *refresh.Skip) {
	for _, attr := range []string{attrIPv4, attrIPv6} {
		v := strings.TrimSpace(inst.Attributes[attr])
		if v == "" {
			continue
		}
		if net.ParseIP(v) == nil {
			return "", &refresh.Skip{Reason: reasonBadIP, Detail: fmt.Sprintf("attribute %s=%q is not an IP address", attr, v)}
		}
		return v, nil
	}
	return "", &refresh.Skip{Reason: reasonNoIP, Detail: fmt.Sprintf("instance has neither %s nor %s", attrIPv4, attrIPv6)}
}

// applicationPort returns the metrics port and where it came from: the service tag METRICS_PORT,
// else the instance attribute AWS_INSTANCE_PORT, else "default" (80).
func applicationPort(svc service, inst instance) (int, string, error) {
	if v, ok := svc.Tags[tagMetricsPort]; ok {
		p, err := parsePort("service tag "+tagMetricsPort, v)
		return p, tagMetricsPort, err
	}
	if v, ok := inst.Attributes[attrPort]; ok {
		p, err := parsePort("attribute "+attrPort, v)
		return p, attrPort, err
	}
	return defaultPort, "default", nil
}

// parsePort parses the port held in what (a service tag or an instance attribute), naming it when
// the value is not a port number.
func parsePort(what, v string) (int, error) {
	p, err := targets.ParsePort(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%w", what, err)
	}
	return p, nil
}
