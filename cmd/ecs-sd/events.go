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
	"github.com/ecs-sd/ecs-sd/internal/cloudmap"
	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/ecs"
	"github.com/ecs-sd/ecs-sd/internal/events"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
)

// newRunner returns what runs the discovery loop until its context ends: every interval, and in
// event mode also the changes events announce, applied by the sources (see applier).
func newRunner(cfg config.Config, awsCfg aws.Config, loop *refresh.Loop, sources []refresh.Source, reg prometheus.Registerer, logger *slog.Logger) func(context.Context) {
	if cfg.Events.QueueURL == "" {
		return func(ctx context.Context) { _ = loop.Run(ctx) }
	}
	logger = logger.With("component", "events")
	consumer := events.New(awsclient.SQS(awsCfg), newApplier(loop, sources, logger), events.Options{
		QueueURL:   cfg.Events.QueueURL,
		Coalesce:   time.Duration(cfg.Events.Coalesce),
		Logger:     logger,
		Registerer: reg,
	})
	logger.Info("Event mode: events are applied as they arrive, and every source discovered every refresh interval", "queue", cfg.Events.QueueURL, "refresh_interval", cfg.RefreshInterval)
	return func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Go(func() { consumer.Run(ctx) })
		_ = loop.Run(ctx)
		wg.Wait()
	}
}

// applier is event mode's events.Handler. A task event is applied by the ECS source
// (ecs.Source.ApplyTask: its targets built from the event, no DescribeTasks), a Cloud Map
// RegisterInstance/DeregisterInstance by the Cloud Map source (cloudmap.Source.RefreshService:
// one DiscoverInstances for that service); at the batch's end each source that changed has its
// targets published through the loop (refresh.Loop.Publish), once. When an event could not be
// applied (an AWS call failed), or is a task event while only Cloud Map is enabled (whose
// service the task names is not known from the task), the batch's end wakes the loop instead:
// every source discovered at once, as the resync does. Events of a disabled source, and of
// clusters or services the sources do not discover, change nothing.
type applier struct {
	loop     *refresh.Loop
	ecs      *ecs.Source      // nil when disabled
	cloudMap *cloudmap.Source // nil when disabled
	logger   *slog.Logger

	// this batch's outcome
	ecsChanged, cloudMapChanged, wake bool
}

func newApplier(loop *refresh.Loop, sources []refresh.Source, logger *slog.Logger) *applier {
	a := &applier{loop: loop, logger: logger}
	for _, s := range sources {
		switch s := s.(type) {
		case *ecs.Source:
			a.ecs = s
		case *cloudmap.Source:
			a.cloudMap = s
		}
	}
	return a
}

func (a *applier) TaskChanged(ctx context.Context, t ecstypes.Task) {
	if a.ecs == nil {
		a.wake = a.wake || a.cloudMap != nil
		return
	}
	changed, err := a.ecs.ApplyTask(ctx, t)
	a.ecsChanged = a.ecsChanged || changed
	if err != nil {
		a.wake = true
		a.logger.Warn("Task event not applied in full; discovering every source", "task", aws.ToString(t.TaskArn), "err", err)
	}
}

func (a *applier) CloudMapServiceChanged(ctx context.Context, serviceID string) {
	if a.cloudMap == nil {
		return
	}
	changed, err := a.cloudMap.RefreshService(ctx, serviceID)
	a.cloudMapChanged = a.cloudMapChanged || changed
	if err != nil {
		a.wake = true
		a.logger.Warn("Cloud Map event not applied; discovering every source", "service_id", serviceID, "err", err)
	}
}

func (a *applier) Flush(ctx context.Context) {
	if a.ecsChanged {
		_ = a.loop.Publish(ctx, a.ecs) // logged and counted
	}
	if a.cloudMapChanged {
		_ = a.loop.Publish(ctx, a.cloudMap) // logged and counted
	}
	if a.wake {
		a.loop.Wake()
	}
	a.ecsChanged, a.cloudMapChanged, a.wake = false, false, false
}
