package ecs

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Rule names, in the __meta_ecs_rules label.
const (
	ruleDockerLabels = "docker_labels"
	rulePortNames    = "port_names"
	ruleMatchers     = "matchers"
)

// compiledRules are the rules of a Config with their patterns compiled and their defaults
// applied.
type compiledRules struct {
	dockerLabels DockerLabels
	portNames    *regexp.Regexp // nil when the rule is off
	portPath     string
	matchers     []compiledMatcher
}

type compiledMatcher struct {
	Matcher
	service, taskDefinition, container *regexp.Regexp // nil matches everything
}

// anchored compiles a pattern that must match a whole string; "" gives nil.
func anchored(what, pattern string) (*regexp.Regexp, error) {
	if pattern == "" {
		return nil, nil
	}
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		return nil, fmt.Errorf("%s pattern %q: %w", what, pattern, err)
	}
	return re, nil
}

// compileRules compiles the rules of r, reporting every setting that cannot work (a pattern that
// does not compile, a matcher without ports, a path without /, a scheme other than http and
// https), each named, in a fixed order.
func compileRules(r Config) (compiledRules, error) {
	c := compiledRules{dockerLabels: r.DockerLabels, portPath: r.PortNames.Path}
	var errs []error
	if r.DockerLabels.Enabled && r.DockerLabels.PortLabel == "" {
		errs = append(errs, errors.New("ecs docker labels: the port label name is empty"))
	}
	if r.PortNames.Enabled {
		re, err := anchored("ecs port name", r.PortNames.Pattern)
		switch {
		case err != nil:
			errs = append(errs, err)
		case re == nil:
			errs = append(errs, errors.New("ecs port names: the pattern is empty"))
		}
		c.portNames = re
		if c.portPath == "" {
			c.portPath = targets.DefaultMetricsPath
		}
		if !strings.HasPrefix(c.portPath, "/") {
			errs = append(errs, fmt.Errorf("ecs port names: path %q does not start with /", c.portPath))
		}
	}
	for i, m := range r.Matchers {
		cm, merrs := compileMatcher(i+1, m)
		errs = append(errs, merrs...)
		c.matchers = append(c.matchers, cm)
	}
	return c, errors.Join(errs...)
}

// compileMatcher compiles m; every error names the matcher by its place in the list (from 1).
func compileMatcher(i int, m Matcher) (compiledMatcher, []error) {
	cm := compiledMatcher{Matcher: m}
	if cm.Path == "" {
		cm.Path = targets.DefaultMetricsPath
	}
	var errs []error
	for _, p := range []struct {
		what, pattern string
		re            **regexp.Regexp
	}{{"service", m.Service, &cm.service}, {"task definition", m.TaskDefinition, &cm.taskDefinition}, {"container", m.Container, &cm.container}} {
		re, err := anchored(p.what, p.pattern)
		if err != nil {
			errs = append(errs, err)
		}
		*p.re = re
	}
	if len(m.Ports) == 0 {
		errs = append(errs, errors.New("no ports"))
	}
	for _, p := range m.Ports {
		if err := targets.CheckPort(p); err != nil {
			errs = append(errs, fmt.Errorf("port %w", err))
		}
	}
	if !strings.HasPrefix(cm.Path, "/") {
		errs = append(errs, fmt.Errorf("path %q does not start with /", cm.Path))
	}
	if err := checkScheme(m.Scheme); err != nil {
		errs = append(errs, err)
	}
	for j, err := range errs {
		errs[j] = fmt.Errorf("ecs matcher %d: %w", i, err)
	}
	return cm, errs
}

func checkScheme(s string) error {
	if s != "" && s != "http" && s != "https" {
		return fmt.Errorf("scheme %q is neither http nor https", s)
	}
	return nil
}

func (m compiledMatcher) matches(service, family, container string) bool {
	if m.service != nil && (service == "" || !m.service.MatchString(service)) {
		return false
	}
	if m.taskDefinition != nil && !m.taskDefinition.MatchString(family) {
		return false
	}
	return m.container == nil || m.container.MatchString(container)
}

// endpoint is one metrics endpoint of a container, before its address is known.
type endpoint struct {
	port      int32 // container port
	path, job string
	scrape    targets.ScrapeSettings
	rule      string
}

// endpoints returns the endpoints the rules find in one container definition, and the skips for
// rule matches whose values are unusable (a non-numeric port label, a path without /, a bad
// scheme, scrape interval or scrape timeout).
func (r compiledRules) endpoints(def awstypes.ContainerDefinition, service, family string) ([]endpoint, []skip) {
	var (
		out   []endpoint
		skips []skip
	)
	if r.dockerLabels.Enabled {
		ep, sk, ok := r.dockerLabelEndpoint(def.DockerLabels)
		if sk != nil {
			skips = append(skips, *sk)
		} else if ok {
			out = append(out, ep)
		}
	}
	if r.portNames != nil {
		for _, pm := range def.PortMappings {
			if pm.Name != nil && pm.ContainerPort != nil && r.portNames.MatchString(*pm.Name) {
				out = append(out, endpoint{port: *pm.ContainerPort, path: r.portPath, rule: rulePortNames})
			}
		}
	}
	name := aws.ToString(def.Name)
	for _, m := range r.matchers {
		if !m.matches(service, family, name) {
			continue
		}
		for _, p := range m.Ports {
			if portMapping(def, int32(p)) != nil {
				out = append(out, endpoint{port: int32(p), path: m.Path, scrape: targets.ScrapeSettings{Scheme: m.Scheme}, job: m.Job, rule: ruleMatchers})
			}
		}
	}
	return out, skips
}

// dockerLabelEndpoint reads the docker-label rule's endpoint; ok is false when the container has
// no port label.
func (r compiledRules) dockerLabelEndpoint(labels map[string]string) (endpoint, *skip, bool) {
	dl := r.dockerLabels
	v, ok := labels[dl.PortLabel]
	if !ok {
		return endpoint{}, nil, false
	}
	port, err := targets.ParsePort(v)
	if err != nil {
		return endpoint{}, &skip{reason: reasonBadPort, detail: fmt.Sprintf("docker label %s=%v", dl.PortLabel, err)}, false
	}
	ep := endpoint{port: int32(port), path: targets.DefaultMetricsPath, rule: ruleDockerLabels}
	if p, ok := labels[dl.PathLabel]; ok && dl.PathLabel != "" {
		if !strings.HasPrefix(p, "/") {
			return endpoint{}, &skip{reason: reasonBadPath, detail: fmt.Sprintf("docker label %s=%q does not start with /", dl.PathLabel, p)}, false
		}
		ep.path = p
	}
	scrape, bad := targets.ParseScrapeSettings(labelSetting(labels, dl.SchemeLabel), labelSetting(labels, dl.ScrapeIntervalLabel), labelSetting(labels, dl.ScrapeTimeoutLabel))
	if bad != nil {
		return endpoint{}, &skip{reason: bad.Reason, detail: bad.Error()}, false
	}
	ep.scrape = scrape
	if j, ok := labels[dl.JobLabel]; ok && dl.JobLabel != "" {
		ep.job = j
	}
	return ep, nil, true
}

// labelSetting returns a docker label as a scrape setting; an empty name is never set.
func labelSetting(labels map[string]string, name string) targets.Setting {
	v, ok := labels[name]
	return targets.Setting{Name: "docker label " + name, Value: v, Set: ok && name != ""}
}

// portMapping returns the mapping of a container port in a container definition (a single port,
// or a containerPortRange that holds it), or nil.
func portMapping(def awstypes.ContainerDefinition, port int32) *awstypes.PortMapping {
	for i, pm := range def.PortMappings {
		if pm.ContainerPort != nil && *pm.ContainerPort == port {
			return &def.PortMappings[i]
		}
	}
	for i, pm := range def.PortMappings {
		if from, to, ok := parsePortRange(aws.ToString(pm.ContainerPortRange)); ok && pm.ContainerPort == nil && port >= from && port <= to {
			return &def.PortMappings[i]
		}
	}
	return nil
}
