package cloudmap

import (
	"context"
	"slices"
	"strings"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// serviceTargets returns the targets of the instances of a service, in the order of their ids,
// and reports the instances it skipped and the label names that collided. A target equal to one of
// last (the service's last targets) is that very group: an unchanged service keeps one copy of its
// labels, and the loop finds the list unchanged without rendering it again.
func (s *Source) serviceTargets(ctx context.Context, ns namespace, svc service, insts []instance, last []*targets.Group) []*targets.Group {
	slices.SortStableFunc(insts, func(a, b instance) int { return strings.Compare(a.ID, b.ID) })
	b := newBuilder(ns, svc, s.opts.IncludeUnhealthy)
	pair := s.place.Pair()
	b.lb.Set(b.base, targets.LabelAccountID, pair.Account)
	b.lb.Set(b.base, targets.LabelRegion, pair.Region)
	var (
		groups []*targets.Group
		skips  []refresh.Skip
		def    defaults
	)
	for _, inst := range insts {
		g, sk, d := b.build(inst)
		groups = append(groups, g...)
		skips = append(skips, sk...)
		def = d
	}
	s.skips.Set(svc.ID, skips, "namespace", ns.Name, "service", svc.Name)
	for _, c := range b.collisions {
		if s.collisions.New(svc.ID + "\x00" + string(c.Name) + "\x00" + c.Kept + "\x00" + c.Dropped) {
			s.opts.Logger.Warn("Keys give the same label name; the key that sorts first gives the label",
				"namespace", ns.Name, "service", svc.Name, "label", c.Name, "kept", c.Kept, "dropped", c.Dropped)
		}
	}
	if len(insts) > 0 && (def.Port != "" || def.Path) {
		s.opts.Logger.Debug("Service targets use defaults", "namespace", ns.Name, "service", svc.Name,
			"port_from", portFrom(def), "path_defaulted", def.Path)
	}
	return targets.Reuse(groups, last)
}

// endCycle ends a discovery: the skipped items of services that are gone are skipped no more, and
// the label-name collisions of the cycle are what the next one compares with.
func (s *Source) endCycle(ctx context.Context) {
	s.skips.Done(ctx, func(serviceID string) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, ok := s.services[serviceID]
		return ok
	})
	s.collisions.Next()
}
