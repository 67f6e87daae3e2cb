// Package config holds ecs-sd's settings and resolves them from, in rising precedence: built-in
// defaults, the YAML file (--config.file), the seed's environment variables, and command-line
// flags. A setting given in several places takes the value of the highest one.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/ecs-sd/ecs-sd/internal/ecs"
)

// Config is every setting of ecs-sd. The YAML keys are the field tags.
type Config struct {
	RefreshInterval  model.Duration   `yaml:"refresh_interval"`
	Log              Log              `yaml:"log"`
	AWS              AWS              `yaml:"aws"`
	Output           Output           `yaml:"output"`
	Web              Web              `yaml:"web"`
	CloudMap         CloudMap         `yaml:"cloudmap"`
	ECS              ecs.Config       `yaml:"ecs"`
	PrometheusConfig PrometheusConfig `yaml:"prometheus_config"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // logfmt or json
}

// AWS selects region and endpoint; empty values use the SDK's default chain.
type AWS struct {
	Region      string `yaml:"region"`
	EndpointURL string `yaml:"endpoint_url"`
}

// Output configures the file_sd file and the http_sd endpoint.
type Output struct {
	Dir      string `yaml:"dir"`
	FileName string `yaml:"file_name"`
	FileSD   bool   `yaml:"file_sd"`
	HTTPSD   bool   `yaml:"http_sd"`
}

// Web configures the HTTP server (http_sd, metrics, health).
type Web struct {
	ListenAddresses []string `yaml:"listen_addresses"`
	ConfigFile      string   `yaml:"config_file"` // exporter-toolkit web config: TLS, basic auth
	TargetsPath     string   `yaml:"targets_path"`
}

// CloudMap configures the Cloud Map source.
type CloudMap struct {
	Enabled             bool           `yaml:"enabled"`
	Namespaces          []string       `yaml:"namespaces"`
	NamespacesParameter string         `yaml:"namespaces_parameter"`
	IncludeUnhealthy    bool           `yaml:"include_unhealthy"`
	TagsRefreshInterval model.Duration `yaml:"tags_refresh_interval"`
}

// PrometheusConfig configures the sync of the Prometheus configuration from SSM.
type PrometheusConfig struct {
	Enabled   bool   `yaml:"enabled"`
	Parameter string `yaml:"parameter"`
	FileName  string `yaml:"file_name"`
	ReloadURL string `yaml:"reload_url"`
}

// Environment variables of the seed's sidecar, with the same meaning and defaults.
const (
	EnvConfigFileDir          = "CONFIG_FILE_DIR"
	EnvConfigReloadFrequency  = "CONFIG_RELOAD_FREQUENCY"
	EnvNamespacesParameter    = "DISCOVERY_NAMESPACES_PARAMETER_NAME"
	EnvPrometheusConfigParam  = "PROMETHEUS_CONFIG_PARAMETER_NAME"
	EnvAWSRegion              = "AWS_REGION"
	EnvAWSEndpointURL         = "AWS_ENDPOINT_URL"
	defaultNamespacesParam    = "ECS-ServiceDiscovery-Namespaces"
	defaultPrometheusParam    = "ECS-Prometheus-Configuration"
	defaultRefreshIntervalSec = 30
)

// Default returns the built-in defaults (the seed's).
func Default() Config {
	return Config{
		RefreshInterval: model.Duration(defaultRefreshIntervalSec * time.Second),
		Log:             Log{Level: "info", Format: "logfmt"},
		Output:          Output{Dir: "/etc/config", FileName: "ecs-services.json", FileSD: true, HTTPSD: true},
		Web:             Web{ListenAddresses: []string{":9001"}, TargetsPath: "/prometheus-targets"},
		CloudMap: CloudMap{
			Enabled:             true,
			NamespacesParameter: defaultNamespacesParam,
			TagsRefreshInterval: model.Duration(5 * time.Minute),
		},
		ECS:              ecs.DefaultConfig(),
		PrometheusConfig: PrometheusConfig{Enabled: true, Parameter: defaultPrometheusParam, FileName: "prometheus.yaml"},
	}
}

// LoadFile applies the YAML file at path over c. Unknown keys are errors.
func (c *Config) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	if err := c.Parse(data); err != nil {
		return fmt.Errorf("parse config file %s: %w", path, err)
	}
	return nil
}

// Parse applies the YAML document data over c. Unknown keys are errors.
func (c *Config) Parse(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// ApplyEnv applies the seed's environment variables over c; lookup is os.LookupEnv in
// production. An empty variable counts as unset.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	get := func(name string) (string, bool) {
		v, ok := lookup(name)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}
	if v, ok := get(EnvConfigFileDir); ok {
		c.Output.Dir = v
	}
	if v, ok := get(EnvConfigReloadFrequency); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("%s=%q: want a whole number of seconds greater than 0", EnvConfigReloadFrequency, v)
		}
		c.RefreshInterval = model.Duration(time.Duration(n) * time.Second)
	}
	if v, ok := get(EnvNamespacesParameter); ok {
		c.CloudMap.NamespacesParameter = v
	}
	if v, ok := get(EnvPrometheusConfigParam); ok {
		c.PrometheusConfig.Parameter = v
	}
	if v, ok := get(EnvAWSRegion); ok {
		c.AWS.Region = v
	}
	if v, ok := get(EnvAWSEndpointURL); ok {
		c.AWS.EndpointURL = v
	}
	return nil
}

// Validate reports every setting that cannot work, each named, in a fixed order, and prepares
// the settings for use (the ECS source's rules are compiled): the one place where settings are
// checked.
func (c *Config) Validate() error {
	var errs []error
	if c.RefreshInterval <= 0 {
		errs = append(errs, fmt.Errorf("refresh interval %s: must be greater than 0", c.RefreshInterval))
	}
	if c.Output.FileSD {
		if c.Output.Dir == "" {
			errs = append(errs, errors.New("output directory: must not be empty"))
		}
		if c.Output.FileName == "" || strings.ContainsRune(c.Output.FileName, os.PathSeparator) {
			errs = append(errs, fmt.Errorf("output file name %q: must be a plain file name", c.Output.FileName))
		}
	}
	if c.Output.HTTPSD && !strings.HasPrefix(c.Web.TargetsPath, "/") {
		errs = append(errs, fmt.Errorf("web targets path %q: must start with /", c.Web.TargetsPath))
	}
	if len(c.Web.ListenAddresses) == 0 {
		errs = append(errs, errors.New("web listen address: at least one is needed"))
	}
	if c.CloudMap.Enabled {
		for _, ns := range c.CloudMap.Namespaces {
			if strings.TrimSpace(ns) == "" {
				errs = append(errs, errors.New("cloudmap namespace: empty name"))
			}
		}
		if len(c.CloudMap.Namespaces) == 0 && c.CloudMap.NamespacesParameter == "" {
			errs = append(errs, errors.New("cloudmap: neither namespaces nor a namespaces parameter is set"))
		}
		if c.CloudMap.TagsRefreshInterval < 0 {
			errs = append(errs, fmt.Errorf("cloudmap tags refresh interval %s: must not be negative", c.CloudMap.TagsRefreshInterval))
		}
	}
	if c.PrometheusConfig.Enabled {
		if c.PrometheusConfig.Parameter == "" {
			errs = append(errs, errors.New("prometheus config parameter: must not be empty (or turn the sync off)"))
		}
		if c.PrometheusConfig.FileName == "" || strings.ContainsRune(c.PrometheusConfig.FileName, os.PathSeparator) {
			errs = append(errs, fmt.Errorf("prometheus config file name %q: must be a plain file name", c.PrometheusConfig.FileName))
		}
		if c.Output.Dir == "" {
			errs = append(errs, errors.New("output directory: must not be empty (the Prometheus configuration is written there)"))
		}
	}
	if u := c.PrometheusConfig.ReloadURL; u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("prometheus reload url %q: must be an http(s) URL", u))
		}
	}
	if c.AWS.EndpointURL != "" {
		if p, err := url.Parse(c.AWS.EndpointURL); err != nil || p.Scheme == "" || p.Host == "" {
			errs = append(errs, fmt.Errorf("aws endpoint url %q: must be an absolute URL", c.AWS.EndpointURL))
		}
	}
	if c.ECS.Enabled() {
		errs = append(errs, c.ECS.Validate())
	}
	if !c.CloudMap.Enabled && !c.ECS.Enabled() {
		errs = append(errs, errors.New("no source enabled: enable cloudmap, or give ecs clusters (or all_clusters)"))
	}
	if !c.Output.FileSD && !c.Output.HTTPSD {
		errs = append(errs, errors.New("no output enabled: enable file_sd or http_sd"))
	}
	return errors.Join(errs...)
}
