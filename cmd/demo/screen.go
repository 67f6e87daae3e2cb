package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/model"

	"github.com/ecs-sd/ecs-sd/internal/harness/demo"
	"github.com/ecs-sd/ecs-sd/internal/harness/promclient"
)

// clearScreen moves the cursor home and clears a terminal.
const clearScreen = "\033[H\033[2J"

// screen is the demo's status screen and what it last read.
type screen struct {
	p        *demo.Pipeline
	start    time.Time
	duration time.Duration
	tty      bool

	targets    []promclient.Target
	perAgent   [][]promclient.Target // each agent's targets, in a sharded pipeline
	targetsErr error
	// coverage is what the sink holds of the agents' targets, in a sharded pipeline.
	coverage    demo.Coverage
	coverageErr error
	results     []demo.QueryResult
	resultsErr  error
	events      []string

	added       *demo.Task    // the task registered mid-run
	addedSeen   chan sighting // when it was in ecs-sd's outputs, then in Prometheus's targets
	addedInSD   bool          // seen in ecs-sd's outputs
	addedTarget bool          // seen in Prometheus's active targets, up
	addedSink   bool          // its series seen in the sink
}

// sighting is a line of the events list about the task added mid-run.
type sighting struct {
	line    string
	inEcsSD bool // it says the task is in ecs-sd's outputs
}

// sightingWait bounds the wait for the task added mid-run to be in ecs-sd's outputs and in
// Prometheus's targets.
const sightingWait = time.Minute

// event records a line of the events list, stamped with the time since the start.
func (s *screen) event(format string, args ...any) {
	s.events = append(s.events, fmt.Sprintf("%5s  ", clock(time.Since(s.start)))+fmt.Sprintf(format, args...))
}

// addTask registers a third web app task, whose registration the pipeline announces with its
// CloudTrail event, and starts watching ecs-sd's outputs for it: the line saying when it got
// there arrives on s.addedEcsSD.
func (s *screen) addTask(ctx context.Context) {
	task, err := s.p.AddWebTask(ctx)
	if err != nil {
		s.event("could not add a web app task: %v", err)
		return
	}
	s.added = task
	s.event("started web app task %s on %s, registered it in Cloud Map and put the CloudTrail event of the registration to EventBridge", short(task.ID), task.Addr)
	s.addedSeen = make(chan sighting, 2)
	go s.watchAdded(ctx, task)
}

// watchAdded sends to s.addedSeen when task is in ecs-sd's outputs, then when it is in
// Prometheus's active targets, each timed from its registration; or why it was not.
func (s *screen) watchAdded(ctx context.Context, task *demo.Task) {
	ctx, cancel := context.WithTimeout(ctx, sightingWait)
	defer cancel()
	at, err := s.p.WaitEcsSD(ctx, task.Addr, true)
	if err != nil {
		s.addedSeen <- sighting{line: fmt.Sprintf("%s did not reach ecs-sd's targets: %v", task.Addr, err)}
		return
	}
	s.addedSeen <- sighting{inEcsSD: true, line: fmt.Sprintf(
		"%s is in ecs-sd's targets (http_sd and %s) %s after its registration: applied from the event (the resync is every %s)",
		task.Addr, filepath.Base(s.p.FileSDFile()), seconds(at.Sub(task.Registered)), model.Duration(s.p.RefreshInterval()))}
	if at, err = s.p.WaitPrometheus(ctx, task.Addr); err != nil {
		s.addedSeen <- sighting{line: fmt.Sprintf("%s did not reach Prometheus's targets: %v", task.Addr, err)}
		return
	}
	how := "Prometheus's active targets (file_sd)"
	if s.p.Shards() > 1 {
		how = fmt.Sprintf("the active targets of agent %d (http_sd shard %[1]d of %d)", s.p.ShardOf(task.Addr), s.p.Shards())
	}
	s.addedSeen <- sighting{line: fmt.Sprintf("%s is in %s %s after its registration", task.Addr, how, seconds(at.Sub(task.Registered)))}
}

// sighted records a line about the task added mid-run.
func (s *screen) sighted(x sighting) {
	s.addedInSD = s.addedInSD || x.inEcsSD
	s.event("%s", x.line)
}

// update reads Prometheus's targets and the seed queries' answers from the sink, and notes when
// the task added mid-run shows up.
func (s *screen) update(ctx context.Context) {
	s.perAgent, s.targetsErr = s.p.AgentTargets(ctx)
	s.targets = slices.Concat(s.perAgent...)
	if s.p.Shards() > 1 {
		s.coverage, s.coverageErr = s.p.Coverage(ctx)
	}
	s.results, s.resultsErr = s.p.SeedQueries(ctx)
	if s.added == nil {
		return
	}
	if !s.addedTarget && slices.ContainsFunc(s.targets, func(t promclient.Target) bool {
		return t.Labels["instance"] == s.added.Addr && t.Health == "up"
	}) {
		s.addedTarget = true
		s.event("%s is scraped: up (%s after registration)", s.added.Addr, seconds(time.Since(s.added.Registered)))
	}
	if !s.addedSink {
		samples, err := s.p.QuerySink(ctx, fmt.Sprintf(`http_requests_total{instance=%q}`, s.added.Addr))
		if err == nil && len(samples) > 0 {
			s.addedSink = true
			s.event(`its series reached the sink: http_requests_total{instance=%q} (%s after registration)`, s.added.Addr, seconds(time.Since(s.added.Registered)))
		}
	}
}

// draw writes the screen to w, clearing a terminal first.
func (s *screen) draw(w io.Writer) {
	var b strings.Builder
	if s.tty {
		b.WriteString(clearScreen)
	} else {
		b.WriteString("\n")
	}
	elapsed := time.Since(s.start)
	fmt.Fprintf(&b, "ecs-sd demo, running for %s", clock(elapsed))
	if s.duration > 0 {
		fmt.Fprintf(&b, ", stops by itself in %s (DEMO_DURATION)", clock(max(s.duration-elapsed, 0)))
	}
	b.WriteString("; Ctrl-C stops everything\n")
	fmt.Fprintf(&b, "logs: %s\n\n", s.p.LogDir)

	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "AWS (moto)\t%s\tCloud Map namespace %s, SSM parameters %s and %s\n", s.p.MotoURL,
		s.p.Outputs["CLOUDMAP_NAMESPACE_ID"], s.p.Outputs["DISCOVERY_NAMESPACES_PARAMETER_NAME"], s.p.Outputs["PROMETHEUS_CONFIG_PARAMETER_NAME"])
	writes := s.p.FileSDFile() + " and prometheus.yaml"
	if s.p.Shards() > 1 {
		writes = s.p.FileSDFile() + "; serves ?shard=I&of=" + strconv.Itoa(s.p.Shards())
	}
	fmt.Fprintf(tw, "ecs-sd\t%s/prometheus-targets\twrites %s\n", s.p.EcsSDURL, writes)
	fmt.Fprintf(tw, "events (SQS)\t%s\tevent mode: EventBridge rules of deploy/scripts/03-events.sh; full resync every %s\n",
		s.p.Outputs["EVENTS_QUEUE_URL"], model.Duration(s.p.RefreshInterval()))
	if s.p.Shards() > 1 {
		for _, a := range s.p.Agents {
			fmt.Fprintf(tw, "Prometheus agent %d\t%s/targets\thttp_sd shard %d of %d (deploy kit's agent template), remote-writes to the sink\n",
				a.Shard, a.URL, a.Shard, s.p.Shards())
		}
	} else {
		fmt.Fprintf(tw, "Prometheus (agent)\t%s/targets\tfile_sd, remote-writes to the sink\n", s.p.PrometheusURL)
	}
	fmt.Fprintf(tw, "sink (AMP stand-in)\t%s/graph\tremote-write receiver; the queries below run here\n", s.p.SinkURL)
	tw.Flush()

	if s.p.Shards() > 1 {
		fmt.Fprintf(&b, "\nThe agents' active targets (%d)\n", len(s.targets))
	} else {
		fmt.Fprintf(&b, "\nPrometheus's active targets (%d)\n", len(s.targets))
	}
	if s.targetsErr != nil {
		fmt.Fprintf(&b, "  cannot read them: %v\n", s.targetsErr)
	}
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	// A sharded pipeline's table says which agent scrapes each target.
	agentColumn := func(head string, agent int) string {
		switch {
		case s.p.Shards() == 1:
			return ""
		case head != "":
			return head + "\t"
		}
		return strconv.Itoa(agent) + "\t"
	}
	fmt.Fprintln(tw, "  "+agentColumn("AGENT", 0)+"JOB\tINSTANCE\tHEALTH\tCLUSTER\tSERVICE\tTASK DEFINITION\tTASK")
	for agent, active := range s.perAgent {
		for _, t := range sortedTargets(active) {
			fmt.Fprintf(tw, "  %s%s\t%s\t%s\t%s\t%s\t%s\t%s\n", agentColumn("", agent), t.ScrapePool, t.Labels["instance"], t.Health,
				dash(t.Labels["cluster"]), dash(t.Labels["service"]), dash(t.Labels["taskdefinition"]), dash(short(t.Labels["task_id"])))
		}
	}
	tw.Flush()
	if s.p.Shards() > 1 {
		s.drawCoverage(&b)
	}

	b.WriteString("\nThe seed's queries (the Grafana dashboard's), read back from the sink (rates over 5m fill up over the first minutes)\n")
	if s.resultsErr != nil {
		fmt.Fprintf(&b, "  cannot read the queries: %v\n", s.resultsErr)
	}
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, r := range s.results {
		for _, line := range resultLines(r) {
			fmt.Fprintf(tw, "  %s\n", line)
		}
	}
	tw.Flush()

	b.WriteString("\nEvents\n")
	for _, e := range s.events {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	_, _ = io.WriteString(w, b.String())
}

// resultLines returns the tab-separated lines showing one query's answer.
func resultLines(r demo.QueryResult) []string {
	switch {
	case r.Err != nil:
		return []string{fmt.Sprintf("%s\t\tquery error: %v", r.Name, r.Err)}
	case len(r.Samples) == 0:
		return []string{r.Name + "\t\tno data yet"}
	}
	var lines []string
	for _, sample := range r.Samples {
		series := r.SeriesName(sample)
		if r.Name != r.Title {
			series = "" // the legend is in the name already
		}
		lines = append(lines, fmt.Sprintf("%s\t%s\t%.4g", r.Name, series, sample.Value))
	}
	slices.Sort(lines)
	return lines
}

// verdict writes whether every seed query returned data and returns the exit code.
func (s *screen) verdict(w io.Writer) int {
	if s.resultsErr != nil {
		fmt.Fprintf(w, "\ndemo: cannot run the seed queries: %v\n", s.resultsErr)
		return exitFailed
	}
	var empty []string
	for _, r := range s.results {
		if !r.HasData() {
			empty = append(empty, r.Name)
		}
	}
	if s.added != nil && (!s.addedInSD || !s.addedTarget || !s.addedSink) {
		fmt.Fprintf(w, "\ndemo: note: the task added mid-run (%s) was not seen in all of ecs-sd's targets, Prometheus's targets and the sink\n", s.added.Addr)
	}
	if len(empty) > 0 {
		fmt.Fprintf(w, "\ndemo: FAILED: no data from the sink for: %s\n", strings.Join(empty, "; "))
		return exitFailed
	}
	if s.p.Shards() > 1 {
		if s.coverageErr != nil || !s.coverage.Complete() {
			fmt.Fprintf(w, "\ndemo: FAILED: the sink does not have every target's series exactly once: %s\n", s.coverageLine())
			return exitFailed
		}
		fmt.Fprintf(w, "\ndemo: OK: %s\n", s.coverageLine())
	}
	fmt.Fprintf(w, "\ndemo: OK: all %d seed queries returned data from the sink\n", len(s.results))
	return exitOK
}

// drawCoverage writes how many targets each agent scrapes and what the sink holds of them.
func (s *screen) drawCoverage(b *strings.Builder) {
	fmt.Fprintf(b, "\n%d Prometheus agents, each on its shard of ecs-sd's http_sd list (?shard=I&of=%d)\n", s.p.Shards(), s.p.Shards())
	for agent, n := range s.coverage.Scraped {
		fmt.Fprintf(b, "  agent %d scrapes %d targets\n", agent, n)
	}
	fmt.Fprintf(b, "  sink: %s\n", s.coverageLine())
}

// coverageLine says whether the sink has every target's series once, from the agent of its shard.
func (s *screen) coverageLine() string {
	c := s.coverage
	if s.coverageErr != nil {
		return fmt.Sprintf("cannot compare the agents' targets with the sink: %v", s.coverageErr)
	}
	line := fmt.Sprintf("%d of %d targets have their up series in the sink exactly once, sent by the agent of their shard",
		len(c.Once), len(c.Once)+len(c.Missing)+len(c.Twice))
	if len(c.Missing) > 0 {
		line += "; not (yet) in the sink: " + strings.Join(c.Missing, ", ")
	}
	if len(c.Twice) > 0 {
		line += "; scraped or sent more than once: " + strings.Join(c.Twice, ", ")
	}
	return line
}

// sortedTargets returns the targets sorted by job and instance.
func sortedTargets(targets []promclient.Target) []promclient.Target {
	out := slices.Clone(targets)
	slices.SortFunc(out, func(a, b promclient.Target) int {
		return strings.Compare(a.ScrapePool+" "+a.Labels["instance"], b.ScrapePool+" "+b.Labels["instance"])
	})
	return out
}

// clock formats d as m:ss.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// seconds formats d in seconds, to a tenth.
func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// short shortens a task id for display.
func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

// dash shows an empty label as "-".
func dash(v string) string {
	if v == "" {
		return "-"
	}
	return v
}
