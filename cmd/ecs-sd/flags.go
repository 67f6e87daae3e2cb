package main

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"

	"github.com/ecs-sd/ecs-sd/internal/config"
)

// flags holds the command line. Every setting flag is applied over the configuration only when
// the user gave it, so that the precedence is flag > environment > file > default.
type flags struct {
	configFile *string
	once       *bool
	format     *string
	applies    []func(*config.Config) error // one per setting flag, a no-op unless given
}

func registerFlags(app *kingpin.Application) *flags {
	def := config.Default()
	f := &flags{
		configFile: app.Flag("config.file", "YAML configuration file; every flag has a key there (see README). Precedence: flag > environment > file > default.").String(),
		once:       app.Flag("once", "Run one discovery cycle, write the outputs and exit: 0 on success, 1 when discovery failed.").Bool(),
		format:     app.Flag("output.format", "What --once makes of the targets: file (write the outputs), or table (print the targets and the skipped items on stdout, write nothing).").Default(formatFile).String(),
	}
	durationFlag(f, app, "refresh.interval", "Time between discovery cycles. Env "+config.EnvConfigReloadFrequency+" (whole seconds).",
		time.Duration(def.RefreshInterval), func(c *config.Config, v time.Duration) { c.RefreshInterval = model.Duration(v) })
	stringFlag(f, app, "log.level", "Only log messages with the given severity or above: debug, info, warn, error.",
		def.Log.Level, func(c *config.Config, v string) { c.Log.Level = v })
	stringFlag(f, app, "log.format", "Output format of log messages: logfmt, json.",
		def.Log.Format, func(c *config.Config, v string) { c.Log.Format = v })
	stringFlag(f, app, "aws.region", "AWS region. Env "+config.EnvAWSRegion+"; default: the SDK's chain.",
		def.AWS.Region, func(c *config.Config, v string) { c.AWS.Region = v })
	registerAccountFlags(f, app, def.AWS)
	stringFlag(f, app, "aws.endpoint-url", "Endpoint for every AWS API (an emulator or a proxy), over AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>, which the AWS SDK reads otherwise.",
		def.AWS.EndpointURL, func(c *config.Config, v string) { c.AWS.EndpointURL = v })
	durationFlag(f, app, "aws.attempt-timeout", "Most time one attempt of an AWS call may take (connect, send, read the answer) before it is retried.",
		time.Duration(def.AWS.AttemptTimeout), func(c *config.Config, v time.Duration) { c.AWS.AttemptTimeout = model.Duration(v) })
	durationFlag(f, app, "aws.call-timeout", "Most time an AWS call may take with its retries and back-off; then it fails and what it was about keeps its last targets. Keep it well under the refresh interval.",
		time.Duration(def.AWS.CallTimeout), func(c *config.Config, v time.Duration) { c.AWS.CallTimeout = model.Duration(v) })
	stringFlag(f, app, "output.dir", "Directory of the file_sd file and the Prometheus configuration. Env "+config.EnvConfigFileDir+".",
		def.Output.Dir, func(c *config.Config, v string) { c.Output.Dir = v })
	stringFlag(f, app, "output.file-name", "Name of the file_sd file in the output directory.",
		def.Output.FileName, func(c *config.Config, v string) { c.Output.FileName = v })
	boolFlag(f, app, "output.file-sd", "Write the file_sd file.",
		def.Output.FileSD, func(c *config.Config, v bool) { c.Output.FileSD = v })
	boolFlag(f, app, "output.http-sd", "Serve the targets for http_sd at --web.targets-path.",
		def.Output.HTTPSD, func(c *config.Config, v bool) { c.Output.HTTPSD = v })
	stringsFlag(f, app, "web.listen-address", "Address to listen on for http_sd, metrics and health (repeatable).",
		def.Web.ListenAddresses, func(c *config.Config, v []string) { c.Web.ListenAddresses = v })
	stringFlag(f, app, "web.config.file", "Path to an exporter-toolkit web configuration file (TLS, basic auth).",
		def.Web.ConfigFile, func(c *config.Config, v string) { c.Web.ConfigFile = v })
	stringFlag(f, app, "web.targets-path", "HTTP path of the http_sd target list.",
		def.Web.TargetsPath, func(c *config.Config, v string) { c.Web.TargetsPath = v })
	boolFlag(f, app, "cloudmap.enable", "Discover targets in AWS Cloud Map.",
		def.CloudMap.Enabled, func(c *config.Config, v bool) { c.CloudMap.Enabled = v })
	stringsFlag(f, app, "cloudmap.namespace", "Cloud Map namespace name or id to discover (repeatable); when given, the SSM namespaces parameter is not read.",
		def.CloudMap.Namespaces, func(c *config.Config, v []string) { c.CloudMap.Namespaces = v })
	stringFlag(f, app, "cloudmap.namespaces-parameter", "SSM parameter listing the namespaces, comma-separated (String, StringList or SecureString). Env "+config.EnvNamespacesParameter+".",
		def.CloudMap.NamespacesParameter, func(c *config.Config, v string) { c.CloudMap.NamespacesParameter = v })
	boolFlag(f, app, "cloudmap.include-unhealthy", "Keep instances whose Cloud Map health is UNHEALTHY.",
		def.CloudMap.IncludeUnhealthy, func(c *config.Config, v bool) { c.CloudMap.IncludeUnhealthy = v })
	durationFlag(f, app, "cloudmap.tags-refresh-interval", "How long a Cloud Map service's tags (METRICS_PATH, METRICS_PORT, ...) are reused before they are read again.",
		time.Duration(def.CloudMap.TagsRefreshInterval), func(c *config.Config, v time.Duration) { c.CloudMap.TagsRefreshInterval = model.Duration(v) })
	intFlag(f, app, "cloudmap.concurrency", "Most Cloud Map calls in flight: namespaces and services are discovered in parallel up to it.",
		def.CloudMap.Concurrency, func(c *config.Config, v int) { c.CloudMap.Concurrency = v })
	registerECSFlags(f, app, def.ECS)
	stringFlag(f, app, "events.queue-url", "SQS queue to which EventBridge rules deliver ECS task state changes and Cloud Map registrations (event mode): each batch of events is applied at once, and --refresh.interval becomes the full resync (5m suggested). E.g. https://sqs.us-east-1.amazonaws.com/123456789012/ecs-sd-events.",
		def.Events.QueueURL, func(c *config.Config, v string) { c.Events.QueueURL = v })
	durationFlag(f, app, "events.coalesce", "How long after a batch's first events further ones are awaited, so that they update the outputs once (0s to 5s; 0s: each receive on its own).",
		time.Duration(def.Events.Coalesce), func(c *config.Config, v time.Duration) { c.Events.Coalesce = model.Duration(v) })
	boolFlag(f, app, "prometheus.config-sync", "Write the Prometheus configuration held in an SSM parameter to the output directory.",
		def.PrometheusConfig.Enabled, func(c *config.Config, v bool) { c.PrometheusConfig.Enabled = v })
	stringFlag(f, app, "prometheus.config-parameter", "SSM parameter holding the Prometheus configuration. Env "+config.EnvPrometheusConfigParam+".",
		def.PrometheusConfig.Parameter, func(c *config.Config, v string) { c.PrometheusConfig.Parameter = v })
	stringFlag(f, app, "prometheus.config-file-name", "Name of the Prometheus configuration file in the output directory.",
		def.PrometheusConfig.FileName, func(c *config.Config, v string) { c.PrometheusConfig.FileName = v })
	stringFlag(f, app, "prometheus.reload-url", "URL to POST after the Prometheus configuration changed, e.g. http://localhost:9090/-/reload.",
		def.PrometheusConfig.ReloadURL, func(c *config.Config, v string) { c.PrometheusConfig.ReloadURL = v })
	return f
}

// resolve builds the configuration: defaults, then the file, then the environment, then flags;
// then it is validated, once.
func (f *flags) resolve(lookupEnv func(string) (string, bool)) (config.Config, error) {
	cfg := config.Default()
	if *f.configFile != "" {
		if err := cfg.LoadFile(*f.configFile); err != nil {
			return cfg, err
		}
	}
	if err := cfg.ApplyEnv(lookupEnv); err != nil {
		return cfg, err
	}
	for _, apply := range f.applies {
		if err := apply(&cfg); err != nil {
			return cfg, err
		}
	}
	err := cfg.Validate()
	return cfg, err
}

// registerAccountFlags registers the flags of the accounts and regions to discover in.
func registerAccountFlags(f *flags, app *kingpin.Application, def config.AWS) {
	stringsFlag(f, app, "aws.discovery-region", "Region to discover in (repeatable); default: --aws.region. Every source runs in every (account, region) pair.",
		def.Regions, func(c *config.Config, v []string) { c.AWS.Regions = v })
	boolFlag(f, app, "aws.own-account", "Discover in the account of ecs-sd's own credentials.",
		def.OwnAccount, func(c *config.Config, v bool) { c.AWS.OwnAccount = v })
	var roleSet, idSet bool
	roles := app.Flag("aws.account-role-arn", "IAM role to assume to discover in its account too (repeatable), e.g. arn:aws:iam::111111111111:role/ecs-sd-reader. Replaces the file's aws.accounts.").IsSetByUser(&roleSet).Strings()
	externalID := app.Flag("aws.account-external-id", "External id sent when assuming each --aws.account-role-arn role (per-role ids: aws.accounts in the file).").IsSetByUser(&idSet).String()
	f.applies = append(f.applies, func(c *config.Config) error {
		switch {
		case idSet && !roleSet:
			return errors.New("--aws.account-external-id: applies to the roles of --aws.account-role-arn, and none is given")
		case !roleSet:
			return nil
		}
		c.AWS.Accounts = c.AWS.Accounts[:0:0]
		for _, arn := range *roles {
			c.AWS.Accounts = append(c.AWS.Accounts, config.Account{RoleARN: arn, ExternalID: *externalID})
		}
		return nil
	})
}

// setting registers the application of one flag's value, when the user gave the flag.
func setting[T any](f *flags, set *bool, value *T, apply func(*config.Config, T)) {
	f.applies = append(f.applies, func(c *config.Config) error {
		if *set {
			apply(c, *value)
		}
		return nil
	})
}

func stringFlag(f *flags, app *kingpin.Application, name, help, def string, apply func(*config.Config, string)) {
	var set bool
	setting(f, &set, app.Flag(name, help).Default(def).IsSetByUser(&set).String(), apply)
}

func stringsFlag(f *flags, app *kingpin.Application, name, help string, def []string, apply func(*config.Config, []string)) {
	var set bool
	setting(f, &set, app.Flag(name, help).Default(def...).IsSetByUser(&set).Strings(), apply)
}

func intFlag(f *flags, app *kingpin.Application, name, help string, def int, apply func(*config.Config, int)) {
	var set bool
	setting(f, &set, app.Flag(name, help).Default(strconv.Itoa(def)).IsSetByUser(&set).Int(), apply)
}

func floatFlag(f *flags, app *kingpin.Application, name, help string, def float64, apply func(*config.Config, float64)) {
	var set bool
	setting(f, &set, app.Flag(name, help).Default(strconv.FormatFloat(def, 'g', -1, 64)).IsSetByUser(&set).Float64(), apply)
}

func boolFlag(f *flags, app *kingpin.Application, name, help string, def bool, apply func(*config.Config, bool)) {
	var set bool
	d := "false"
	if def {
		d = "true"
	}
	setting(f, &set, app.Flag(name, help).Default(d).IsSetByUser(&set).Bool(), apply)
}

// durationFlag takes Prometheus-style durations ("30s", "5m", "1h") and names itself when the
// value is not one.
func durationFlag(f *flags, app *kingpin.Application, name, help string, def time.Duration, apply func(*config.Config, time.Duration)) {
	var set bool
	value := app.Flag(name, help).Default(model.Duration(def).String()).IsSetByUser(&set).String()
	f.applies = append(f.applies, func(c *config.Config) error {
		if !set {
			return nil
		}
		d, err := model.ParseDuration(*value)
		if err != nil {
			return fmt.Errorf("--%s=%q: %w", name, *value, err)
		}
		apply(c, time.Duration(d))
		return nil
	})
}
