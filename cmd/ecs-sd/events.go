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
	if cfg.Events.QueueURL == "" {
		return func(ctx context.Context) { _ = loop.Run(ctx) }
	}
	consumer := events.New(awsclient.SQS(awsCfg), resync{loop}, events.Options{
		QueueURL:   cfg.Events.QueueURL,
		Coalesce:   time.Duration(cfg.Events.Coalesce),
		Logger:     logger.With("component", "events"),
		Registerer: reg,
	})
	logger.Info("Event mode: discovery runs after each batch of events, and every refresh interval", "queue", cfg.Events.QueueURL, "refresh_interval", cfg.RefreshInterval)
	return func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Go(func() { consumer.Run(ctx) })
		_ = loop.Run(ctx)
		wg.Wait()
	}
}

// resync is event mode's events.Handler as long as the sources take no events themselves: a
// batch that changed a task or a Cloud Map service wakes the loop (refresh.Loop.Wake), which
// discovers every source at once and so reads the change, with everything else, from AWS. Asks
// made while a discovery runs are merged into one discovery after it. Tasks of clusters ecs-sd
// does not watch should be left out by the EventBridge rule: here they cost a discovery that
// finds nothing new.
type resync struct{ loop *refresh.Loop }

func (r resync) TaskChanged(context.Context, ecstypes.Task) {}

func (r resync) CloudMapServiceChanged(context.Context, string) {}

func (r resync) Flush(context.Context) { r.loop.Wake() }
