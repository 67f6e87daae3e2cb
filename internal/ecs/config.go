package ecs

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Config is the ECS source's settings: the ecs: section of the configuration file (its YAML keys
// are the field tags), which the --ecs.* flags override. DefaultConfig gives the defaults and
// Validate checks and compiles the settings, once; New takes only a validated Config.
type Config struct {
	// Clusters are the names or ARNs of the clusters to discover; AllClusters discovers every
	// cluster of the region instead. The source is on when either is set.
	Clusters    []string `yaml:"clusters"`
	AllClusters bool     `yaml:"all_clusters"`
	// The rules that make a container a target. Each can be turned off; several can match one
	// container, and each match is one endpoint (container port, path, scheme).
	DockerLabels DockerLabels `yaml:"docker_labels"`
	PortNames    PortNames    `yaml:"port_names"`
	Matchers     []Matcher    `yaml:"matchers"`
	// TaskRefreshInterval is how long a task's description (health and last status) is used
	// before the task is described again; InstanceRefreshInterval the same for container
	// instances and EC2 instances, MetadataRefreshInterval for services and clusters (tags,
	// status). 0 means never again. Bounded, with every duration of ecs-sd, by config.Validate.
	TaskRefreshInterval     model.Duration `yaml:"task_refresh_interval"`
	InstanceRefreshInterval model.Duration `yaml:"instance_refresh_interval"`
	MetadataRefreshInterval model.Duration `yaml:"metadata_refresh_interval"`
	API                     APILimits      `yaml:"api"`

	rules *compiledRules // set by Validate
}

// DockerLabels makes a target of every container whose definition carries the PortLabel docker
// label (a container port); the other labels, when set, give its metrics path, scheme, job, scrape
// interval and scrape timeout. An empty label name turns that label off.
type DockerLabels struct {
	Enabled             bool   `yaml:"enabled"`
	PortLabel           string `yaml:"port_label"`
	PathLabel           string `yaml:"path_label"`
	SchemeLabel         string `yaml:"scheme_label"`
	JobLabel            string `yaml:"job_label"`
	ScrapeIntervalLabel string `yaml:"scrape_interval_label"`
	ScrapeTimeoutLabel  string `yaml:"scrape_timeout_label"`
}

// PortNames makes a target of every port mapping whose name matches Pattern (a regular
// expression matched against the whole name), scraped at Path (default /metrics).
type PortNames struct {
	Enabled bool   `yaml:"enabled"`
	Pattern string `yaml:"pattern"`
	Path    string `yaml:"path"`
}

// Matcher makes targets of the listed container ports of the containers it matches: those of
// tasks in a service whose name matches Service, of a task definition whose family matches
// TaskDefinition, with a name that matches Container. Patterns match whole names; an empty one
// matches everything, but Service matches service tasks only. Path defaults to /metrics.
type Matcher struct {
	Service        string `yaml:"service"`
	TaskDefinition string `yaml:"task_definition"`
	Container      string `yaml:"container"`
	Ports          []int  `yaml:"ports"`
	Path           string `yaml:"path"`
	Scheme         string `yaml:"scheme"`
	Job            string `yaml:"job"`
}

// APILimits limit the source's AWS calls per API family: at most RequestsPerSecond (0: no limit),
// bursts of Burst after a pause, and Concurrency calls in flight.
type APILimits struct {
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	Burst             int     `yaml:"burst"`
	Concurrency       int     `yaml:"concurrency"`
}

// DefaultConfig is the source's defaults: off (no cluster), the docker-label names that
// prometheus-ecs-discovery made common, ports named "metrics" or "metrics-<anything>", and half
// of AWS's sustained rate per API family.
func DefaultConfig() Config {
	return Config{
		DockerLabels: DockerLabels{
			Enabled:     true,
			PortLabel:   "PROMETHEUS_EXPORTER_PORT",
			PathLabel:   "PROMETHEUS_EXPORTER_PATH",
			SchemeLabel: "PROMETHEUS_EXPORTER_SCHEME",
			JobLabel:    "PROMETHEUS_EXPORTER_JOB_NAME",
			// Not prometheus-ecs-discovery's: ecs-sd's, named alike.
			ScrapeIntervalLabel: "PROMETHEUS_EXPORTER_SCRAPE_INTERVAL",
			ScrapeTimeoutLabel:  "PROMETHEUS_EXPORTER_SCRAPE_TIMEOUT",
		},
		PortNames:               PortNames{Enabled: true, Pattern: "metrics(-.+)?", Path: "/metrics"},
		TaskRefreshInterval:     model.Duration(10 * time.Minute),
		InstanceRefreshInterval: model.Duration(time.Hour),
		MetadataRefreshInterval: model.Duration(5 * time.Minute),
		API:                     APILimits{RequestsPerSecond: 10, Burst: 20, Concurrency: 5},
	}
}

// Enabled reports whether the source is on.
func (c *Config) Enabled() bool { return len(c.Clusters) > 0 || c.AllClusters }

// Validate reports every setting that cannot work, each named, in a fixed order, and compiles the
// rules (patterns, default paths) for New. The durations are checked by config.Validate, which
// bounds every duration setting with one rule and calls this.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Clusters) > 0 && c.AllClusters {
		errs = append(errs, errors.New("ecs: clusters and all_clusters exclude each other"))
	}
	for _, name := range c.Clusters {
		if strings.TrimSpace(name) == "" {
			errs = append(errs, errors.New("ecs cluster: empty name"))
		}
	}
	if r := c.API.RequestsPerSecond; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		errs = append(errs, fmt.Errorf("ecs api requests per second %g: must be a number, 0 or more (0: no limit)", r))
	}
	if c.API.Burst < 1 {
		errs = append(errs, fmt.Errorf("ecs api burst %d: must be at least 1", c.API.Burst))
	}
	if c.API.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("ecs api concurrency %d: must be at least 1", c.API.Concurrency))
	}
	rules, err := compileRules(*c)
	if err := errors.Join(append(errs, err)...); err != nil {
		return err
	}
	c.rules = &rules
	return nil
}
