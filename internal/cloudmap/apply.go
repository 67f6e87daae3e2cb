package cloudmap

import (
	"context"
	"slices"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Current implements refresh.Applier: the last good targets of the services of the namespaces
// the last discovery resolved, services refreshed since (RefreshService) included.
func (s *Source) Current() []*targets.Group {
	s.mu.Lock()
	namespaces := s.resolved
	s.mu.Unlock()
	groups, _ := s.held(namespaces)
	return groups
}

// RefreshService reads the instances of one Cloud Map service at once (one DiscoverInstances, or
// the ListInstances path the service takes in a discovery), when a RegisterInstance or
// DeregisterInstance event names it, and reports whether its targets changed (Current then tells
// them). A service the last discovery did not find in a discovered namespace is ignored: a new
// service is found by the next discovery. When the call fails the service keeps its last good
// targets, and the error is returned. It does not wait for a running discovery; when that
// discovery reads the same service, the one that ends last stands (both read it after the event).
func (s *Source) RefreshService(ctx context.Context, serviceID string) (changed bool, err error) {
	s.mu.Lock()
	st := s.services[serviceID]
	var ns namespace
	found := false
	if st != nil {
		for _, n := range s.resolved {
			if n.ID == st.namespaceID && slices.Contains(s.nsServices[n.ID], serviceID) {
				ns, found = n, true
			}
		}
	}
	var before []*targets.Group
	if found {
		before = st.groups
	}
	s.mu.Unlock()
	if !found {
		return false, nil
	}
	s.withSlot(ctx, func() { err = s.discoverService(ctx, ns, serviceID) })
	s.mu.Lock()
	defer s.mu.Unlock()
	return !slices.Equal(before, st.groups), err
}
