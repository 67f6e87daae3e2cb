package refresh

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Skip is an item that gave no target (a Cloud Map instance or one of its endpoints, an ECS
// container endpoint or task), and why.
type Skip struct {
	Item   string // names the item within its scope: an instance id, a task and container
	Reason string // a short constant: bad_port, no_ip, ...
	Detail string // what was wrong, for the log
	// Quiet marks a passing state (an unhealthy instance, a task still starting): its changes are
	// logged at debug level; the others' at warning (skipped) and info (skipped no more).
	Quiet bool
	// IDs find the item within its scope (an instance id and endpoint; a task ARN and container):
	// the status shows them after the scope's (Set's attrs).
	IDs []ID

	since time.Time // when it was first skipped for Reason
}

// ID is one of the ids that find a skipped item in AWS: what it names (namespace, service,
// instance, cluster, task, container, ...) and its value.
type ID struct {
	Name  string
	Value string
}

// IDs are a skipped item's ids, in order: the scope's, then the item's own. In JSON they are an
// object whose keys keep that order.
type IDs []ID

// MarshalJSON writes ids as one JSON object, in order.
func (ids IDs) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(id.Name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(id.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// String writes ids as name=value pairs separated by spaces, values quoted when they hold a
// space, a quote or nothing.
func (ids IDs) String() string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		v := id.Value
		if v == "" || strings.ContainsAny(v, " \t\n\"=") {
			v = strconv.Quote(v)
		}
		parts[i] = id.Name + "=" + v
	}
	return strings.Join(parts, " ")
}

// Skipped is an item skipped now, as the status shows it.
type Skipped struct {
	Source  string    `json:"source"`
	Account string    `json:"account,omitempty"`
	Region  string    `json:"region,omitempty"`
	Reason  string    `json:"reason"` // the reason label of ecs_sd_targets_skipped_total
	IDs     IDs       `json:"ids"`
	Message string    `json:"message"` // what is wrong, naming the tag, label or attribute to change
	Since   time.Time `json:"since"`   // first skipped for this reason (since start)
}

// Skips follows what one source skipped from cycle to cycle. A source reports, for every scope it
// discovered (a Cloud Map service, an ECS task), the items of the scope that it skipped (Set);
// at the end of the cycle (Done) the changes are logged, aggregated by reason: items skipped
// that were not before (or for another reason), and items skipped no more. A lasting fault is
// thus logged once, not every cycle. The gauge ecs_sd_targets_skipped{source,reason} holds the
// items skipped now, and ecs_sd_targets_skipped_total{source,reason} counts the events: an item
// skipped for a reason it was not skipped for at the previous cycle. Skips is safe for concurrent
// use.
type Skips struct {
	source  string
	pair    Pair
	logger  *slog.Logger
	current *prometheus.GaugeVec   // by reason
	events  *prometheus.CounterVec // by reason

	mu      sync.Mutex
	scopes  map[string]*scope     // the scopes with skipped items
	counts  map[string]int        // reason -> items skipped now
	newly   map[string]int        // reason -> items newly skipped, since start
	changes map[changeKey]*change // since the last Done
}

// scope is the skipped items of one scope, with the log attributes of their changes.
type scope struct {
	attrs []any
	ids   IDs    // attrs as ids
	key   string // attrs, printed: changes with the same key make one log line
	items map[string]Skip
}

// changeKey groups the changes of a cycle for the log: a direction and a reason, under the same
// log attributes.
type changeKey struct {
	added  bool
	reason string
	attrs  string
}

type change struct {
	attrs   []any
	count   int
	example Skip // the first item in item order
	quiet   bool // every change of the group is quiet
}

// Skips returns the tracker of skipped items of source in pair; logger receives its log lines,
// reasons start at 0 in the metrics. A nil *Metrics gives unregistered metrics (tests).
func (m *Metrics) Skips(source string, pair Pair, logger *slog.Logger, reasons ...string) *Skips {
	if m == nil {
		m = NewMetrics(nil)
	}
	s := &Skips{
		source:  source,
		pair:    pair,
		logger:  LoggerOrDiscard(logger),
		current: m.skippedNow.MustCurryWith(m.labels(sourceKey{source, pair})),
		events:  m.skipped.MustCurryWith(m.labels(sourceKey{source, pair})),
		scopes:  map[string]*scope{},
		counts:  map[string]int{},
		newly:   map[string]int{},
		changes: map[changeKey]*change{},
	}
	for _, r := range reasons {
		s.current.WithLabelValues(r)
		s.events.WithLabelValues(r)
	}
	return s
}

// Set replaces the skipped items of scope with skips (by Item; the last of an item wins). attrs
// are the log attributes of the changes (the namespace and service, the cluster and task
// definition): changes with the same attributes and reason make one log line. A scope that is not
// Set in a cycle keeps its items (its discovery failed: its last targets are kept too).
func (s *Skips) Set(name string, skips []Skip, attrs ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.scopes[name]
	if old == nil && len(skips) == 0 {
		return
	}
	now := &scope{attrs: attrs, ids: attrIDs(attrs), key: fmt.Sprint(attrs...), items: make(map[string]Skip, len(skips))}
	for _, sk := range skips {
		now.items[sk.Item] = sk
	}
	var before map[string]Skip
	if old != nil {
		before = old.items
	}
	at := time.Now()
	for item, sk := range now.items {
		if prev, ok := before[item]; !ok || prev.Reason != sk.Reason {
			sk.since = at
			s.note(true, now, sk)
		} else {
			sk.since = prev.since
		}
		now.items[item] = sk
	}
	for item, prev := range before {
		if sk, ok := now.items[item]; !ok || prev.Reason != sk.Reason {
			s.note(false, now, prev)
		}
	}
	s.replace(name, now)
}

// Done ends a cycle: it forgets the scopes for which keep is false (a deleted service, a task
// that stopped), whose items are skipped no more, and logs the cycle's changes.
func (s *Skips) Done(ctx context.Context, keep func(scope string) bool) {
	s.mu.Lock()
	for name, sc := range s.scopes {
		if keep(name) {
			continue
		}
		for _, sk := range sc.items {
			s.note(false, sc, sk)
		}
		s.replace(name, nil)
	}
	changes := s.changes
	s.changes = map[changeKey]*change{}
	s.mu.Unlock()

	keys := slices.SortedFunc(maps.Keys(changes), func(a, b changeKey) int {
		if a.added != b.added {
			if a.added {
				return 1 // what went away first
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.attrs, b.attrs), cmp.Compare(a.reason, b.reason))
	})
	for _, k := range keys {
		c := changes[k]
		attrs := append(slices.Clone(c.attrs), "reason", k.reason, "count", c.count, "example", c.example.Item+": "+c.example.Detail)
		switch {
		case k.added && c.quiet:
			s.logger.Log(ctx, slog.LevelDebug, "Targets skipped", attrs...)
		case k.added:
			s.logger.Log(ctx, slog.LevelWarn, "Targets skipped", attrs...)
		case c.quiet:
			s.logger.Log(ctx, slog.LevelDebug, "Targets no longer skipped", attrs...)
		default:
			s.logger.Log(ctx, slog.LevelInfo, "Targets no longer skipped", attrs...)
		}
	}
}

// attrIDs returns log attributes (key, value, ...) as ids.
func attrIDs(attrs []any) IDs {
	ids := make(IDs, 0, len(attrs)/2)
	for i := 0; i+1 < len(attrs); i += 2 {
		ids = append(ids, ID{fmt.Sprint(attrs[i]), fmt.Sprint(attrs[i+1])})
	}
	return ids
}

// Current returns the items skipped now, sorted by reason and ids.
func (s *Skips) Current() []Skipped {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Skipped
	for _, sc := range s.scopes {
		for _, sk := range sc.items {
			out = append(out, Skipped{
				Source: s.source, Account: s.pair.Account, Region: s.pair.Region,
				Reason: sk.Reason, IDs: append(slices.Clip(sc.ids), sk.IDs...), Message: sk.Detail, Since: sk.since,
			})
		}
	}
	slices.SortFunc(out, compareSkipped)
	return out
}

// compareSkipped orders skipped items by source, pair, reason and ids.
func compareSkipped(a, b Skipped) int {
	return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Account, b.Account), cmp.Compare(a.Region, b.Region),
		cmp.Compare(a.Reason, b.Reason), slices.CompareFunc(a.IDs, b.IDs, func(x, y ID) int {
			return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.Value, y.Value))
		}))
}

// Counts returns the items skipped now for reason, and the times an item was newly skipped for it
// (the gauge and the counter).
func (s *Skips) Counts(reason string) (now, newly int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[reason], s.newly[reason]
}

// note records one change of sc for the log, and counts an item newly skipped.
func (s *Skips) note(added bool, sc *scope, sk Skip) {
	if added {
		s.events.WithLabelValues(sk.Reason).Inc()
		s.newly[sk.Reason]++
	}
	k := changeKey{added, sk.Reason, sc.key}
	c := s.changes[k]
	if c == nil {
		c = &change{attrs: sc.attrs, example: sk, quiet: true}
		s.changes[k] = c
	}
	c.count++
	c.quiet = c.quiet && sk.Quiet
	if sk.Item < c.example.Item {
		c.example = sk
	}
}

// replace sets the scope name (nil, or no items: forgets it) and the gauge.
func (s *Skips) replace(name string, sc *scope) {
	touched := map[string]bool{}
	if old := s.scopes[name]; old != nil {
		for _, sk := range old.items {
			s.counts[sk.Reason]--
			touched[sk.Reason] = true
		}
	}
	if sc == nil || len(sc.items) == 0 {
		delete(s.scopes, name)
	} else {
		s.scopes[name] = sc
		for _, sk := range sc.items {
			s.counts[sk.Reason]++
			touched[sk.Reason] = true
		}
	}
	for r := range touched {
		s.current.WithLabelValues(r).Set(float64(s.counts[r]))
	}
}
