package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/model"

	"github.com/ecs-sd/ecs-sd/internal/cloudmap"
	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/ecs"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// The values of --output.format.
const (
	formatFile  = "file"  // write the outputs (file_sd file, Prometheus configuration)
	formatTable = "table" // --once only: print the targets and skipped items on stdout
)

// checkFormat returns an error unless format is a value of --output.format that goes with once.
func checkFormat(format string, once bool) error {
	switch format {
	case formatFile:
		return nil
	case formatTable:
		if !once {
			return fmt.Errorf("--output.format=%s prints one discovery: it needs --once", format)
		}
		return nil
	}
	return fmt.Errorf("--output.format=%q is neither %s nor %s", format, formatFile, formatTable)
}

// runMode is how serve runs: as a daemon, or one cycle (once), writing the outputs or, with
// table set, printing the targets and skipped items there instead.
type runMode struct {
	once  bool
	table io.Writer
}

// printOnce runs one discovery of sources, without outputs or jobs, and prints its targets and
// skipped items to w (--once --output.format=table). The tables are printed when the discovery
// failed too, with what it found.
func printOnce(ctx context.Context, w io.Writer, cfg config.Config, sources []refresh.Source, metrics *refresh.Metrics, logger *slog.Logger) error {
	loop := refresh.New(refresh.Options{Interval: time.Duration(cfg.RefreshInterval), Sources: sources, Logger: logger, Metrics: metrics})
	runErr := loop.RunOnce(ctx)
	groups, err := loop.Targets()
	if err != nil {
		return err
	}
	if err := writeTables(w, groups, loop.Status(math.MaxInt).Skipped); err != nil {
		return fmt.Errorf("print the tables: %w", err)
	}
	if runErr != nil {
		return fmt.Errorf("discovery failed: %w", runErr)
	}
	return nil
}

// writeTables prints the targets (endpoint, metrics path and a few key labels) and the skipped
// items (source, reason, ids and what to change) as two aligned tables.
func writeTables(w io.Writer, groups []*targets.Group, skipped []refresh.Skipped) error {
	bw := bufio.NewWriter(w)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TARGETS (%d)\n", len(groups))
	fmt.Fprintln(tw, "ADDRESS\tPATH\tSOURCE\tCLUSTER\tSERVICE\tTASK")
	for _, g := range groups {
		l := g.Labels
		path := string(l[targets.LabelMetricsPath])
		if path == "" {
			path = targets.DefaultMetricsPath
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g.Address(), path, strings.Trim(string(l[targets.LabelSource]), ","),
			cell(l[targets.LabelCluster]), cell(l[targets.LabelService]), cell(taskOf(l)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(tw, "\nSKIPPED (%d)\n", len(skipped))
	fmt.Fprintln(tw, "SOURCE\tREASON\tITEM\tWHAT TO CHANGE")
	for _, s := range skipped {
		src := s.Source
		if s.Account != "" || s.Region != "" {
			src += " in " + refresh.Pair{Account: s.Account, Region: s.Region}.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", src, s.Reason, s.IDs, s.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// taskOf names a target's task: the ECS task ARN's id, or the Cloud Map instance id (ECS
// registers a task under its id).
func taskOf(l model.LabelSet) model.LabelValue {
	if arn := string(l[ecs.LabelTaskARN]); arn != "" {
		return model.LabelValue(arn[strings.LastIndex(arn, "/")+1:])
	}
	return l[cloudmap.LabelInstanceID]
}

// cell is a table cell: "-" for an empty value, tabs and newlines as spaces (they would break
// the alignment).
func cell(v model.LabelValue) string {
	if v == "" {
		return "-"
	}
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(string(v))
}
