package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/ecs-sd/ecs-sd/internal/awscheck"
	"github.com/ecs-sd/ecs-sd/internal/config"
)

// commands are ecs-sd's commands: the daemon (the default, run without a command) and the checks.
type commands struct {
	checkAWS, checkConfig *kingpin.CmdClause
	file                  *string // of check config
}

func registerCommands(app *kingpin.Application) commands {
	app.Command("serve", "Discover and serve the targets (the default command).").Default()
	check := app.Command("check", "Check the configuration before deploying ecs-sd.")
	c := commands{
		checkAWS:    check.Command("aws", "Call once each read-only AWS action the configuration needs, in every (account, region) pair, and print one line per action: ok, denied (with the policy statement to add) or failed. Exit 0 only if all pass."),
		checkConfig: check.Command("config", "Validate a YAML configuration file as the daemon would (with the environment and flags over it), without calling AWS. Exit 0 if valid, 2 otherwise."),
	}
	c.file = c.checkConfig.Arg("file", "The YAML configuration file.").Required().String()
	return c
}

// checkConfig validates the configuration the daemon would run with if given --config.file=file,
// and prints a one-line summary of it: the exit code is 0 when it is valid, 2 otherwise.
func checkConfig(fl *flags, file string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	if *fl.configFile != "" && *fl.configFile != file {
		fmt.Fprintf(stderr, "ecs-sd: check config %s: --config.file=%s names another file\n", file, *fl.configFile)
		return 2
	}
	*fl.configFile = file
	cfg, err := fl.resolve(lookupEnv)
	if err == nil {
		_, err = newLogger(cfg.Log)
	}
	if err == nil && cfg.Web.ConfigFile != "" {
		if err = web.Validate(cfg.Web.ConfigFile); err != nil {
			err = fmt.Errorf("web config file %s: %w", cfg.Web.ConfigFile, err)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "ecs-sd: invalid configuration: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "%s: valid: %s\n", file, summary(cfg))
	return 0
}

// summary says in one line what a valid configuration discovers, where, and into what.
func summary(cfg config.Config) string {
	var sources []string
	if cm := cfg.CloudMap; cm.Enabled {
		if len(cm.Namespaces) > 0 {
			sources = append(sources, "cloudmap (namespaces "+strings.Join(cm.Namespaces, ", ")+")")
		} else {
			sources = append(sources, "cloudmap (namespaces from SSM parameter "+cm.NamespacesParameter+")")
		}
	}
	switch {
	case cfg.ECS.AllClusters:
		sources = append(sources, "ecs (every cluster)")
	case len(cfg.ECS.Clusters) > 0:
		sources = append(sources, "ecs (clusters "+strings.Join(cfg.ECS.Clusters, ", ")+")")
	}
	var accounts []string
	if cfg.AWS.OwnAccount {
		accounts = append(accounts, "own account")
	}
	if n := len(cfg.AWS.Accounts); n > 0 {
		accounts = append(accounts, fmt.Sprintf("%d role account(s)", n))
	}
	regions := "the SDK's region"
	if r := cfg.AWS.DiscoveryRegions(cfg.AWS.Region); len(r) > 0 && r[0] != "" {
		regions = "region(s) " + strings.Join(r, ", ")
	}
	var outputs []string
	if cfg.Output.FileSD {
		outputs = append(outputs, "file_sd "+filepath.Join(cfg.Output.Dir, cfg.Output.FileName))
	}
	if cfg.Output.HTTPSD {
		outputs = append(outputs, "http_sd "+cfg.Web.TargetsPath)
	}
	s := fmt.Sprintf("sources %s in %s, %s; outputs %s; refresh every %s",
		strings.Join(sources, ", "), strings.Join(accounts, " and "), regions, strings.Join(outputs, ", "), cfg.RefreshInterval)
	if cfg.Events.QueueURL != "" {
		s += "; events from " + cfg.Events.QueueURL
	}
	if cfg.PrometheusConfig.Enabled {
		s += "; Prometheus configuration from SSM parameter " + cfg.PrometheusConfig.Parameter
	}
	return s
}

// checkAWS runs the AWS check of cfg and prints its lines to stdout: the exit code is 0 when
// every action passed, 1 when one did not, 2 for a configuration that cannot start.
func checkAWS(ctx context.Context, cfg config.Config, logger *slog.Logger, stdout, stderr io.Writer) int {
	accs, err := newAccounts(ctx, cfg, true, prometheus.NewRegistry(), logger)
	switch {
	case errors.As(err, new(configError)):
		fmt.Fprintf(stderr, "ecs-sd: invalid configuration: %v\n", err)
		return 2
	case err != nil: // ecs-sd's own account id could not be read (several pairs)
		fmt.Fprintln(stdout, awscheck.Result{Action: awscheck.GetCallerIdentity, Status: awscheck.Failed, Err: err}.Line())
		return 1
	}
	pairs := make([]awscheck.Pair, len(accs.pairs))
	for i, p := range accs.pairs {
		pairs[i] = awscheck.Pair{Region: p.Region, AWS: p.aws}
		if p.role != nil {
			pairs[i].RoleARN = p.role.ARN
		}
	}
	passed, err := awscheck.Write(stdout, awscheck.Run(ctx, awscheck.Options{Config: cfg, Pairs: pairs, Own: accs.own}))
	if err != nil || !passed {
		return 1
	}
	return 0
}
