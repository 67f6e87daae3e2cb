package cloudmap

import (
	"fmt"
	"net"
	"strings"

	"github.com/prometheus/common/model"

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

// skip tells why an instance (or one of its endpoints) gave no target.
type skip struct {
	Reason string
	Detail string
}

// defaults records which default a service's targets fell back to, for the debug log.
type defaults struct {
	Port string // "" when METRICS_PORT was set
	Path bool   // METRICS_PATH missing
}

// buildTargets maps one instance to its target groups: the application endpoint and, when the
// service is tagged ECS_METRICS_PORT, the ECS-agent endpoint (the seed's infrastructure target).
func buildTargets(ns namespace, svc service, inst instance, includeUnhealthy bool) ([]*targets.Group, []skip, defaults) {
	var def defaults
	if inst.Health == healthUnhealthy && !includeUnhealthy {
		return nil, []skip{{reasonUnhealthy, "instance is UNHEALTHY"}}, def
	}
	ip, sk := instanceIP(inst)
	if sk != nil {
		return nil, []skip{*sk}, def
	}
	base := baseLabels(ns, svc, inst)

	var (
		groups []*targets.Group
		skips  []skip
	)
	add := func(port int, portErr error, pathTag, path, endpoint string) {
		switch {
		case portErr != nil:
			skips = append(skips, skip{reasonBadPort, portErr.Error()})
		case !strings.HasPrefix(path, "/"):
			skips = append(skips, skip{reasonBadPath, fmt.Sprintf("tag %s=%q does not start with /", pathTag, path)})
		default:
			groups = append(groups, newGroup(ip, port, path, endpoint, base))
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
	add(port, err, tagMetricsPath, path, endpointApplication)

	if v, ok := svc.Tags[tagECSMetricsPort]; ok {
		ecsPath, ok := svc.Tags[tagECSMetricsPath]
		if !ok {
			ecsPath = targets.DefaultMetricsPath
		}
		ecsPort, err := parsePort("service tag "+tagECSMetricsPort, v)
		add(ecsPort, err, tagECSMetricsPath, ecsPath, endpointECS)
	}
	return groups, skips, def
}

func newGroup(ip string, port int, path, endpoint string, base model.LabelSet) *targets.Group {
	labels := base.Clone()
	labels[targets.LabelMetricsPath] = model.LabelValue(path)
	labels[LabelMetricsEndpoint] = model.LabelValue(endpoint)
	return &targets.Group{Targets: []string{targets.JoinHostPort(ip, port)}, Labels: labels}
}

func instanceIP(inst instance) (string, *skip) {
	for _, attr := range []string{attrIPv4, attrIPv6} {
		v := strings.TrimSpace(inst.Attributes[attr])
		if v == "" {
			continue
		}
		if net.ParseIP(v) == nil {
			return "", &skip{reasonBadIP, fmt.Sprintf("attribute %s=%q is not an IP address", attr, v)}
		}
		return v, nil
	}
	return "", &skip{reasonNoIP, fmt.Sprintf("instance has neither %s nor %s", attrIPv4, attrIPv6)}
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

func baseLabels(ns namespace, svc service, inst instance) model.LabelSet {
	labels := model.LabelSet{
		LabelNamespaceID:   model.LabelValue(ns.ID),
		LabelNamespaceName: model.LabelValue(ns.Name),
		LabelNamespaceType: model.LabelValue(ns.Type),
		LabelServiceID:     model.LabelValue(svc.ID),
		LabelServiceName:   model.LabelValue(svc.Name),
		LabelInstanceID:    model.LabelValue(inst.ID),
	}
	if inst.Health != "" {
		labels[LabelHealthStatus] = model.LabelValue(inst.Health)
	}
	if ns.HostedZoneID != "" {
		labels[LabelNamespaceHostedZone] = model.LabelValue(ns.HostedZoneID)
	}
	for name, attr := range map[model.LabelName]string{
		targets.LabelCluster:        attrCluster,
		targets.LabelService:        attrService,
		targets.LabelTaskDefinition: attrTaskDefinitionFamily,
	} {
		if v := inst.Attributes[attr]; v != "" {
			labels[name] = model.LabelValue(v)
		}
	}
	for k, v := range inst.Attributes {
		labels[model.LabelName(AttributeLabelPrefix+targets.SanitizeLabelName(k))] = model.LabelValue(v)
	}
	for k, v := range svc.Tags {
		labels[model.LabelName(ServiceTagLabelPrefix+targets.SanitizeLabelName(k))] = model.LabelValue(v)
	}
	return labels
}
