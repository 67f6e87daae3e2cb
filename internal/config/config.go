// Package config holds ecs-sd's settings and resolves them from, in rising precedence: built-in
// defaults, the YAML file (--config.file), the seed's environment variables, and command-line
// flags. A setting given in several places takes the value of the highest one.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/ecs-sd/ecs-sd/internal/ecs"
	"github.com/ecs-sd/ecs-sd/internal/events"
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
	Events           Events           `yaml:"events"`
	PrometheusConfig PrometheusConfig `yaml:"prometheus_config"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // logfmt or json
}

// AWS selects region and endpoint (empty values use the SDK's default chain) and bounds every
// AWS call: AttemptTimeout one attempt (connect, send, read the answer), after which the attempt
// is retried; CallTimeout the whole call with its retries and back-off, after which it fails and
// the discovery keeps the last targets of what it was about.
//
// Every enabled source discovers in every (account, region) pair: the accounts are ecs-sd's own
// (OwnAccount, the default) and those of the Accounts' roles; the regions are Regions, or else
// Region. Region is also that of ecs-sd's own calls (the events queue, the Prometheus
// configuration parameter).
type AWS struct {
	Region         string         `yaml:"region"`
	Regions        []string       `yaml:"regions"`
	Accounts       []Account      `yaml:"accounts"`
	OwnAccount     bool           `yaml:"own_account"`
	EndpointURL    string         `yaml:"endpoint_url"`
	AttemptTimeout model.Duration `yaml:"attempt_timeout"`
	CallTimeout    model.Duration `yaml:"call_timeout"`
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
	// Concurrency is the most Cloud Map calls in flight: namespaces and services are discovered
	// in parallel up to it.
	Concurrency int `yaml:"concurrency"`
}

// Events configures event mode: the SQS queue to which EventBridge rules deliver ECS task state
// changes and Cloud Map registrations. Empty QueueURL: no events, discovery by polling only.
type Events struct {
	QueueURL string `yaml:"queue_url"`
	// Coalesce is how long after the first messages of a batch further ones are awaited before
	// the batch is applied as one update of the outputs; 0: each receive on its own.
	Coalesce model.Duration `yaml:"coalesce"`
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
	defaultNamespacesParam    = "ECS-ServiceDiscovery-Namespaces"
	defaultPrometheusParam    = "ECS-Prometheus-Configuration"
	defaultRefreshIntervalSec = 30
)

// Bounds of every duration setting, checked by Validate with one rule for all: the interval
// between cycles from MinRefreshInterval (below a second is for tests and demos) to MaxDuration;
// a time to live (how long something read from AWS is reused) from 0, which has a meaning of its
// own, to MaxDuration. A longer value is a mistake (a unit typed wrong, or a number that overflowed).
const (
	MinRefreshInterval = 100 * time.Millisecond
	MaxDuration        = 24 * time.Hour
	// MaxCoalesce bounds the events' coalescing window, which delays every event's update.
	MaxCoalesce = 5 * time.Second
)

// Bounds of the AWS call timeouts: below the least, AWS cannot answer; above the most, a hung
// call would hold discovery for longer than any refresh interval is worth.
const (
	minCallTimeout = 100 * time.Millisecond
	maxCallTimeout = 10 * time.Minute
)

// Default returns the built-in defaults (the seed's).
func Default() Config {
	return Config{
		RefreshInterval: model.Duration(defaultRefreshIntervalSec * time.Second),
		Log:             Log{Level: "info", Format: "logfmt"},
		AWS:             AWS{OwnAccount: true, AttemptTimeout: model.Duration(5 * time.Second), CallTimeout: model.Duration(10 * time.Second)},
		Output:          Output{Dir: "/etc/config", FileName: "ecs-services.json", FileSD: true, HTTPSD: true},
		Web:             Web{ListenAddresses: []string{":9001"}, TargetsPath: "/prometheus-targets"},
		CloudMap: CloudMap{
			Enabled:             true,
			NamespacesParameter: defaultNamespacesParam,
			TagsRefreshInterval: model.Duration(5 * time.Minute),
			Concurrency:         8,
		},
		ECS:              ecs.DefaultConfig(),
		Events:           Events{Coalesce: model.Duration(events.DefaultCoalesce)},
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

// Parse applies the YAML document data over c. Unknown keys are errors; an error names the key it
// is about by its path ("line 2: unknown key cloudmap.concurency").
func (c *Config) Parse(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nameKeys(data, err)
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
		// Bounded before it is multiplied: 18446744074 s would overflow to 0.29 s.
		maxSeconds := int64(MaxDuration / time.Second)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > maxSeconds {
			return fmt.Errorf("%s=%q: want a whole number of seconds from 1 to %d (%s)", EnvConfigReloadFrequency, v, maxSeconds, model.Duration(MaxDuration))
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
	return nil
}

// Validate reports every setting that cannot work, each named, in a fixed order, and prepares
// the settings for use (the ECS source's rules are compiled): the one place where settings are
// checked.
func (c *Config) Validate() error {
	errs := c.checkDurations()
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
		if c.CloudMap.Concurrency < 1 {
			errs = append(errs, fmt.Errorf("cloudmap concurrency %d: must be at least 1", c.CloudMap.Concurrency))
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
	errs = append(errs, c.AWS.validateTimeouts(), c.AWS.validateAccounts())
	if c.ECS.Enabled() {
		errs = append(errs, c.ECS.Validate())
	}
	if c.Events.QueueURL != "" {
		if err := checkQueueURL(c.Events.QueueURL, c.AWS.Region); err != nil {
			errs = append(errs, fmt.Errorf("events queue url %q: %w", c.Events.QueueURL, err))
		}
	}
	if !c.CloudMap.Enabled && !c.ECS.Enabled() {
		errs = append(errs, errors.New("no source enabled: enable cloudmap, or give ecs clusters (or all_clusters)"))
	}
	if !c.Output.FileSD && !c.Output.HTTPSD {
		errs = append(errs, errors.New("no output enabled: enable file_sd or http_sd"))
	}
	return errors.Join(errs...)
}

// checkDurations bounds every duration setting, the ECS source's included, in a fixed order.
func (c *Config) checkDurations() []error {
	var errs []error
	for _, d := range []struct {
		name      string
		value     model.Duration
		min, max  time.Duration // max 0: MaxDuration
		zeroMeans string        // for a time to live, what 0 means
	}{
		{"refresh interval", c.RefreshInterval, MinRefreshInterval, 0, ""},
		{"cloudmap tags refresh interval", c.CloudMap.TagsRefreshInterval, 0, 0, "read every cycle"},
		{"ecs task refresh interval", c.ECS.TaskRefreshInterval, 0, 0, "never again"},
		{"ecs instance refresh interval", c.ECS.InstanceRefreshInterval, 0, 0, "for its life"},
		{"ecs metadata refresh interval", c.ECS.MetadataRefreshInterval, 0, 0, "for its life"},
		{"events coalesce", c.Events.Coalesce, 0, MaxCoalesce, "each receive on its own"},
	} {
		maxValue := cmp.Or(d.max, MaxDuration)
		if v := time.Duration(d.value); v < d.min || v > maxValue {
			bounds := fmt.Sprintf("must be from %s to %s", model.Duration(d.min), model.Duration(maxValue))
			if d.zeroMeans != "" {
				bounds += fmt.Sprintf(" (0s: %s)", d.zeroMeans)
			}
			errs = append(errs, fmt.Errorf("%s %s: %s", d.name, d.value, bounds))
		}
	}
	return errs
}

// Shapes of an SQS queue URL: https://sqs.REGION.amazonaws.com/ACCOUNT_ID/QUEUE_NAME (or the
// legacy host REGION.queue.amazonaws.com); a queue name is 1 to 80 letters, digits, hyphens and
// underscores, a FIFO queue's ending in ".fifo".
var (
	accountIDPattern = regexp.MustCompile(`^\d{12}$`)
	queueNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
	queueHostPattern = regexp.MustCompile(`^(?:sqs\.([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com(?:\.cn)?$`)
)

// checkQueueURL checks that u is an SQS queue URL, in region when the host names a region and
// region is set.
func checkQueueURL(u, region string) error {
	const shape = "http(s)://HOST/ACCOUNT_ID/QUEUE_NAME"
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.RawQuery != "" || p.Fragment != "" {
		return errors.New("must be an SQS queue URL, " + shape)
	}
	account, name, ok := strings.Cut(strings.TrimPrefix(p.Path, "/"), "/")
	switch {
	case !ok || strings.Contains(name, "/"):
		return errors.New("the path must be /ACCOUNT_ID/QUEUE_NAME, as in " + shape)
	case !accountIDPattern.MatchString(account):
		return fmt.Errorf("account id %q: must be 12 digits", account)
	case len(name) > 80 || !queueNamePattern.MatchString(strings.TrimSuffix(name, ".fifo")):
		return fmt.Errorf("queue name %q: must be 1 to 80 letters, digits, hyphens or underscores (a FIFO queue's ending in .fifo)", name)
	}
	if m := queueHostPattern.FindStringSubmatch(p.Hostname()); m != nil && region != "" {
		if queueRegion := m[1] + m[2]; queueRegion != region {
			return fmt.Errorf("the queue is in region %s, ecs-sd's AWS region is %s", queueRegion, region)
		}
	}
	return nil
}

// validateTimeouts checks the AWS call timeouts: each within its bounds, and an attempt no longer
// than the call it is part of.
func (a AWS) validateTimeouts() error {
	var errs []error
	for _, d := range []struct {
		name  string
		value model.Duration
	}{{"attempt", a.AttemptTimeout}, {"call", a.CallTimeout}} {
		if v := time.Duration(d.value); v < minCallTimeout || v > maxCallTimeout {
			errs = append(errs, fmt.Errorf("aws %s timeout %s: must be between %s and %s", d.name, d.value, model.Duration(minCallTimeout), model.Duration(maxCallTimeout)))
		}
	}
	if len(errs) == 0 && a.AttemptTimeout > a.CallTimeout {
		errs = append(errs, fmt.Errorf("aws attempt timeout %s: must not exceed the call timeout %s", a.AttemptTimeout, a.CallTimeout))
	}
	return errors.Join(errs...)
}
