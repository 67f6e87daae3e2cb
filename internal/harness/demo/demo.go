// Package demo runs the whole ecs-sd pipeline on this machine, the way the AWS blog post deploys
// it on ECS, with local stand-ins for what only AWS has:
//
//   - moto_server stands in for AWS; the deploy kit's own scripts create the Cloud Map namespace
//     and services (deploy/scripts/01-cloudmap.sh), the SSM parameters (02-ssm-parameters.sh)
//     and event mode's SQS queue and EventBridge rules (03-events.sh) on it through the AWS API;
//   - "ECS tasks" are local processes on loopback addresses of their own, registered in Cloud Map
//     as ECS registers a task (instance id = task id, the same attributes): web app tasks
//     (cmd/webapp, with its load generator on) on 127.0.0.11:3000, 127.0.0.12:3000, ... and a
//     node exporter on 127.0.0.21:9100;
//   - the pipeline plays CloudTrail's part (moto has no trail): each registration and
//     deregistration is announced by the "AWS API Call via CloudTrail" event a trail sends to
//     EventBridge (PutEvents), whose rule delivers it to the queue;
//   - ecs-sd (bin/ecs-sd) runs as the deploy kit's task definition runs it: the seed's environment
//     (CONFIG_FILE_DIR, CONFIG_RELOAD_FREQUENCY) and event mode (--events.queue-url, and
//     --refresh.interval=5m for the full resync). It writes ecs-services.json, and
//     prometheus.yaml from the SSM parameter, and asks Prometheus to reload; an announced
//     registration is in its outputs within about a second, without waiting for a resync;
//   - Prometheus (agent mode, as in the deploy kit's task definition) runs on that prometheus.yaml,
//     scrapes through file_sd and remote-writes to a second Prometheus with the remote-write
//     receiver on, standing in for Amazon Managed Service for Prometheus (the "sink"). The seed's
//     queries, those of the Grafana dashboard in deploy/grafana, are read back from the sink.
//
// The Prometheus configuration stored in SSM is the deploy kit's template
// (deploy/prometheus/prometheus-file-sd.yml) with local paths and addresses, shorter intervals and
// no sigv4 (Debian's Prometheus 2.42 cannot sign; the sink does not check).
//
// Everything listens on 127.0.0.x only. Every process runs in its own process group, with its
// log under Options.Dir/logs, and Stop ends them all (also when Start fails half-way).
package demo

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	"github.com/prometheus/common/model"

	"github.com/ecs-sd/ecs-sd/internal/harness/grafana"
	"github.com/ecs-sd/ecs-sd/internal/harness/promclient"
	"github.com/ecs-sd/ecs-sd/internal/harness/rig"
	"github.com/ecs-sd/ecs-sd/internal/harness/supervise"
)

// Names and ports of the deploy kit: ECS cluster and service names of deploy/scripts/06-services.sh
// (its defaults), the METRICS_PORT tags 01-cloudmap.sh puts on the Cloud Map services.
const (
	ClusterName         = "ecs-sd"
	WebappService       = "webapp"
	NodeExporterService = "node-exporter"
	WebappPort          = 3000
	NodeExporterPort    = 9100
)

// Loopback addresses of the tasks: web app task n (from 1) listens on 127.0.0.(10+n), the node
// exporter on 127.0.0.21 (like a container instance of its own).
const (
	webappIPBase = 10
	maxWebTasks  = 9
	// maxShards bounds the Prometheus agents of a sharded pipeline (Options.Shards).
	maxShards      = 10
	nodeExporterIP = "127.0.0.21"
)

// DefaultRefreshInterval is ecs-sd's full resync in event mode, and configReloadFrequency its
// CONFIG_RELOAD_FREQUENCY (seconds), as in the deploy kit's task definition
// (deploy/task-definitions/prometheus.json): the flag wins over the variable.
const (
	DefaultRefreshInterval = 5 * time.Minute
	configReloadFrequency  = "30"
)

// Timeouts and grace periods of the pipeline's processes and calls.
const (
	taskStartTimeout  = 20 * time.Second
	taskGrace         = 5 * time.Second
	ecsSDStartTimeout = 20 * time.Second
	ecsSDGrace        = 5 * time.Second
	scriptTimeout     = 3 * time.Minute
	configWaitTimeout = 60 * time.Second
	callTimeout       = 10 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before it kills a process group.
	stopGrace = 10 * time.Second
)

// Options configures a pipeline. Zero values take the defaults named.
type Options struct {
	// Dir holds the state: logs/ (every process's log), config/ (ecs-sd's CONFIG_FILE_DIR),
	// the TSDBs and the generated configurations. It is created when missing; what an earlier
	// run left in those subdirectories is removed.
	Dir string
	// RepoRoot is the checkout holding deploy/ (scripts, templates, dashboard) (required).
	RepoRoot string
	// EcsSDBinary and WebappBinary are the built bin/ecs-sd and bin/webapp (required).
	EcsSDBinary  string
	WebappBinary string
	// ScrapeInterval is Prometheus's scrape interval; default 5s.
	ScrapeInterval time.Duration
	// RefreshInterval is ecs-sd's --refresh.interval, the full resync of event mode; default 5m,
	// the deploy kit's. Announced registrations do not wait for it.
	RefreshInterval time.Duration
	// LoadRPS is the request rate of each web app's load generator; default 10.
	LoadRPS int
	// WebTasks is how many web app tasks start with the pipeline; default 2.
	WebTasks int
	// Shards, when above 1, replaces the one Prometheus (file_sd, on the configuration ecs-sd
	// writes from SSM) with that many Prometheus agents, agent I scraping shard I of ecs-sd's
	// http_sd list on the deploy kit's agent template (AgentConfig), all remote-writing to the
	// sink; ecs-sd then runs as a service of its own, without the Prometheus configuration from
	// SSM. Default 1.
	Shards int
	// Logger receives progress messages; default: discarded.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" || o.RepoRoot == "" || o.EcsSDBinary == "" || o.WebappBinary == "" {
		return o, errors.New("demo options need Dir, RepoRoot, EcsSDBinary and WebappBinary")
	}
	// The paths end up in configurations and in the environment of processes.
	for _, path := range []*string{&o.Dir, &o.RepoRoot, &o.EcsSDBinary, &o.WebappBinary} {
		abs, err := filepath.Abs(*path)
		if err != nil {
			return o, fmt.Errorf("make %s absolute: %w", *path, err)
		}
		*path = abs
	}
	o.ScrapeInterval = cmp.Or(o.ScrapeInterval, 5*time.Second)
	o.RefreshInterval = cmp.Or(o.RefreshInterval, DefaultRefreshInterval)
	o.LoadRPS = cmp.Or(o.LoadRPS, 10)
	o.WebTasks = cmp.Or(o.WebTasks, 2)
	o.Shards = cmp.Or(o.Shards, 1)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RefreshInterval < time.Second || o.RefreshInterval%time.Second != 0 {
		return o, fmt.Errorf("refresh interval %v is not a whole number of seconds", o.RefreshInterval)
	}
	if o.Shards < 1 || o.Shards > maxShards {
		return o, fmt.Errorf("%d shards: the demo runs 1 to %d Prometheus agents", o.Shards, maxShards)
	}
	if o.WebTasks > maxWebTasks {
		return o, fmt.Errorf("%d web app tasks are more than the %d addresses the demo uses", o.WebTasks, maxWebTasks)
	}
	return o, nil
}

// Task is a running "ECS task" of the pipeline.
type Task struct {
	ID      string // the task id, also its Cloud Map instance id
	Service string // the ECS service
	Addr    string // where it listens and is scraped, ip:port
	// Registered is when Cloud Map answered its RegisterInstance; the CloudTrail event
	// announcing it was put to EventBridge right after.
	Registered time.Time
	proc       *supervise.Process
}

// ProcessInfo describes one process the pipeline started.
type ProcessInfo struct {
	Name    string
	PID     int // also its process group id
	LogPath string
	Exited  bool
}

// Pipeline is the running demo.
type Pipeline struct {
	// MotoURL, PrometheusURL, SinkURL and EcsSDURL are the base URLs of the servers on 127.0.0.1;
	// PrometheusURL is empty in a sharded pipeline, whose Prometheus servers are Agents.
	MotoURL, PrometheusURL, SinkURL, EcsSDURL string
	// Agents are the Prometheus agents of a sharded pipeline (Options.Shards > 1), in shard order.
	Agents []Agent
	// ConfigDir is ecs-sd's CONFIG_FILE_DIR: ecs-services.json and prometheus.yaml.
	ConfigDir string
	// LogDir holds every process's log.
	LogDir string
	// Outputs are the variables the deploy scripts printed (VPC_ID, CLOUDMAP_NAMESPACE_ID, ...).
	Outputs map[string]string

	opts      Options
	log       *slog.Logger
	families  map[string]string // ECS service -> task definition family
	instance  string            // EC2 instance id of the "container instance" (this machine)
	cloudMap  *servicediscovery.Client
	events    *eventbridge.Client
	prom      *promclient.Client
	sink      *promclient.Client
	dashboard string

	mu      sync.Mutex
	procs   []*supervise.Process // running, in start order
	tasks   []*Task              // running web app tasks, in start order
	nextWeb int                  // number of the next web app task
	stopped bool
}

// Start starts the pipeline and returns once Prometheus runs on the configuration ecs-sd wrote
// from SSM.
// On error, everything started so far is stopped.
func Start(ctx context.Context, opts Options) (_ *Pipeline, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Pipeline{
		opts:      opts,
		log:       opts.Logger,
		ConfigDir: filepath.Join(opts.Dir, "config"),
		LogDir:    filepath.Join(opts.Dir, "logs"),
		dashboard: filepath.Join(opts.RepoRoot, filepath.FromSlash(grafana.Dashboard)),
		nextWeb:   1,
	}
	defer func() {
		if err != nil {
			p.Stop()
		}
	}()
	if err := p.preflight(); err != nil {
		return nil, err
	}
	if err := p.startAWS(ctx); err != nil {
		return nil, err
	}
	if err := p.startSink(ctx); err != nil {
		return nil, err
	}
	// ecs-sd and Prometheus listen on ports chosen now: each names the other's address (the
	// configuration stored in SSM scrapes ecs-sd; ecs-sd calls Prometheus's reload).
	ecsSDPort, err := supervise.FreePort(supervise.DefaultHost)
	if err != nil {
		return nil, err
	}
	promPort, err := supervise.FreePort(supervise.DefaultHost)
	if err != nil {
		return nil, err
	}
	if err := p.createResources(ctx, net.JoinHostPort(supervise.DefaultHost, strconv.Itoa(ecsSDPort))); err != nil {
		return nil, err
	}
	if err := p.startNodeExporter(ctx); err != nil {
		return nil, err
	}
	for range opts.WebTasks {
		if _, err := p.AddWebTask(ctx); err != nil {
			return nil, err
		}
	}
	if opts.Shards > 1 {
		// ecs-sd first: the agents read their shards from it.
		if err := p.startEcsSD(ctx, ecsSDPort, 0); err != nil {
			return nil, err
		}
		if err := p.startAgents(ctx); err != nil {
			return nil, err
		}
		p.log.Info("pipeline running", "agents", len(p.Agents), "sink", p.SinkURL, "logs", p.LogDir)
		return p, nil
	}
	if err := p.startPrometheus(ctx, promPort); err != nil {
		return nil, err
	}
	if err := p.startEcsSD(ctx, ecsSDPort, promPort); err != nil {
		return nil, err
	}
	if err := p.waitForReload(ctx); err != nil {
		return nil, err
	}
	p.log.Info("pipeline running", "prometheus", p.PrometheusURL, "sink", p.SinkURL, "logs", p.LogDir)
	return p, nil
}

// preflight checks the programs and the fixed addresses the pipeline needs, and prepares Dir.
func (p *Pipeline) preflight() error {
	for _, bin := range []string{p.opts.EcsSDBinary, p.opts.WebappBinary} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("find binary (make build builds it): %w", err)
		}
	}
	for _, tool := range []struct{ name, hint string }{
		{"bash", "the deploy scripts are bash scripts"},
		{"aws", "the AWS CLI, which the deploy scripts call"},
		{"prometheus-node-exporter", "apt-get install prometheus-node-exporter, or scripts/install-deps.sh"},
	} {
		if _, err := supervise.LookPath(tool.name, tool.hint); err != nil {
			return err
		}
	}
	addrs := []string{net.JoinHostPort(nodeExporterIP, strconv.Itoa(NodeExporterPort))}
	for n := 1; n <= p.opts.WebTasks; n++ {
		addrs = append(addrs, webAddr(n))
	}
	for _, addr := range addrs {
		host, port, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(port)
		if err := supervise.CheckFree(host, n); err != nil {
			return fmt.Errorf("the demo's tasks listen on fixed loopback addresses (is another demo running?): %w", err)
		}
	}
	var err error
	p.families = map[string]string{}
	for service, file := range map[string]string{WebappService: "webapp.json", NodeExporterService: "node-exporter.json"} {
		if p.families[service], err = taskFamily(filepath.Join(p.opts.RepoRoot, "deploy", "task-definitions", file)); err != nil {
			return err
		}
	}
	if p.instance, err = randomHex(17); err != nil {
		return err
	}
	p.instance = "i-" + p.instance
	agentDirs, _ := filepath.Glob(filepath.Join(p.opts.Dir, "agent-*"))
	for _, sub := range []string{"logs", "config", "sink", "prometheus", "setup"} {
		agentDirs = append(agentDirs, filepath.Join(p.opts.Dir, sub))
	}
	for _, dir := range agentDirs {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("clean demo directory: %w", err)
		}
	}
	for _, d := range []string{p.LogDir, p.ConfigDir, filepath.Join(p.opts.Dir, "setup"), filepath.Join(p.opts.Dir, "sink")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create demo directory: %w", err)
		}
	}
	return nil
}

// webAddr returns the address of web app task n (from 1).
func webAddr(n int) string {
	return net.JoinHostPort(fmt.Sprintf("127.0.0.%d", webappIPBase+n), strconv.Itoa(WebappPort))
}

// taskFamily reads the family of a task definition of the deploy kit.
func taskFamily(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read task definition: %w", err)
	}
	var td struct {
		Family string `json:"family"`
	}
	if err := json.Unmarshal(data, &td); err != nil || td.Family == "" {
		return "", fmt.Errorf("read family of task definition %s: %w", path, cmp.Or(err, errors.New("no family")))
	}
	return td.Family, nil
}

// startAWS starts moto and the Cloud Map client.
func (p *Pipeline) startAWS(ctx context.Context) error {
	spec, err := rig.MotoServer(filepath.Join(p.LogDir, "moto.log"))
	if err != nil {
		return err
	}
	proc, port, err := p.startServer(ctx, spec)
	if err != nil {
		return err
	}
	p.MotoURL = rig.MotoURL(port)
	p.log.Info("started moto (AWS emulator)", "url", p.MotoURL, "pid", proc.PID())
	cfg, err := rig.FixtureConfig(ctx, p.MotoURL)
	if err != nil {
		return err
	}
	p.cloudMap = servicediscovery.NewFromConfig(cfg)
	p.events = eventbridge.NewFromConfig(cfg)
	return nil
}

// sinkConfig is the sink's configuration: it scrapes nothing and only receives remote writes.
const sinkConfig = "# The sink: stands in for Amazon Managed Service for Prometheus (remote-write receiver only).\nglobal:\n  evaluation_interval: 1m\n"

// startSink starts the Prometheus that receives the remote writes.
func (p *Pipeline) startSink(ctx context.Context) error {
	dir := filepath.Join(p.opts.Dir, "sink")
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(sinkConfig), 0o644); err != nil {
		return fmt.Errorf("write sink configuration: %w", err)
	}
	url, proc, err := p.startPromServer(ctx, rig.Prometheus{
		Name:       "prometheus (sink)",
		ConfigFile: configPath,
		DataDir:    filepath.Join(dir, "data"),
		LogPath:    filepath.Join(p.LogDir, "sink.log"),
		ExtraArgs:  []string{"--web.enable-remote-write-receiver"},
	})
	if err != nil {
		return err
	}
	p.SinkURL = url
	p.sink = &promclient.Client{URL: url}
	p.log.Info("started the sink (remote-write receiver, stands in for AMP)", "url", url, "pid", proc.PID())
	return nil
}

// startNodeExporter starts the node exporter and registers it like the node-exporter daemon
// service's task on a container instance.
func (p *Pipeline) startNodeExporter(ctx context.Context) error {
	bin, err := supervise.LookPath("prometheus-node-exporter", "apt-get install prometheus-node-exporter")
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(nodeExporterIP, strconv.Itoa(NodeExporterPort))
	proc, _, err := p.startServer(ctx, supervise.ServerSpec{
		Name:      "node exporter " + addr,
		Binary:    bin,
		Args:      func(int) []string { return []string{"--web.listen-address=" + addr} },
		LogPath:   filepath.Join(p.LogDir, "node-exporter.log"),
		Host:      nodeExporterIP,
		Port:      NodeExporterPort,
		ReadyPath: "/metrics",
		Timeout:   taskStartTimeout,
		Grace:     taskGrace,
	})
	if err != nil {
		return err
	}
	task := &Task{Service: NodeExporterService, Addr: addr, proc: proc}
	return p.register(ctx, task, p.Outputs["CLOUDMAP_NODE_EXPORTER_SERVICE_ID"], "a")
}

// AddWebTask starts one more web app task on the next loopback address and registers it in Cloud
// Map, as ECS does when the webapp service scales out.
func (p *Pipeline) AddWebTask(ctx context.Context) (*Task, error) {
	p.mu.Lock()
	n := p.nextWeb
	p.nextWeb++
	p.mu.Unlock()
	if n > maxWebTasks {
		return nil, fmt.Errorf("start web app task %d: the demo has addresses for %d", n, maxWebTasks)
	}
	addr := webAddr(n)
	host, _, _ := net.SplitHostPort(addr)
	proc, _, err := p.startServer(ctx, supervise.ServerSpec{
		Name:   "webapp " + addr,
		Binary: p.opts.WebappBinary,
		Args: func(port int) []string {
			return []string{
				"--web.listen-address=" + net.JoinHostPort(host, strconv.Itoa(port)),
				"--load.rps=" + strconv.Itoa(p.opts.LoadRPS),
			}
		},
		LogPath:   filepath.Join(p.LogDir, fmt.Sprintf("webapp-%d.log", n)),
		Host:      host,
		Port:      WebappPort,
		ReadyPath: "/-/healthy",
		Timeout:   taskStartTimeout,
		Grace:     taskGrace,
	})
	if err != nil {
		return nil, err
	}
	task := &Task{Service: WebappService, Addr: addr, proc: proc}
	// Tasks spread over two availability zones, as a service's tasks do.
	if err := p.register(ctx, task, p.Outputs["CLOUDMAP_WEBAPP_SERVICE_ID"], string(rune('a'+(n+1)%2))); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.tasks = append(p.tasks, task)
	p.mu.Unlock()
	return task, nil
}

// register gives task a task id and registers it in Cloud Map service serviceID with the
// attributes ECS sets, in availability zone us-east-1<zone>, and announces the registration.
func (p *Pipeline) register(ctx context.Context, task *Task, serviceID, zone string) error {
	id, err := randomHex(32)
	if err != nil {
		return err
	}
	task.ID = id
	host, port, _ := net.SplitHostPort(task.Addr)
	n, _ := strconv.Atoi(port)
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := rig.RegisterTask(ctx, p.cloudMap, serviceID, rig.Task{
		ID:            id,
		IPv4:          host,
		Port:          n,
		Cluster:       ClusterName,
		Service:       task.Service,
		Family:        p.families[task.Service],
		AZ:            rig.Region + zone,
		EC2InstanceID: p.instance,
	}); err != nil {
		return err
	}
	task.Registered = time.Now()
	p.log.Info("registered task in Cloud Map", "service", task.Service, "task", id, "address", task.Addr)
	return p.announce(ctx, rig.OpRegisterInstance, serviceID, id)
}

// announce puts the event CloudTrail sends to EventBridge for Cloud Map call op (RegisterInstance
// or DeregisterInstance) on instance instanceID of service serviceID; 03-events.sh's rule
// delivers it to ecs-sd's queue.
func (p *Pipeline) announce(ctx context.Context, op, serviceID, instanceID string) error {
	entry, err := rig.CloudMapCall(op, serviceID, instanceID)
	if err != nil {
		return err
	}
	if err := rig.PutEvents(ctx, p.events, entry); err != nil {
		return fmt.Errorf("announce %s of %s: %w", op, instanceID, err)
	}
	p.log.Info("put the CloudTrail event of a Cloud Map call to EventBridge", "call", op, "service_id", serviceID, "instance", instanceID)
	return nil
}

// RemoveWebTask deregisters web app task id from Cloud Map and stops it, as ECS does when the
// webapp service scales in.
func (p *Pipeline) RemoveWebTask(ctx context.Context, id string) error {
	p.mu.Lock()
	i := slices.IndexFunc(p.tasks, func(t *Task) bool { return t.ID == id })
	if i < 0 {
		p.mu.Unlock()
		return fmt.Errorf("remove web app task %s: no such task", id)
	}
	task := p.tasks[i]
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	serviceID := p.Outputs["CLOUDMAP_WEBAPP_SERVICE_ID"]
	if err := rig.DeregisterTask(ctx, p.cloudMap, serviceID, id); err != nil {
		return err
	}
	if err := p.announce(ctx, rig.OpDeregisterInstance, serviceID, id); err != nil {
		return err
	}
	task.proc.Stop(taskGrace)
	p.mu.Lock()
	p.tasks = slices.DeleteFunc(p.tasks, func(t *Task) bool { return t == task })
	p.procs = slices.DeleteFunc(p.procs, func(x *supervise.Process) bool { return x == task.proc })
	p.mu.Unlock()
	p.log.Info("deregistered and stopped task", "service", task.Service, "task", id, "address", task.Addr)
	return nil
}

// WebTasks returns the running web app tasks.
func (p *Pipeline) WebTasks() []Task {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Task, len(p.tasks))
	for i, t := range p.tasks {
		out[i] = *t
	}
	return out
}

// startEcsSD starts ecs-sd as the deploy kit's task definition does (the seed's environment, the
// reload URL and event mode: the queue of 03-events.sh, the resync interval), on 127.0.0.1:port,
// with promPort as Prometheus's port. With promPort 0 (a sharded pipeline), ecs-sd is a service
// of its own: it writes no Prometheus configuration and reloads none.
func (p *Pipeline) startEcsSD(ctx context.Context, port, promPort int) error {
	env := append(rig.AWSEnv(p.MotoURL),
		"CONFIG_FILE_DIR="+p.ConfigDir,
		"CONFIG_RELOAD_FREQUENCY="+configReloadFrequency,
	)
	proc, _, err := p.startServer(ctx, supervise.ServerSpec{
		Name:   "ecs-sd",
		Binary: p.opts.EcsSDBinary,
		Args: func(port int) []string {
			prometheus := "--no-prometheus.config-sync"
			if promPort != 0 {
				prometheus = fmt.Sprintf("--prometheus.reload-url=http://%s:%d/-/reload", supervise.DefaultHost, promPort)
			}
			return []string{
				"--web.listen-address=" + net.JoinHostPort(supervise.DefaultHost, strconv.Itoa(port)),
				prometheus,
				"--events.queue-url=" + p.Outputs["EVENTS_QUEUE_URL"],
				"--refresh.interval=" + model.Duration(p.opts.RefreshInterval).String(),
			}
		},
		Env:       env,
		LogPath:   filepath.Join(p.LogDir, "ecs-sd.log"),
		Port:      port,
		ReadyPath: "/-/healthy",
		Timeout:   ecsSDStartTimeout,
		Grace:     ecsSDGrace,
	})
	if err != nil {
		return err
	}
	p.EcsSDURL = fmt.Sprintf("http://%s:%d", supervise.DefaultHost, port)
	p.log.Info("started ecs-sd in event mode", "url", p.EcsSDURL, "config_dir", p.ConfigDir,
		"queue", p.Outputs["EVENTS_QUEUE_URL"], "refresh_interval", p.opts.RefreshInterval, "pid", proc.PID())
	return nil
}

// PrometheusConfigFile is the file ecs-sd writes from the SSM parameter, Prometheus's
// configuration.
func (p *Pipeline) PrometheusConfigFile() string {
	return filepath.Join(p.ConfigDir, "prometheus.yaml")
}

// FileSDFile is ecs-sd's file_sd file.
func (p *Pipeline) FileSDFile() string { return filepath.Join(p.ConfigDir, "ecs-services.json") }

// bootstrapConfig is the configuration Prometheus starts with, until ecs-sd replaces it.
const bootstrapConfig = "# Placeholder: ecs-sd replaces this file with the SSM parameter ECS-Prometheus-Configuration\n" +
	"# and asks Prometheus to reload.\nglobal:\n  scrape_interval: 1m\n"

// startPrometheus starts Prometheus, in agent mode as in the deploy kit, on 127.0.0.1:port, on a
// placeholder configuration in ecs-sd's output directory: ecs-sd then overwrites it with the
// configuration from SSM and asks Prometheus to reload (the seed's config reloader at work).
func (p *Pipeline) startPrometheus(ctx context.Context, port int) error {
	if err := os.WriteFile(p.PrometheusConfigFile(), []byte(bootstrapConfig), 0o644); err != nil {
		return fmt.Errorf("write placeholder prometheus configuration: %w", err)
	}
	url, proc, err := p.startPromServer(ctx, rig.Prometheus{
		ConfigFile: p.PrometheusConfigFile(),
		DataDir:    filepath.Join(p.opts.Dir, "prometheus"),
		LogPath:    filepath.Join(p.LogDir, "prometheus.log"),
		Port:       port,
		Agent:      true,
		ExtraArgs:  []string{"--storage.remote.flush-deadline=5s"},
	})
	if err != nil {
		return err
	}
	p.PrometheusURL = url
	p.prom = &promclient.Client{URL: url}
	p.log.Info("started Prometheus (agent mode) on a placeholder configuration", "url", url,
		"config", p.PrometheusConfigFile(), "pid", proc.PID())
	return nil
}

// waitForReload waits until Prometheus runs on the configuration ecs-sd wrote from SSM: the one
// that remote-writes to the sink.
func (p *Pipeline) waitForReload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, configWaitTimeout)
	defer cancel()
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		if config, err := p.prom.Config(ctx); err == nil && strings.Contains(config, p.SinkURL) {
			p.log.Info("ecs-sd wrote the Prometheus configuration from SSM and Prometheus reloaded it",
				"config", p.PrometheusConfigFile())
			return nil
		}
		if err := p.Err(); err != nil {
			return err
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return fmt.Errorf("wait for Prometheus to run on the configuration ecs-sd writes from SSM: %w; see %s and %s",
				context.Cause(ctx), filepath.Join(p.LogDir, "ecs-sd.log"), filepath.Join(p.LogDir, "prometheus.log"))
		}
	}
}

// startPromServer starts a Prometheus server and returns its URL.
func (p *Pipeline) startPromServer(ctx context.Context, prom rig.Prometheus) (string, *supervise.Process, error) {
	spec, err := prom.Server()
	if err != nil {
		return "", nil, err
	}
	proc, port, err := p.startServer(ctx, spec)
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("http://%s:%d", supervise.DefaultHost, port), proc, nil
}

// startServer starts spec and keeps the process for Stop.
func (p *Pipeline) startServer(ctx context.Context, spec supervise.ServerSpec) (*supervise.Process, int, error) {
	proc, port, err := supervise.StartServer(ctx, spec)
	if err != nil {
		return nil, 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		proc.Stop(spec.Grace)
		return nil, 0, errors.New("pipeline stopped")
	}
	p.procs = append(p.procs, proc)
	return proc, port, nil
}

// Processes describes the processes the pipeline runs, in start order.
func (p *Pipeline) Processes() []ProcessInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ProcessInfo, len(p.procs))
	for i, proc := range p.procs {
		out[i] = ProcessInfo{Name: proc.Name(), PID: proc.PID(), LogPath: proc.LogPath(), Exited: proc.Exited()}
	}
	return out
}

// Err returns an error naming the first process that has exited although the pipeline did not
// stop it, with the end of its log; nil while all run.
func (p *Pipeline) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, proc := range p.procs {
		if proc.Exited() {
			how := "with status 0"
			if err := proc.Err(); err != nil {
				how = err.Error()
			}
			return fmt.Errorf("%s exited unexpectedly (%s); log %s:\n%s", proc.Name(), how, proc.LogPath(), proc.LogTail(20))
		}
	}
	return nil
}

// Stop stops every process of the pipeline, the last started first: Prometheus (the sender)
// before the sink, moto last. It may be called more than once.
func (p *Pipeline) Stop() {
	p.mu.Lock()
	procs := p.procs
	p.procs = nil
	p.tasks = nil
	p.stopped = true
	p.mu.Unlock()
	for _, proc := range slices.Backward(procs) {
		proc.Stop(stopGrace)
	}
	if len(procs) > 0 {
		p.log.Info("stopped every process of the pipeline", "count", len(procs))
	}
}

// randomHex returns n random hexadecimal digits.
func randomHex(n int) (string, error) {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a random id: %w", err)
	}
	return hex.EncodeToString(b)[:n], nil
}

// RefreshInterval is ecs-sd's --refresh.interval: the full resync of event mode.
func (p *Pipeline) RefreshInterval() time.Duration { return p.opts.RefreshInterval }

// Shards is how many Prometheus agents share the targets (1: the one Prometheus on file_sd).
func (p *Pipeline) Shards() int { return p.opts.Shards }
