// Package cloudmap discovers the ECS tasks registered in AWS Cloud Map namespaces.
//
// Every cycle it resolves the configured namespaces (by name or id), lists every service of each
// namespace and every instance of each service, following every page, and maps each instance to
// one or two targets (see builder). Failures never cost good data: a namespace or service
// whose calls fail keeps the targets it had at its last successful discovery.
//
// Namespaces are discovered in parallel, and the calls about their services share one bound
// (Options.Concurrency): a call that hangs holds one slot until the AWS client's call timeout
// ends it, and costs only its own service's freshness; every other namespace and service is
// discovered meanwhile, and Progress tells the loop about each as soon as it is done, so that a
// change elsewhere does not wait for the hung call.
//
// Calls per cycle, for N namespaces and S services: one ListNamespaces page per 100 namespaces,
// one ListServices page per 100 services per namespace, and per service one DiscoverInstances
// call (services of up to 1 000 instances) or one ListInstances page per 100 instances (larger
// services, or namespaces whose HTTP name is shared). GetService is called once per service for
// its life (its namespace never changes) and ListTagsForResource once per service per tag
// refresh interval.
package cloudmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sd "github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	"github.com/aws/aws-sdk-go-v2/service/servicediscovery/types"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// API is the part of the Cloud Map client the source uses.
type API interface {
	ListNamespaces(ctx context.Context, in *sd.ListNamespacesInput, optFns ...func(*sd.Options)) (*sd.ListNamespacesOutput, error)
	ListServices(ctx context.Context, in *sd.ListServicesInput, optFns ...func(*sd.Options)) (*sd.ListServicesOutput, error)
	GetService(ctx context.Context, in *sd.GetServiceInput, optFns ...func(*sd.Options)) (*sd.GetServiceOutput, error)
	ListTagsForResource(ctx context.Context, in *sd.ListTagsForResourceInput, optFns ...func(*sd.Options)) (*sd.ListTagsForResourceOutput, error)
	DiscoverInstances(ctx context.Context, in *sd.DiscoverInstancesInput, optFns ...func(*sd.Options)) (*sd.DiscoverInstancesOutput, error)
	ListInstances(ctx context.Context, in *sd.ListInstancesInput, optFns ...func(*sd.Options)) (*sd.ListInstancesOutput, error)
	GetInstancesHealthStatus(ctx context.Context, in *sd.GetInstancesHealthStatusInput, optFns ...func(*sd.Options)) (*sd.GetInstancesHealthStatusOutput, error)
}

// Name is the source's name in metrics, logs and the __meta_ecs_sd_source label.
const Name = "cloudmap"

// discoverMax is the most instances DiscoverInstances returns; a service that fills it is listed
// with ListInstances instead, which pages.
const discoverMax = 1000

// pageSize is the largest page of the Cloud Map list calls (and AWS's default); it is asked for
// explicitly so that every implementation pages the same way.
const pageSize = 100

// The Cloud Map operations the source calls, as errors, logs and ecs_sd_aws_api_calls_total name
// them.
const (
	opListNamespaces           = "ListNamespaces"
	opListServices             = "ListServices"
	opGetService               = "GetService"
	opListTagsForResource      = "ListTagsForResource"
	opDiscoverInstances        = "DiscoverInstances"
	opListInstances            = "ListInstances"
	opGetInstancesHealthStatus = "GetInstancesHealthStatus"
)

// Options configures the source.
type Options struct {
	// Namespaces returns the namespace names or ids to discover, every cycle.
	Namespaces func(context.Context) ([]string, error)
	// IncludeUnhealthy keeps instances whose health is UNHEALTHY.
	IncludeUnhealthy bool
	// TagsRefreshInterval is how long a service's tags are reused before they are read again.
	TagsRefreshInterval time.Duration
	// Concurrency caps the Cloud Map calls in flight about namespaces and services, across every
	// namespace (default 8).
	Concurrency int
	// Pair is the account and region the source discovers in: every target is labelled with
	// them (targets.LabelAccountID, targets.LabelRegion, when set), and so are the source's
	// shared metrics when they are labelled by pair.
	Pair refresh.Pair
	// Account, when Pair has no account, reads it (ecs-sd's own account id, from STS): at the
	// start of the first discoveries, until it can (see refresh.Place).
	Account func(context.Context) (string, error)
	Logger  *slog.Logger
	// Metrics are the metrics every source shares; Registerer receives the source's own.
	Metrics    *refresh.Metrics
	Registerer prometheus.Registerer
	// now is the clock, for tests.
	now func() time.Time
}

// Source is the Cloud Map source.
type Source struct {
	api   API
	opts  Options
	place *refresh.Place
	slots chan struct{}      // one per call in flight: Concurrency
	gets  singleflight.Group // GetService calls in flight, by service id

	mu          sync.Mutex
	lastEntries []string
	entryNS     map[string][]namespace // last resolution of each configured entry
	nsServices  map[string][]string    // namespace id -> service ids at its last good listing
	services    map[string]*serviceState
	nsAmbiguous map[string]bool         // HTTP names shared by several namespaces
	collisions  refresh.Once            // label-name collisions, logged when they appear
	discovering []namespace             // the namespaces of the discovery that runs, once resolved
	resolved    []namespace             // the namespaces of the last discovery that ended
	byECS       map[ecsService][]string // ECS service -> the ids of the services it registers in (see ServicesOfECSService)

	*metrics
}

type serviceState struct {
	namespaceID string // from GetService; never changes
	name, arn   string
	tags        map[string]string
	tagsRead    time.Time
	healthCheck bool             // the service has a (custom) health check
	groups      []*targets.Group // last good
	ecsServices []ecsService     // the ECS services its instances have named since it is known
}

// New creates the source.
func New(api API, opts Options) *Source {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	opts.Logger = refresh.LoggerOrDiscard(opts.Logger)
	if opts.now == nil {
		opts.now = time.Now
	}
	return &Source{
		api:        api,
		opts:       opts,
		place:      refresh.NewPlace(opts.Pair, opts.Account),
		slots:      make(chan struct{}, opts.Concurrency),
		entryNS:    map[string][]namespace{},
		nsServices: map[string][]string{},
		services:   map[string]*serviceState{},
		byECS:      map[ecsService][]string{},
		metrics:    newMetrics(opts.Metrics, opts.Pair, opts.Registerer, opts.Logger),
	}
}

// Name implements refresh.Source.
func (s *Source) Name() string { return Name }

// Pair implements refresh.Paired: the pair as configured, whose account is empty when it is read
// by the first discovery (refresh.Place): the loop's key of the source never changes. Targets
// carry the account once read.
func (s *Source) Pair() refresh.Pair { return s.opts.Pair }

// Location implements refresh.Located: the pair with its account once read.
func (s *Source) Location() refresh.Pair { return s.place.Pair() }

// Discover implements refresh.Source.
func (s *Source) Discover(ctx context.Context) ([]*targets.Group, error) {
	if _, err := s.place.Resolve(ctx); err != nil {
		return nil, err
	}
	var errs []error
	entries, err := s.opts.Namespaces(ctx)
	if err != nil {
		s.mu.Lock()
		entries = s.lastEntries
		s.mu.Unlock()
		if entries == nil {
			return nil, fmt.Errorf("read namespace list: %w", err)
		}
		s.opts.Logger.Warn("Cannot read the namespace list; using the last one", "namespaces", len(entries), "err", err)
		errs = append(errs, fmt.Errorf("read namespace list: %w", err))
	} else {
		s.mu.Lock()
		s.lastEntries = entries
		s.mu.Unlock()
	}

	resolved, err := s.resolve(ctx, entries)
	errs = append(errs, err)
	s.mu.Lock()
	s.discovering = resolved
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.discovering = nil
		s.mu.Unlock()
	}()

	// Every namespace at once: their calls take the source's slots, so they are bounded all the
	// same, and a namespace waiting on a slow call holds no slot.
	nsErrs := make([]error, len(resolved))
	var wg sync.WaitGroup
	for i, ns := range resolved {
		wg.Go(func() { nsErrs[i] = s.discoverNamespace(ctx, ns) })
	}
	wg.Wait()
	errs = append(errs, nsErrs...)

	s.mu.Lock()
	s.resolved = resolved
	s.mu.Unlock()
	out, counts := s.held(resolved)
	s.targetsGauge.Reset()
	for i, ns := range resolved {
		s.targetsGauge.WithLabelValues(ns.Name, ns.ID).Set(float64(counts[i]))
	}
	s.forgetOthers(resolved)
	s.endCycle(ctx)
	return out, errors.Join(errs...)
}

// Progress implements refresh.Progressive: once the running discovery has resolved its
// namespaces, the targets of their services, those it has discovered already and the last good
// targets of the others (what Discover would return if it ended now).
func (s *Source) Progress() ([]*targets.Group, bool) {
	s.mu.Lock()
	namespaces := s.discovering
	s.mu.Unlock()
	if namespaces == nil {
		return nil, false
	}
	groups, _ := s.held(namespaces)
	return groups, true
}

// held returns the targets the source holds for namespaces: the last good targets of each one's
// services (fresh for those discovered in this cycle), in the order of namespaces and then of
// service ids, and how many each namespace has.
func (s *Source) held(namespaces []namespace) ([]*targets.Group, []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*targets.Group{}
	counts := make([]int, len(namespaces))
	for i, ns := range namespaces {
		for _, id := range s.nsServices[ns.ID] {
			if st := s.services[id]; st != nil {
				out = append(out, st.groups...)
				counts[i] += len(st.groups)
			}
		}
	}
	return out, counts
}

// forgetOthers drops the state of namespaces that are no longer discovered.
func (s *Source) forgetOthers(resolved []namespace) {
	keep := make(map[string]bool, len(resolved))
	for _, ns := range resolved {
		keep[ns.ID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for nsID, ids := range s.nsServices {
		if keep[nsID] {
			continue
		}
		for _, id := range ids {
			s.forgetLocked(id)
		}
		delete(s.nsServices, nsID)
	}
}

// resolve maps the configured entries to namespaces. An entry that matches nothing is a warning;
// when it matched before (or when ListNamespaces fails) its last resolution is used, so that its
// services keep their last-known targets.
func (s *Source) resolve(ctx context.Context, entries []string) ([]namespace, error) {
	all, listErr := s.listNamespaces(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if listErr == nil {
		byHTTPName := map[string]int{}
		for _, ns := range all {
			byHTTPName[ns.HTTPName]++
		}
		s.nsAmbiguous = map[string]bool{}
		for name, n := range byHTTPName {
			if n > 1 {
				s.nsAmbiguous[name] = true
			}
		}
	}
	s.unresolved.Reset()
	seen := map[string]bool{}
	var out []namespace
	entryNS := map[string][]namespace{}
	for _, entry := range entries {
		var matched []namespace
		if listErr == nil {
			for _, ns := range all {
				if ns.ID == entry || ns.Name == entry {
					matched = append(matched, ns)
				}
			}
		}
		if len(matched) == 0 {
			matched = s.entryNS[entry]
			if listErr == nil {
				s.unresolved.WithLabelValues(entry).Set(1)
				s.opts.Logger.Warn("Namespace matches no Cloud Map namespace", "namespace", entry, "keeping_last_known", len(matched) > 0)
			}
		}
		if len(matched) > 0 {
			entryNS[entry] = matched
		}
		for _, ns := range matched {
			if !seen[ns.ID] {
				seen[ns.ID] = true
				out = append(out, ns)
			}
		}
	}
	s.entryNS = entryNS
	if listErr != nil {
		return out, s.failed(opListNamespaces, refresh.Resource{}, listErr)
	}
	return out, nil
}

// failed logs a failed Cloud Map call with attrs and returns it as an error that names its
// operation and resource.
func (s *Source) failed(op string, r refresh.Resource, err error, attrs ...any) error {
	e := &refresh.OpError{Op: op, Resource: r, Err: err}
	s.opts.Logger.Error("Cloud Map call failed; keeping last-known targets", append(e.LogAttrs(), attrs...)...)
	return e
}

func namespaceResource(ns namespace) refresh.Resource {
	return refresh.Resource{Kind: "namespace", Name: ns.Name, ID: ns.ID}
}

func serviceResource(name, id string) refresh.Resource {
	return refresh.Resource{Kind: "service", Name: name, ID: id}
}

func (s *Source) listNamespaces(ctx context.Context) ([]namespace, error) {
	var out []namespace
	p := sd.NewListNamespacesPaginator(s.api, &sd.ListNamespacesInput{MaxResults: aws.Int32(pageSize)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, n := range page.Namespaces {
			ns := namespace{ID: aws.ToString(n.Id), Name: aws.ToString(n.Name), Type: string(n.Type)}
			if n.Properties != nil {
				if n.Properties.HttpProperties != nil {
					ns.HTTPName = aws.ToString(n.Properties.HttpProperties.HttpName)
				}
				if n.Properties.DnsProperties != nil {
					ns.HostedZoneID = aws.ToString(n.Properties.DnsProperties.HostedZoneId)
				}
			}
			if ns.HTTPName == "" {
				ns.HTTPName = ns.Name
			}
			out = append(out, ns)
		}
	}
	return out, nil
}

// discoverNamespace discovers every service of ns, each of which keeps its last good targets when
// its calls fail; when the services cannot be listed, every service the namespace had keeps its
// targets.
func (s *Source) discoverNamespace(ctx context.Context, ns namespace) error {
	var summaries []types.ServiceSummary
	var err error
	s.withSlot(ctx, func() { summaries, err = s.listServices(ctx, ns) })
	if err != nil {
		return s.failed(opListServices, namespaceResource(ns), err)
	}
	ids, getErr := s.inNamespace(ctx, ns, summaries)

	errs := make([]error, len(ids))
	s.forEach(ctx, len(ids), func(i int) { errs[i] = s.discoverService(ctx, ns, ids[i]) })
	if err := errors.Join(append(errs, getErr)...); err != nil {
		return fmt.Errorf("namespace %q (%s): %w", ns.Name, ns.ID, err)
	}
	return nil
}

// listServices lists the services that Cloud Map returns for the namespace filter of ns, every
// page.
func (s *Source) listServices(ctx context.Context, ns namespace) ([]types.ServiceSummary, error) {
	var summaries []types.ServiceSummary
	p := sd.NewListServicesPaginator(s.api, &sd.ListServicesInput{MaxResults: aws.Int32(pageSize), Filters: []types.ServiceFilter{{
		Name: types.ServiceFilterNameNamespaceId, Values: []string{ns.ID}, Condition: types.FilterConditionEq,
	}}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		summaries = append(summaries, page.Services...)
	}
	return summaries, nil
}

// inNamespace returns the sorted ids of the listed services that are in ns, checked against each
// service's own namespace id (read once per service with GetService), so the result is right even
// where the filter is not applied (some emulators return every service), and forgets the
// services of ns that are gone. Services whose namespace could not be read (new ones only: the
// namespace of a known service is cached) are left out, with an error, to be retried next cycle.
func (s *Source) inNamespace(ctx context.Context, ns namespace, summaries []types.ServiceSummary) ([]string, error) {
	nsIDs := make([]string, len(summaries))
	errs := make([]error, len(summaries))
	var unknown []int // services whose namespace is not cached
	s.mu.Lock()
	for i, sum := range summaries {
		if st, ok := s.services[aws.ToString(sum.Id)]; ok {
			nsIDs[i] = st.namespaceID
		} else {
			unknown = append(unknown, i)
		}
	}
	s.mu.Unlock()
	s.forEach(ctx, len(unknown), func(j int) {
		i := unknown[j]
		sum := summaries[i]
		var err error
		if nsIDs[i], err = s.serviceNamespace(ctx, sum); err != nil {
			errs[i] = s.failed(opGetService, serviceResource(aws.ToString(sum.Name), aws.ToString(sum.Id)), err, "namespace", ns.Name)
		}
	})
	var ids []string
	for i, sum := range summaries {
		if errs[i] == nil && nsIDs[i] == ns.ID {
			ids = append(ids, aws.ToString(sum.Id))
		}
	}
	sort.Strings(ids)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, old := range s.nsServices[ns.ID] {
		if !slices.Contains(ids, old) {
			s.forgetLocked(old)
		}
	}
	s.nsServices[ns.ID] = ids
	return ids, errors.Join(errs...)
}

// serviceNamespace reads the namespace id of a listed service whose namespace is not cached, with
// GetService, once, also when several namespaces list the service at once (where the namespace
// filter is not applied, each namespace asks about every service).
func (s *Source) serviceNamespace(ctx context.Context, sum types.ServiceSummary) (string, error) {
	id := aws.ToString(sum.Id)
	v, err, _ := s.gets.Do(id, func() (any, error) {
		s.mu.Lock()
		st, ok := s.services[id] // read by a call that has just ended
		s.mu.Unlock()
		if ok {
			return st.namespaceID, nil
		}
		out, err := s.api.GetService(ctx, &sd.GetServiceInput{Id: aws.String(id)})
		if err != nil {
			return "", err
		}
		st = &serviceState{
			namespaceID: aws.ToString(out.Service.NamespaceId),
			name:        aws.ToString(sum.Name),
			arn:         aws.ToString(sum.Arn),
			healthCheck: out.Service.HealthCheckConfig != nil || out.Service.HealthCheckCustomConfig != nil,
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.services[id] = st
		return st.namespaceID, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// withSlot runs fn holding one of the source's call slots. When ctx ends before a slot is free,
// fn runs without one: its calls then fail at once on ctx, and what they were about keeps its
// last targets.
func (s *Source) withSlot(ctx context.Context, fn func()) {
	if s.acquire(ctx) {
		defer s.release()
	}
	fn()
}

// forEach runs fn(0) ... fn(n-1), each in a goroutine holding a call slot (see withSlot), and
// returns when all are done. Goroutines start only as slots become free, so at most Concurrency
// run at once across the whole source.
func (s *Source) forEach(ctx context.Context, n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		held := s.acquire(ctx)
		wg.Go(func() {
			if held {
				defer s.release()
			}
			fn(i)
		})
	}
	wg.Wait()
}

// acquire takes a call slot, or returns false when ctx ends first.
func (s *Source) acquire(ctx context.Context) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Source) release() { <-s.slots }

// discoverService discovers the targets of one service; when that fails the service keeps its
// last good targets, and the error is returned.
func (s *Source) discoverService(ctx context.Context, ns namespace, id string) error {
	s.mu.Lock()
	st := s.services[id]
	name, arn, healthCheck := st.name, st.arn, st.healthCheck
	tags, tagsRead, last := st.tags, st.tagsRead, st.groups
	ambiguous := s.nsAmbiguous[ns.HTTPName]
	s.mu.Unlock()

	now := s.opts.now()
	if tags == nil || now.Sub(tagsRead) >= s.opts.TagsRefreshInterval {
		t, err := s.readTags(ctx, arn)
		if err != nil {
			return s.failed(opListTagsForResource, serviceResource(name, id), err, "namespace", ns.Name)
		}
		tags, tagsRead = t, now
	}

	insts, err := s.instances(ctx, ns, name, id, ambiguous, healthCheck)
	if err != nil {
		return err
	}

	groups := s.serviceTargets(ctx, ns, service{ID: id, Name: name, ARN: arn, Tags: tags}, insts, last)

	s.mu.Lock()
	st.tags, st.tagsRead = tags, tagsRead
	st.groups = groups
	s.indexLocked(id, st, insts)
	s.mu.Unlock()
	return nil
}

func portFrom(d defaults) string {
	if d.Port == "" {
		return tagMetricsPort
	}
	return d.Port
}

func (s *Source) readTags(ctx context.Context, arn string) (map[string]string, error) {
	out, err := s.api.ListTagsForResource(ctx, &sd.ListTagsForResourceInput{ResourceARN: aws.String(arn)})
	if err != nil {
		return nil, err
	}
	tags := make(map[string]string, len(out.Tags))
	for _, t := range out.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return tags, nil
}

// instances returns every instance of a service with its health: with one DiscoverInstances call
// when the service has fewer than 1 000 instances and the namespace's HTTP name is its own, else
// with ListInstances pages (and GetInstancesHealthStatus pages when the service has a health
// check). A failed call is logged and returned as an error naming the operation and the service.
func (s *Source) instances(ctx context.Context, ns namespace, name, id string, ambiguous, healthCheck bool) ([]instance, error) {
	failed := func(op string, err error) ([]instance, error) {
		return nil, s.failed(op, serviceResource(name, id), err, "namespace", ns.Name)
	}
	if !ambiguous {
		out, err := s.api.DiscoverInstances(ctx, &sd.DiscoverInstancesInput{
			NamespaceName: aws.String(ns.HTTPName),
			ServiceName:   aws.String(name),
			HealthStatus:  types.HealthStatusFilterAll,
			MaxResults:    aws.Int32(discoverMax),
		})
		if err != nil {
			return failed(opDiscoverInstances, err)
		}
		if len(out.Instances) < discoverMax {
			insts := make([]instance, 0, len(out.Instances))
			for _, i := range out.Instances {
				insts = append(insts, instance{ID: aws.ToString(i.InstanceId), Attributes: i.Attributes, Health: string(i.HealthStatus)})
			}
			return insts, nil
		}
	}
	var insts []instance
	p := sd.NewListInstancesPaginator(s.api, &sd.ListInstancesInput{ServiceId: aws.String(id), MaxResults: aws.Int32(pageSize)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return failed(opListInstances, err)
		}
		for _, i := range page.Instances {
			insts = append(insts, instance{ID: aws.ToString(i.Id), Attributes: i.Attributes})
		}
	}
	if !healthCheck {
		// Without a health check Cloud Map has no health to report: every instance counts.
		return insts, nil
	}
	health, err := s.health(ctx, id)
	if err != nil {
		return failed(opGetInstancesHealthStatus, err)
	}
	for i := range insts {
		insts[i].Health = health[insts[i].ID]
	}
	return insts, nil
}

func (s *Source) health(ctx context.Context, serviceID string) (map[string]string, error) {
	health := map[string]string{}
	p := sd.NewGetInstancesHealthStatusPaginator(s.api, &sd.GetInstancesHealthStatusInput{ServiceId: aws.String(serviceID), MaxResults: aws.Int32(pageSize)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for id, st := range page.Status {
			health[id] = string(st)
		}
	}
	return health, nil
}
