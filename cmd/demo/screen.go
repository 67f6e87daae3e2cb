package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

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
	targetsErr error
	results    []demo.QueryResult
	resultsErr error
	events     []string

	added       *demo.Task // the task registered mid-run
	addedAt     time.Time
	addedTarget bool // seen in Prometheus's active targets
	addedSink   bool // its series seen in the sink
}

// event records a line of the events list, stamped with the time since the start.
func (s *screen) event(format string, args ...any) {
	s.events = append(s.events, fmt.Sprintf("%5s  ", clock(time.Since(s.start)))+fmt.Sprintf(format, args...))
}

// addTask registers a third web app task.
func (s *screen) addTask(ctx context.Context) {
	task, err := s.p.AddWebTask(ctx)
	if err != nil {
		s.event("could not add a web app task: %v", err)
		return
	}
	s.added, s.addedAt = task, time.Now()
	s.event("started web app task %s on %s and registered it in Cloud Map", short(task.ID), task.Addr)
}

// update reads Prometheus's targets and the seed queries' answers from the sink, and notes when
// the task added mid-run shows up.
func (s *screen) update(ctx context.Context) {
	s.targets, s.targetsErr = s.p.ActiveTargets(ctx)
	s.results, s.resultsErr = s.p.SeedQueries(ctx)
	if s.added == nil {
		return
	}
	if !s.addedTarget && slices.ContainsFunc(s.targets, func(t promclient.Target) bool {
		return t.Labels["instance"] == s.added.Addr && t.Health == "up"
	}) {
		s.addedTarget = true
		s.event("%s is an active target of Prometheus, up (%s after registration)", s.added.Addr, since(s.addedAt))
	}
	if !s.addedSink {
		samples, err := s.p.QuerySink(ctx, fmt.Sprintf(`http_requests_total{instance=%q}`, s.added.Addr))
		if err == nil && len(samples) > 0 {
			s.addedSink = true
			s.event(`its series reached the sink: http_requests_total{instance=%q} (%s after registration)`, s.added.Addr, since(s.addedAt))
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
	fmt.Fprintf(tw, "ecs-sd\t%s/prometheus-targets\twrites %s and prometheus.yaml\n", s.p.EcsSDURL, s.p.FileSDFile())
	fmt.Fprintf(tw, "Prometheus (agent)\t%s/targets\tfile_sd, remote-writes to the sink\n", s.p.PrometheusURL)
	fmt.Fprintf(tw, "sink (AMP stand-in)\t%s/graph\tremote-write receiver; the queries below run here\n", s.p.SinkURL)
	tw.Flush()

	fmt.Fprintf(&b, "\nPrometheus's active targets (%d)\n", len(s.targets))
	if s.targetsErr != nil {
		fmt.Fprintf(&b, "  cannot read them: %v\n", s.targetsErr)
	}
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  JOB\tINSTANCE\tHEALTH\tCLUSTER\tSERVICE\tTASK DEFINITION\tTASK")
	for _, t := range sortedTargets(s.targets) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ScrapePool, t.Labels["instance"], t.Health,
			dash(t.Labels["cluster"]), dash(t.Labels["service"]), dash(t.Labels["taskdefinition"]), dash(short(t.Labels["task_id"])))
	}
	tw.Flush()

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
	if s.added != nil && (!s.addedTarget || !s.addedSink) {
		fmt.Fprintf(w, "\ndemo: note: the task added mid-run (%s) was not seen in both Prometheus's targets and the sink\n", s.added.Addr)
	}
	if len(empty) > 0 {
		fmt.Fprintf(w, "\ndemo: FAILED: no data from the sink for: %s\n", strings.Join(empty, "; "))
		return exitFailed
	}
	fmt.Fprintf(w, "\ndemo: OK: all %d seed queries returned data from the sink\n", len(s.results))
	return exitOK
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

// since formats the time since t in seconds.
func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

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
