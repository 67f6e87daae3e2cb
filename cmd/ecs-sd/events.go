package main

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-sd/ecs-sd/internal/awsclient"
	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/ecs"
	"github.com/ecs-sd/ecs-sd/internal/events"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
)

// newRunner returns what runs the discovery loop until its context ends: every interval, and in
// event mode also the changes events announce, applied by the sources (see applier).
func newRunner(cfg config.Config, accs accounts, loop *refresh.Loop, sources []refresh.Source, reg prometheus.Registerer, logger *slog.Logger) func(context.Context) {
	if cfg.Events.QueueURL == "" {
		return func(ctx context.Context) { _ = loop.Run(ctx) }
	}
	logger = logger.With("component", "events")
	handler := newApplier(loop, sources, logger)
	consumer := events.New(awsclient.SQS(accs.own), handler, events.Options{
		Pairs:      accs.eventPairs(),
		QueueURL:   cfg.Events.QueueURL,
		Coalesce:   time.Duration(cfg.Events.Coalesce),
		Logger:     logger,
		Registerer: reg,
	})
	logger.Info("Event mode: events are applied as they arrive, and every source discovered every refresh interval", "queue", cfg.Events.QueueURL, "refresh_interval", cfg.RefreshInterval)
	return func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Go(func() {
			consumer.Run(ctx)
			handler.wait()
		})
		_ = loop.Run(ctx)
		wg.Wait()
	}
}

// cloudMapRereadDelay is how long after an ECS task event its Cloud Map services are read a
// second time. ECS registers a service's task in Cloud Map about when the task starts running,
// before or after it sends the task's event: the read at the event finds a task registered
// before, the read 5 s later one registered just after. Later registrations are found by their
// CloudTrail event, when a rule routes it, or by the resync.
const cloudMapRereadDelay = 5 * time.Second

// cloudMapApplier is what the applier uses of the Cloud Map source (*cloudmap.Source).
type cloudMapApplier interface {
	refresh.Applier
	RefreshService(ctx context.Context, serviceID string) (changed bool, err error)
	ServicesOfECSService(cluster, service string) []string
}

// applier is event mode's events.Handler. A task event is applied by the ECS source
// (ecs.Source.ApplyTask: its targets built from the event, no DescribeTasks), a Cloud Map
// RegisterInstance/DeregisterInstance by the Cloud Map source (cloudmap.Source.RefreshService:
// one DiscoverInstances for that service); at the batch's end each source that changed has its
// targets published through the loop (refresh.Loop.Publish), once.
//
// With several (account, region) pairs, an event is applied by the sources of its pair, the
// envelope's account and region (the consumer ignores, and counts, the events of other pairs);
// with one pair, by its sources, whatever the envelope says.
//
// A task event of an ECS service (group "service:NAME") that registers its tasks in Cloud Map
// services the Cloud Map source knows (cloudmap.Source.ServicesOfECSService) also has those
// services read: at the batch's end, and once more cloudMapRereadDelay later, when ECS has
// registered or deregistered the task's instance (see cloudMapRereadDelay). Whatever the task's
// status: a stopped task is deregistered. Each service is read once per batch, whatever the
// number of its events, CloudTrail's among them; a service whose later read is pending gets no
// second one. The later reads of a batch publish once, through the loop, when they changed the
// targets, and stop when the context ends (wait returns when they have). A task event of a
// standalone task (ECS registers only services' tasks in Cloud Map), or of an ECS service no
// known Cloud Map service names, reads nothing: a new Cloud Map service is found by its
// CloudTrail event or by the resync, never by a discovery per event, which would cost a busy
// fleet of services outside Cloud Map a discovery per batch. It is logged at debug level, and
// not counted in ecs_sd_events_ignored_total: the ECS source may have applied the event. This
// holds with the ECS source enabled or not.
//
// When an event could not be applied (an AWS call failed), the batch's end (or the later read's)
// wakes the loop instead: every source discovered at once, as the resync does. Events of a
// disabled source, and of clusters or services the sources do not discover, change nothing.
type applier struct {
	loop   *refresh.Loop
	pairs  []*pairSources // in the sources' order
	logger *slog.Logger
	// after is time.After, for tests.
	after func(time.Duration) <-chan time.Time

	wake bool // this batch's outcome: an event was not applied

	mu      sync.Mutex
	pending map[pendingRead]bool // Cloud Map services whose later read is scheduled
	later   sync.WaitGroup       // the later reads
	publish sync.Mutex           // one Publish at a time: each publishes what the one before did
}

// pairSources are the sources of one (account, region) pair, and what a batch changed in them.
type pairSources struct {
	pair     refresh.Pair
	ecs      *ecs.Source     // nil when disabled
	cloudMap cloudMapApplier // nil when disabled

	ecsChanged, cloudMapChanged bool
	read                        map[string]bool // Cloud Map services read in this batch
	reread                      []string        // and those that task events named, in order
}

// pendingRead is a Cloud Map service of a pair whose later read is scheduled.
type pendingRead struct {
	pair refresh.Pair
	id   string
}

func newApplier(loop *refresh.Loop, sources []refresh.Source, logger *slog.Logger) *applier {
	a := &applier{loop: loop, logger: logger, after: time.After, pending: map[pendingRead]bool{}}
	for _, s := range sources {
		ps := a.pairOf(pairOf(s))
		switch s := s.(type) {
		case *ecs.Source:
			ps.ecs = s
		case cloudMapApplier:
			ps.cloudMap = s
		}
	}
	return a
}

// pairOf returns the sources of pair, adding them when they are not there yet.
func (a *applier) pairOf(pair refresh.Pair) *pairSources {
	for _, ps := range a.pairs {
		if ps.pair == pair {
			return ps
		}
	}
	ps := &pairSources{pair: pair, read: map[string]bool{}}
	a.pairs = append(a.pairs, ps)
	return ps
}

// route returns the sources that apply an event of pair: the one pair's when there is one, else
// pair's (nil when ecs-sd does not discover there: the consumer lets no such event through).
func (a *applier) route(ctx context.Context, pair refresh.Pair) *pairSources {
	if len(a.pairs) == 1 {
		return a.pairs[0]
	}
	for _, ps := range a.pairs {
		if ps.pair == pair {
			return ps
		}
	}
	a.logger.DebugContext(ctx, "Event of an account and region not discovered", "account", pair.Account, "region", pair.Region)
	return nil
}

func (a *applier) TaskChanged(ctx context.Context, pair refresh.Pair, t ecstypes.Task) {
	ps := a.route(ctx, pair)
	if ps == nil {
		return
	}
	if ps.cloudMap != nil {
		a.cloudMapServicesOf(ctx, ps, t)
	}
	if ps.ecs == nil {
		return
	}
	changed, err := ps.ecs.ApplyTask(ctx, t)
	ps.ecsChanged = ps.ecsChanged || changed
	if err != nil {
		a.wake = true
		a.logger.Warn("Task event not applied in full; discovering every source", append(ps.pair.Attrs(), "task", aws.ToString(t.TaskArn), "err", err)...)
	}
}

// cloudMapServicesOf adds to the batch's reads of ps the Cloud Map services in which the task's
// ECS service registers its tasks.
func (a *applier) cloudMapServicesOf(ctx context.Context, ps *pairSources, t ecstypes.Task) {
	service, ok := strings.CutPrefix(aws.ToString(t.Group), "service:")
	if !ok || service == "" {
		a.logger.DebugContext(ctx, "Task event of a standalone task: no Cloud Map service to read", "task", aws.ToString(t.TaskArn), "group", aws.ToString(t.Group))
		return
	}
	cluster := aws.ToString(t.ClusterArn)
	if _, name, ok := strings.Cut(cluster, ":cluster/"); ok {
		cluster = name
	}
	ids := ps.cloudMap.ServicesOfECSService(cluster, service)
	if len(ids) == 0 {
		a.logger.DebugContext(ctx, "Task event of an ECS service no known Cloud Map service names: no Cloud Map service to read",
			"task", aws.ToString(t.TaskArn), "cluster", cluster, "service", service)
		return
	}
	for _, id := range ids {
		if !slices.Contains(ps.reread, id) {
			ps.reread = append(ps.reread, id)
		}
	}
}

func (a *applier) CloudMapServiceChanged(ctx context.Context, pair refresh.Pair, serviceID string) {
	if ps := a.route(ctx, pair); ps != nil && ps.cloudMap != nil {
		a.refreshCloudMap(ctx, ps, serviceID)
	}
}

// refreshCloudMap reads a Cloud Map service of ps, unless this batch has read it.
func (a *applier) refreshCloudMap(ctx context.Context, ps *pairSources, serviceID string) {
	if ps.read[serviceID] {
		return
	}
	ps.read[serviceID] = true
	changed, err := ps.cloudMap.RefreshService(ctx, serviceID)
	ps.cloudMapChanged = ps.cloudMapChanged || changed
	if err != nil {
		a.wake = true
		a.logger.Warn("Cloud Map event not applied; discovering every source", append(ps.pair.Attrs(), "service_id", serviceID, "err", err)...)
	}
}

func (a *applier) Flush(ctx context.Context) {
	for _, ps := range a.pairs {
		for _, id := range ps.reread {
			a.refreshCloudMap(ctx, ps, id)
		}
		a.scheduleReread(ctx, ps, ps.reread)
		if ps.ecsChanged {
			a.publishChanges(ctx, ps.ecs)
		}
		if ps.cloudMapChanged {
			a.publishChanges(ctx, ps.cloudMap)
		}
		ps.ecsChanged, ps.cloudMapChanged = false, false
		clear(ps.read)
		ps.reread = ps.reread[:0]
	}
	if a.wake {
		a.loop.Wake()
	}
	a.wake = false
}

// publishChanges publishes a source's targets through the loop; its errors are logged and
// counted there.
func (a *applier) publishChanges(ctx context.Context, src refresh.Applier) {
	a.publish.Lock()
	defer a.publish.Unlock()
	_ = a.loop.Publish(ctx, src)
}

// scheduleReread reads, cloudMapRereadDelay from now, those of the Cloud Map services ids of ps
// whose later read is not pending yet, then publishes the Cloud Map source's targets if they
// changed. It ends without reading when ctx ends first.
func (a *applier) scheduleReread(ctx context.Context, ps *pairSources, ids []string) {
	a.mu.Lock()
	var due []string
	for _, id := range ids {
		if k := (pendingRead{ps.pair, id}); !a.pending[k] {
			a.pending[k] = true
			due = append(due, id)
		}
	}
	a.mu.Unlock()
	if len(due) == 0 {
		return
	}
	timer := a.after(cloudMapRereadDelay)
	cloudMap := ps.cloudMap
	a.later.Go(func() {
		select {
		case <-ctx.Done():
			return
		case <-timer:
		}
		a.mu.Lock()
		for _, id := range due {
			delete(a.pending, pendingRead{ps.pair, id}) // an event from now on schedules another read
		}
		a.mu.Unlock()
		changed, failed := false, false
		for _, id := range due {
			c, err := cloudMap.RefreshService(ctx, id)
			changed = changed || c
			if err != nil && ctx.Err() == nil {
				failed = true
				a.logger.Warn("Cloud Map service not read after a task event; discovering every source", append(ps.pair.Attrs(), "service_id", id, "err", err)...)
			}
		}
		if ctx.Err() != nil {
			return
		}
		if changed {
			a.publishChanges(ctx, cloudMap)
		}
		if failed {
			a.loop.Wake()
		}
	})
}

// wait returns when the later reads have ended; call it once no batch is applied any more.
func (a *applier) wait() { a.later.Wait() }

// pairOf returns the pair of a source (refresh.Paired), the zero Pair when it has none.
func pairOf(s refresh.Source) refresh.Pair {
	if p, ok := s.(refresh.Paired); ok {
		return p.Pair()
	}
	return refresh.Pair{}
}
