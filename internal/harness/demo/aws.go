package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ecs-sd/ecs-sd/internal/harness/rig"
	"github.com/ecs-sd/ecs-sd/internal/harness/supervise"
)

// createResources runs the deploy kit's first three CLI steps against moto, as a user would run
// them against AWS: 01-cloudmap.sh (a new VPC, the private DNS namespace, the webapp and
// node-exporter Cloud Map services with their METRICS_* tags), 02-ssm-parameters.sh (an AMP
// workspace, the namespace list and the Prometheus configuration parameters) and 03-events.sh
// (event mode: the SQS queue and its dead-letter queue, the EventBridge rules for the task state
// changes of cluster ecs-sd and for Cloud Map's RegisterInstance and DeregisterInstance calls as
// CloudTrail reports them, which send to the queue). The configuration
// template 02 renders is the deploy kit's, made local (see prometheusTemplate) with ecs-sd
// scraped at ecsSDAddr.
func (p *Pipeline) createResources(ctx context.Context, ecsSDAddr string) error {
	setup := filepath.Join(p.opts.Dir, "setup")
	src, err := os.ReadFile(filepath.Join(p.opts.RepoRoot, "deploy", "prometheus", "prometheus-file-sd.yml"))
	if err != nil {
		return fmt.Errorf("read the deploy kit's prometheus configuration: %w", err)
	}
	tmpl, err := prometheusTemplate(src, templateSettings{
		FileSDPath:        p.FileSDFile(),
		EcsSDAddr:         ecsSDAddr,
		RemoteWriteURL:    p.SinkURL + "/api/v1/write",
		ScrapeInterval:    p.opts.ScrapeInterval,
		BatchSendDeadline: p.opts.ScrapeInterval,
	})
	if err != nil {
		return err
	}
	tmplPath := filepath.Join(setup, "prometheus-template.yml")
	if err := os.WriteFile(tmplPath, tmpl, 0o644); err != nil {
		return fmt.Errorf("write prometheus configuration template: %w", err)
	}
	p.Outputs = map[string]string{}
	steps := []struct {
		script string
		env    []string
	}{
		{"01-cloudmap.sh", []string{
			"CREATE_VPC=true",
			"WEBAPP_METRICS_PORT=" + strconv.Itoa(WebappPort),
			"NODE_EXPORTER_METRICS_PORT=" + strconv.Itoa(NodeExporterPort),
		}},
		{"02-ssm-parameters.sh", []string{"PROMETHEUS_CONFIG_TEMPLATE=" + tmplPath}},
		{"03-events.sh", []string{"CLUSTER_NAME=" + ClusterName}},
	}
	for _, step := range steps {
		start := time.Now()
		if err := p.runScript(ctx, step.script, step.env); err != nil {
			return err
		}
		p.log.Info("ran deploy script against moto", "script", "deploy/scripts/"+step.script,
			"took", time.Since(start).Round(100*time.Millisecond))
	}
	for name, script := range map[string]string{
		"CLOUDMAP_WEBAPP_SERVICE_ID":        "01-cloudmap.sh",
		"CLOUDMAP_NODE_EXPORTER_SERVICE_ID": "01-cloudmap.sh",
		"EVENTS_QUEUE_URL":                  "03-events.sh",
	} {
		if p.Outputs[name] == "" {
			return fmt.Errorf("deploy/scripts/%s printed no %s", script, name)
		}
	}
	return nil
}

// runScript runs a deploy script with moto's environment, the variables printed by the steps
// before it, and env; it adds the variables it prints to p.Outputs. Its progress goes to
// logs/setup.log.
func (p *Pipeline) runScript(ctx context.Context, script string, env []string) error {
	bash, err := supervise.LookPath("bash", "the deploy scripts are bash scripts")
	if err != nil {
		return err
	}
	full := rig.AWSEnv(p.MotoURL)
	for k, v := range p.Outputs {
		full = append(full, k+"="+v)
	}
	full = append(full, env...)
	var stdout bytes.Buffer
	ctx, cancel := context.WithTimeout(ctx, scriptTimeout)
	defer cancel()
	err = supervise.Run(ctx, supervise.Command{
		Name:    "deploy/scripts/" + script,
		Path:    bash,
		Args:    []string{filepath.Join(p.opts.RepoRoot, "deploy", "scripts", script)},
		Env:     full,
		LogPath: filepath.Join(p.LogDir, "setup.log"),
		Stdout:  &stdout,
	}, 5*time.Second)
	if err != nil {
		return err
	}
	vars, err := parseExports(stdout.String())
	if err != nil {
		return fmt.Errorf("read the output of deploy/scripts/%s: %w", script, err)
	}
	for k, v := range vars {
		p.Outputs[k] = v
	}
	return nil
}

// exportLine is a line the deploy scripts print for eval: export NAME='value', with every ' of
// the value written '\”.
var exportLine = regexp.MustCompile(`^export ([A-Za-z_][A-Za-z0-9_]*)='(.*)'$`)

// parseExports reads the export lines of a deploy script's output.
func parseExports(out string) (map[string]string, error) {
	vars := map[string]string{}
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		if line == "" {
			continue
		}
		m := exportLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %q is not an export line", line)
		}
		vars[m[1]] = strings.ReplaceAll(m[2], `'\''`, `'`)
	}
	return vars, nil
}
