package demo

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ecs-sd/ecs-sd/internal/harness/promclient"
	"github.com/ecs-sd/ecs-sd/internal/harness/rig"
	"github.com/ecs-sd/ecs-sd/internal/harness/supervise"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// AgentTemplate is the deploy kit's configuration of one Prometheus agent of a fleet that shares
// ecs-sd's targets, relative to the repository root.
const AgentTemplate = "deploy/prometheus/prometheus-agent-shard.yml"

// AgentLabel is the external label the local agents of a sharded pipeline add to every series
// they send, their shard number: it shows at the sink which agent sent a series. A fleet does
// not add it (the template says why: a target's series would change labels when it moves).
const AgentLabel = "agent"

// AgentSettings are what AgentConfig needs for one agent.
type AgentSettings struct {
	Shard, Shards int
	// EcsSDAddr is ecs-sd's host:port, the template's ECS_SD_ADDRESS.
	EcsSDAddr string
	// RemoteWriteURL is the sink's /api/v1/write.
	RemoteWriteURL string
	// ScrapeInterval is the global scrape interval, the http_sd refresh interval and the
	// remote-write batch deadline.
	ScrapeInterval time.Duration
}

// agentHeader opens a generated agent configuration.
const agentHeader = "# Written by ecs-sd's demo (internal/harness/demo) from " + AgentTemplate + ",\n" +
	"# rendered by deploy/scripts/lib.sh: remote write to the local sink without sigv4, short\n" +
	"# intervals, and the external label " + AgentLabel + " (the shard), to show at the sink which agent sent a series.\n"

// AgentConfig renders the deploy kit's agent template for s.Shard of s.Shards as its users
// render it (deploy/scripts/lib.sh's render, with SHARD, SHARDS and ECS_SD_ADDRESS set), then
// makes it local: remote write to s.RemoteWriteURL without sigv4, s.ScrapeInterval for scrapes,
// http_sd refreshes and remote-write batches, and the external label AgentLabel. The jobs, their
// http_sd URLs and relabelling stay the kit's.
func AgentConfig(ctx context.Context, repoRoot string, s AgentSettings) ([]byte, error) {
	bash, err := supervise.LookPath("bash", "the deploy kit's render is a bash function")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "-c", `source "$1" && render "$2"`, "render",
		filepath.Join(repoRoot, "deploy", "scripts", "lib.sh"), filepath.Join(repoRoot, filepath.FromSlash(AgentTemplate)))
	cmd.Env = append(os.Environ(),
		"AWS_REGION="+rig.Region, // in the remote_write URL and its sigv4, which are replaced
		"SHARD="+strconv.Itoa(s.Shard),
		"SHARDS="+strconv.Itoa(s.Shards),
		"ECS_SD_ADDRESS="+s.EcsSDAddr,
		"WORKSPACE_ID=ws-local", // in the remote_write URL, which is replaced
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	rendered, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("render %s for shard %d of %d: %w: %s", AgentTemplate, s.Shard, s.Shards, err, bytes.TrimSpace(stderr.Bytes()))
	}
	doc, root, err := parseConfig(rendered)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", AgentTemplate, err)
	}
	setScrapeInterval(root, s.ScrapeInterval)
	external := &yaml.Node{Kind: yaml.MappingNode}
	setValue(external, AgentLabel, scalar(strconv.Itoa(s.Shard)))
	setValue(global(root), "external_labels", external)
	httpSD := 0
	for _, job := range items(mappingValue(root, "scrape_configs")) {
		for _, sd := range items(mappingValue(job, "http_sd_configs")) {
			setValue(sd, "refresh_interval", scalar(s.ScrapeInterval.String()))
			httpSD++
		}
	}
	if httpSD == 0 {
		return nil, fmt.Errorf("%s has no http_sd_configs", AgentTemplate)
	}
	if setRemoteWrite(root, s.RemoteWriteURL, s.ScrapeInterval) == 0 {
		return nil, fmt.Errorf("%s has no remote_write", AgentTemplate)
	}
	return encodeConfig(agentHeader, doc)
}

// Agent is one Prometheus agent of a sharded pipeline.
type Agent struct {
	Shard int    // it scrapes shard Shard of Options.Shards of ecs-sd's targets
	URL   string // its base URL on 127.0.0.1
	// ConfigFile is its configuration, rendered by AgentConfig.
	ConfigFile string
	client     *promclient.Client
}

// startAgents starts Options.Shards Prometheus agents, agent I on shard I of ecs-sd's http_sd
// list, each with its configuration rendered from the deploy kit's template, all remote-writing
// to the sink.
func (p *Pipeline) startAgents(ctx context.Context) error {
	ecsSDAddr := strings.TrimPrefix(p.EcsSDURL, "http://")
	for shard := range p.opts.Shards {
		dir := filepath.Join(p.opts.Dir, fmt.Sprintf("agent-%d", shard))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create agent directory: %w", err)
		}
		config, err := AgentConfig(ctx, p.opts.RepoRoot, AgentSettings{
			Shard: shard, Shards: p.opts.Shards, EcsSDAddr: ecsSDAddr,
			RemoteWriteURL: p.SinkURL + "/api/v1/write", ScrapeInterval: p.opts.ScrapeInterval,
		})
		if err != nil {
			return err
		}
		configPath := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(configPath, config, 0o644); err != nil {
			return fmt.Errorf("write agent configuration: %w", err)
		}
		url, proc, err := p.startPromServer(ctx, rig.Prometheus{
			Name:       fmt.Sprintf("prometheus agent %d (shard %d of %d)", shard, shard, p.opts.Shards),
			ConfigFile: configPath,
			DataDir:    filepath.Join(dir, "data"),
			LogPath:    filepath.Join(p.LogDir, fmt.Sprintf("prometheus-agent-%d.log", shard)),
			Agent:      true,
			ExtraArgs:  []string{"--storage.remote.flush-deadline=5s"},
		})
		if err != nil {
			return err
		}
		p.Agents = append(p.Agents, Agent{Shard: shard, URL: url, ConfigFile: configPath, client: &promclient.Client{URL: url}})
		p.log.Info("started Prometheus agent on one shard of ecs-sd's http_sd list", "shard", shard, "of", p.opts.Shards,
			"url", url, "config", configPath, "pid", proc.PID())
	}
	return nil
}

// scrapers returns the clients of the pipeline's Prometheus servers that scrape: the agents of a
// sharded pipeline, else the one Prometheus.
func (p *Pipeline) scrapers() []*promclient.Client {
	if len(p.Agents) == 0 {
		return []*promclient.Client{p.prom}
	}
	out := make([]*promclient.Client, len(p.Agents))
	for i, a := range p.Agents {
		out[i] = a.client
	}
	return out
}

// AgentTargets returns the active targets of each agent of a sharded pipeline, in shard order
// (of the one Prometheus otherwise).
func (p *Pipeline) AgentTargets(ctx context.Context) ([][]promclient.Target, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var out [][]promclient.Target
	for _, c := range p.scrapers() {
		active, err := c.ActiveTargets(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, active)
	}
	return out, nil
}

// Coverage compares the agents' targets with the series the sink holds.
type Coverage struct {
	// Scraped is how many active targets each agent has, in shard order.
	Scraped []int
	// Once are the instances (scraped by an agent) with exactly one up series in the sink, sent
	// by the agent of their shard.
	Once []string
	// Missing are the instances scraped by an agent that have no up series in the sink (yet).
	Missing []string
	// Twice are the instances that more than one agent scrapes, or that have more than one up
	// series in the sink, or one sent by an agent other than that of their shard.
	Twice []string
}

// Complete reports whether every scraped target has its series in the sink once.
func (c Coverage) Complete() bool { return len(c.Missing) == 0 && len(c.Twice) == 0 && len(c.Once) > 0 }

// Coverage reads every agent's active targets and the sink's up series (which only the agents'
// scrapes make: the sink scrapes nothing) and says which targets have their series in the sink
// exactly once, from the agent of their shard (the hashmod of their address), and which not.
func (p *Pipeline) Coverage(ctx context.Context) (Coverage, error) {
	perAgent, err := p.AgentTargets(ctx)
	if err != nil {
		return Coverage{}, err
	}
	up, err := p.QuerySink(ctx, "up")
	if err != nil {
		return Coverage{}, fmt.Errorf("query the sink: %w", err)
	}
	sent := map[string][]string{} // instance -> the agent label of each of its up series
	for _, s := range up {
		sent[s.Metric["instance"]] = append(sent[s.Metric["instance"]], s.Metric[AgentLabel])
	}
	var c Coverage
	scrapedBy := map[string]int{}
	for _, active := range perAgent {
		c.Scraped = append(c.Scraped, len(active))
		for _, t := range active {
			scrapedBy[t.Labels["instance"]]++
		}
	}
	for _, instance := range slices.Sorted(maps.Keys(scrapedBy)) {
		agents := sent[instance]
		switch {
		case scrapedBy[instance] > 1 || len(agents) > 1:
			c.Twice = append(c.Twice, instance)
		case len(agents) == 0:
			c.Missing = append(c.Missing, instance)
		case p.opts.Shards > 1 && agents[0] != strconv.Itoa(p.ShardOf(instance)):
			c.Twice = append(c.Twice, instance) // sent by an agent that is not its shard's
		default:
			c.Once = append(c.Once, instance)
		}
	}
	return c, nil
}

// ShardOf returns the shard of a target address, the agent that scrapes it: Prometheus's hashmod
// of the address with modulus Options.Shards, as ecs-sd's http_sd shards compute it.
func (p *Pipeline) ShardOf(addr string) int {
	return int(targets.HashMod(addr, uint64(p.opts.Shards)))
}
