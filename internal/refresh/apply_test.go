package refresh

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// applyingSource discovers one address; applied addresses join it in Current only, as changes
// applied while a discovery that began before them runs. Like a real source, it hands out the
// same groups while they do not change.
type applyingSource struct {
	mu      sync.Mutex
	current []*targets.Group
}

func (s *applyingSource) Name() string { return "applying" }

func (s *applyingSource) Discover(context.Context) ([]*targets.Group, error) {
	return []*targets.Group{group("10.0.0.1:80")}, nil
}

func (s *applyingSource) Current() []*targets.Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		s.current = []*targets.Group{group("10.0.0.1:80")}
	}
	return s.current
}

func (s *applyingSource) apply(addr string) {
	cur := s.Current()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = slices.Concat(cur, []*targets.Group{group(addr)})
}

func TestPublishAppliedChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := &applyingSource{}
	sink := &recordingSink{}
	loop := New(Options{Interval: time.Hour, Sources: []Source{src}, Sinks: []Sink{sink}})
	require.NoError(t, loop.RunOnce(ctx))
	require.Equal(t, []string{"10.0.0.1:80"}, addrs(sink.last()))

	// A change is published without a discovery; an unchanged source publishes nothing.
	src.apply("10.0.0.2:80")
	require.Empty(t, loop.Publish(ctx, src))
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80"}, addrs(sink.last()))
	n := len(sink.updates)
	require.Empty(t, loop.Publish(ctx, src))
	require.Len(t, sink.updates, n)

	// A discovery whose result lacks the change (it began before it) does not lose it: the loop
	// stores what the source holds.
	require.NoError(t, loop.RunOnce(ctx))
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80"}, addrs(sink.last()))
}
