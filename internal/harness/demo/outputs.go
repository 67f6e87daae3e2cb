package demo

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/ecs-sd/ecs-sd/internal/harness/promclient"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// targetsPath is where ecs-sd serves its http_sd list (its default --web.targets-path).
const targetsPath = "/prometheus-targets"

// outputsPoll is how often WaitEcsSD and WaitPrometheus read what they wait for: it sets the
// resolution of the times they report.
const outputsPoll = 20 * time.Millisecond

// EcsSDTargets returns the target addresses in ecs-sd's two outputs: its http_sd answer and its
// file_sd file (FileSDFile).
func (p *Pipeline) EcsSDTargets(ctx context.Context) (httpSD, fileSD []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	body, err := promclient.Get(ctx, p.EcsSDURL+targetsPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read ecs-sd's http_sd list: %w", err)
	}
	if httpSD, err = addresses(body); err != nil {
		return nil, nil, fmt.Errorf("read ecs-sd's http_sd list: %w", err)
	}
	data, err := os.ReadFile(p.FileSDFile())
	if err != nil {
		return nil, nil, fmt.Errorf("read ecs-sd's file_sd file: %w", err)
	}
	if fileSD, err = addresses(data); err != nil {
		return nil, nil, fmt.Errorf("read ecs-sd's file_sd file %s: %w", p.FileSDFile(), err)
	}
	return httpSD, fileSD, nil
}

// addresses returns the target addresses of a file_sd or http_sd list.
func addresses(list []byte) ([]string, error) {
	groups, err := targets.Unmarshal(list)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range groups {
		if g != nil {
			out = append(out, g.Targets...)
		}
	}
	return out, nil
}

// WaitEcsSD waits until addr is (present) or is no longer (!present) a target in both of ecs-sd's
// outputs, reading them every 20 ms, and returns when it first saw so. It gives up with an
// error when ctx ends or a process of the pipeline exits.
func (p *Pipeline) WaitEcsSD(ctx context.Context, addr string, present bool) (time.Time, error) {
	what := fmt.Sprintf("%s to be a target in ecs-sd's http_sd list and file_sd file", addr)
	if !present {
		what = fmt.Sprintf("%s to be gone from ecs-sd's http_sd list and file_sd file", addr)
	}
	return p.waitFor(ctx, what, func(ctx context.Context) (bool, error) {
		httpSD, fileSD, err := p.EcsSDTargets(ctx)
		if err != nil {
			return false, err
		}
		inHTTP, inFile := slices.Contains(httpSD, addr), slices.Contains(fileSD, addr)
		return inHTTP == present && inFile == present, fmt.Errorf("in the http_sd list: %v, in the file_sd file: %v", inHTTP, inFile)
	})
}

// WaitPrometheus waits until addr is one of Prometheus's active targets (whatever its health:
// before its first scrape too), reading them every 20 ms, and returns when it first saw so. It
// gives up with an error when ctx ends or a process of the pipeline exits.
func (p *Pipeline) WaitPrometheus(ctx context.Context, addr string) (time.Time, error) {
	return p.waitFor(ctx, addr+" to be an active target of Prometheus", func(ctx context.Context) (bool, error) {
		active, err := p.ActiveTargets(ctx)
		if err != nil {
			return false, err
		}
		return slices.ContainsFunc(active, func(t promclient.Target) bool { return t.Labels["instance"] == addr }),
			fmt.Errorf("%d active targets, not it", len(active))
	})
}

// waitFor calls check every 20 ms until it reports done and returns when it did. check's error
// says why it is not done yet (or what failed); the last one is in the error returned when ctx
// ends or a process of the pipeline exits first.
func (p *Pipeline) waitFor(ctx context.Context, what string, check func(context.Context) (bool, error)) (time.Time, error) {
	ticker := time.NewTicker(outputsPoll)
	defer ticker.Stop()
	var last error
	for {
		done, why := check(ctx)
		if done {
			return time.Now(), nil
		}
		if ctx.Err() == nil { // not the check that ctx's end cut short
			last = why
		}
		if err := p.Err(); err != nil {
			return time.Time{}, err
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			if last == nil {
				return time.Time{}, fmt.Errorf("wait for %s: %w", what, context.Cause(ctx))
			}
			return time.Time{}, fmt.Errorf("wait for %s: %w (last: %w)", what, context.Cause(ctx), last)
		}
	}
}

// EcsSDMetric returns the value of one series of ecs-sd's /metrics, named as the text format
// writes it (e.g. `ecs_sd_refresh_duration_seconds_count{source="cloudmap"}`).
func (p *Pipeline) EcsSDMetric(ctx context.Context, series string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return promclient.Scrape(ctx, p.EcsSDURL+"/metrics", series)
}
