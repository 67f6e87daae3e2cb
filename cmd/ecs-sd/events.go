package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-sd/ecs-sd/internal/awsclient"
	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/events"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
)

// newRunner returns what runs the discovery loop until its context ends: every interval, and in
// event mode also at once after a batch of events changed something (see resync).
func newRunner(cfg config.Config, awsCfg aws.Config, loop *refresh.Loop, reg prometheus.Registerer, logger *slog.Logger) func(context.Context) {
	interval := time.Duration(cfg.RefreshInterval)
	if cfg.Events.QueueURL == "" {
		return func(ctx context.Context) { _ = loop.Run(ctx) }
	}
	now := make(resync, 1)
	consumer := events.New(awsclient.SQS(awsCfg), now, events.Options{
		QueueURL:   cfg.Events.QueueURL,
		Coalesce:   time.Duration(cfg.Events.Coalesce),
		Logger:     logger.With("component", "events"),
		Registerer: reg,
	})
	logger.Info("Event mode: discovery runs after each batch of events, and every refresh interval", "queue", cfg.Events.QueueURL, "refresh_interval", cfg.RefreshInterval)
	return func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Go(func() { consumer.Run(ctx) })
		runLoop(ctx, loop, interval, now)
		wg.Wait()
	}
}

// runLoop is refresh.Loop.Run with one more reason for a cycle: it runs a cycle at once, then
// every interval and whenever now fires, until ctx ends. Cycles never overlap.
func runLoop(ctx context.Context, loop *refresh.Loop, interval time.Duration, now <-chan struct{}) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		// Errors are logged and counted inside RunOnce; the loop carries on.
		_ = loop.RunOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-now:
		}
	}
}

// resync is event mode's events.Handler as long as the sources take no events themselves: a
// batch that changed a task or a Cloud Map service asks for a discovery cycle at once, which reads
// the change, with everything else, from AWS. Asks made while a cycle runs are merged into one
// cycle after it. Tasks of clusters ecs-sd does not watch should be left out by the EventBridge
// rule: here they cost a cycle that finds nothing new.
type resync chan struct{}

func (r resync) TaskChanged(context.Context, ecstypes.Task) {}

func (r resync) CloudMapServiceChanged(context.Context, string) {}

func (r resync) Flush(context.Context) {
	select {
	case r <- struct{}{}:
	default: // a cycle is asked for already
	}
}
