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
// DeregisterInstance event names it, or an ECS task event names an ECS service that registers
// in it (ServicesOfECSService), and reports whether its targets changed (Current then tells
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

// ecsService is an ECS service as ECS names it in the attributes of the instances it registers
// (ECS_CLUSTER_NAME, ECS_SERVICE_NAME).
type ecsService struct{ cluster, service string }

// ServicesOfECSService returns the ids of the Cloud Map services in which the ECS service of
// cluster (its name, not its ARN) registers its tasks, as the instances of the discoveries and
// RefreshService reads have named them; none when no instance has named it. Event mode uses it
// to re-read, on an ECS task event, the services that the task's registration changes
// (RefreshService), without a discovery.
//
// A service keeps the ECS services its instances have named for as long as it is discovered,
// also when they have no instance left: an ECS service scaled to zero, or whose only task is
// replaced by one that starts after it stopped, registers its next task in the same service,
// and that task's event must find it. A service that is no longer discovered is forgotten.
func (s *Source) ServicesOfECSService(cluster, service string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.byECS[ecsService{cluster, service}])
}

// indexLocked adds the ECS services that the instances of service id name to the index of
// ServicesOfECSService, unless the service was forgotten meanwhile. s.mu is held.
func (s *Source) indexLocked(id string, st *serviceState, insts []instance) {
	if s.services[id] != st {
		return
	}
	for _, inst := range insts {
		key := ecsService{inst.Attributes[attrCluster], inst.Attributes[attrService]}
		if key.cluster == "" || key.service == "" || slices.Contains(st.ecsServices, key) {
			continue
		}
		st.ecsServices = append(st.ecsServices, key)
		ids := s.byECS[key]
		if i, found := slices.BinarySearch(ids, id); !found {
			s.byECS[key] = slices.Insert(ids, i, id)
		}
	}
}

// forgetLocked forgets a service that is no longer discovered, and its place in the index of
// ServicesOfECSService. s.mu is held.
func (s *Source) forgetLocked(id string) {
	if st := s.services[id]; st != nil {
		for _, key := range st.ecsServices {
			ids := slices.DeleteFunc(s.byECS[key], func(other string) bool { return other == id })
			if len(ids) == 0 {
				delete(s.byECS, key)
			} else {
				s.byECS[key] = ids
			}
		}
	}
	delete(s.services, id)
}
