package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// ECS configures the ECS API source. It is on when Clusters is not empty or AllClusters is set.
// The rules' patterns, ports, paths and schemes are checked by the source itself (ecs.Rules.Check).
type ECS struct {
	Clusters                []string        `yaml:"clusters"`
	AllClusters             bool            `yaml:"all_clusters"`
	DockerLabels            ECSDockerLabels `yaml:"docker_labels"`
	PortNames               ECSPortNames    `yaml:"port_names"`
	Matchers                []ECSMatcher    `yaml:"matchers"`
	TaskRefreshInterval     model.Duration  `yaml:"task_refresh_interval"`
	InstanceRefreshInterval model.Duration  `yaml:"instance_refresh_interval"`
	MetadataRefreshInterval model.Duration  `yaml:"metadata_refresh_interval"`
	API                     ECSAPI          `yaml:"api"`
}

// ECSDockerLabels names the docker labels that make a container a target.
type ECSDockerLabels struct {
	Enabled     bool   `yaml:"enabled"`
	PortLabel   string `yaml:"port_label"`
	PathLabel   string `yaml:"path_label"`
	SchemeLabel string `yaml:"scheme_label"`
	JobLabel    string `yaml:"job_label"`
}

// ECSPortNames makes targets of named port mappings.
type ECSPortNames struct {
	Enabled bool   `yaml:"enabled"`
	Pattern string `yaml:"pattern"`
	Path    string `yaml:"path"`
}

// ECSMatcher makes targets of listed container ports of matching containers.
type ECSMatcher struct {
	Service        string `yaml:"service"`
	TaskDefinition string `yaml:"task_definition"`
	Container      string `yaml:"container"`
	Ports          []int  `yaml:"ports"`
	Path           string `yaml:"path"`
	Scheme         string `yaml:"scheme"`
	Job            string `yaml:"job"`
}

// ECSAPI limits the ECS source's AWS calls, per API family.
type ECSAPI struct {
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	Burst             int     `yaml:"burst"`
	Concurrency       int     `yaml:"concurrency"`
}

// defaultECS is the ECS source's defaults: off (no cluster), the docker-label names that
// prometheus-ecs-discovery made common, ports named "metrics" or "metrics-<anything>", and half
// of AWS's sustained rate per API family.
func defaultECS() ECS {
	return ECS{
		DockerLabels: ECSDockerLabels{
			Enabled:     true,
			PortLabel:   "PROMETHEUS_EXPORTER_PORT",
			PathLabel:   "PROMETHEUS_EXPORTER_PATH",
			SchemeLabel: "PROMETHEUS_EXPORTER_SCHEME",
			JobLabel:    "PROMETHEUS_EXPORTER_JOB_NAME",
		},
		PortNames:               ECSPortNames{Enabled: true, Pattern: "metrics(-.+)?", Path: "/metrics"},
		TaskRefreshInterval:     model.Duration(10 * time.Minute),
		InstanceRefreshInterval: model.Duration(time.Hour),
		MetadataRefreshInterval: model.Duration(5 * time.Minute),
		API:                     ECSAPI{RequestsPerSecond: 10, Burst: 20, Concurrency: 5},
	}
}

// Enabled reports whether the ECS source is on.
func (e ECS) Enabled() bool { return len(e.Clusters) > 0 || e.AllClusters }

func (e ECS) validate() []error {
	var errs []error
	if len(e.Clusters) > 0 && e.AllClusters {
		errs = append(errs, errors.New("ecs: clusters and all_clusters exclude each other"))
	}
	for _, c := range e.Clusters {
		if strings.TrimSpace(c) == "" {
			errs = append(errs, errors.New("ecs cluster: empty name"))
		}
	}
	for name, d := range map[string]model.Duration{
		"task": e.TaskRefreshInterval, "instance": e.InstanceRefreshInterval, "metadata": e.MetadataRefreshInterval,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("ecs %s refresh interval %s: must not be negative", name, d))
		}
	}
	if e.API.RequestsPerSecond < 0 {
		errs = append(errs, fmt.Errorf("ecs api requests per second %g: must not be negative (0: no limit)", e.API.RequestsPerSecond))
	}
	if e.API.Burst < 1 {
		errs = append(errs, fmt.Errorf("ecs api burst %d: must be at least 1", e.API.Burst))
	}
	if e.API.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("ecs api concurrency %d: must be at least 1", e.API.Concurrency))
	}
	return errs
}
