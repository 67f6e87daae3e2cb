package refresh

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// pairedSource is a scriptedSource of one (account, region) pair.
type pairedSource struct {
	*scriptedSource
	place *Place
}

func (p pairedSource) Pair() Pair { return p.place.Pair() }

func (p pairedSource) Discover(ctx context.Context) ([]*targets.Group, error) {
	if _, err := p.place.Resolve(ctx); err != nil {
		return nil, err
	}
	return p.scriptedSource.Discover(ctx)
}

// addresses returns the addresses of groups, in their order.
func addresses(groups []*targets.Group) []string {
	out := []string{}
	for _, g := range groups {
		out = append(out, g.Address())
	}
	return out
}

// TestSourcesOfOneNameInSeveralPairs: the sources of one name in several pairs are told apart:
// each pair's targets are kept when it fails, the list merges them all, metrics are labelled by
// account and region, and Pending names the pairs that have not succeeded.
func TestSourcesOfOneNameInSeveralPairs(t *testing.T) {
	t.Parallel()
	east := pairedSource{&scriptedSource{name: "cloudmap", steps: []step{
		{groups: []*targets.Group{group("10.0.0.1:80")}},
		{err: errors.New("region unreachable")},
	}}, NewPlace(Pair{"111111111111", "us-east-1"}, nil)}
	west := pairedSource{&scriptedSource{name: "cloudmap", steps: []step{
		{err: errors.New("access denied")},
		{groups: []*targets.Group{group("10.0.0.2:80")}},
	}}, NewPlace(Pair{"111111111111", "eu-west-1"}, nil)}
	sink := &recordingSink{}
	reg := prometheus.NewRegistry()
	l := New(Options{Sources: []Source{east, west}, Sinks: []Sink{sink}, Metrics: NewPairMetrics(reg)})

	require.Error(t, l.RunOnce(t.Context()))
	require.Equal(t, []string{"10.0.0.1:80"}, addresses(sink.last()))
	require.Equal(t, []string{"cloudmap in 111111111111/eu-west-1"}, l.Pending())
	require.False(t, l.Ready())
	require.Equal(t, 1.0, testutil.ToFloat64(l.metrics.failures.WithLabelValues("cloudmap", "111111111111", "eu-west-1")))
	require.Equal(t, 0.0, testutil.ToFloat64(l.metrics.failures.WithLabelValues("cloudmap", "111111111111", "us-east-1")))

	require.Error(t, l.RunOnce(t.Context()), "us-east-1 fails now")
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80"}, addresses(sink.last()), "us-east-1's targets kept, eu-west-1's new")
	require.Empty(t, l.Pending())
	require.True(t, l.Ready())
	require.Equal(t, 1.0, testutil.ToFloat64(l.metrics.targets.WithLabelValues("cloudmap", "111111111111", "us-east-1")))
	for _, g := range sink.last() {
		require.Equal(t, ",cloudmap,", string(g.Labels[targets.LabelSource]))
	}
}

// TestPlaceReadsTheAccountOnce: a place without an account reads it until it can, then keeps it;
// its pair has no account until then.
func TestPlaceReadsTheAccountOnce(t *testing.T) {
	t.Parallel()
	calls := 0
	p := NewPlace(Pair{Region: "us-east-1"}, func(context.Context) (string, error) {
		calls++
		if calls == 1 {
			return "", errors.New("sts unreachable")
		}
		return "123456789012", nil
	})
	_, err := p.Resolve(t.Context())
	require.ErrorContains(t, err, "read the account id: sts unreachable")
	require.Equal(t, Pair{Region: "us-east-1"}, p.Pair())
	got, err := p.Resolve(t.Context())
	require.NoError(t, err)
	require.Equal(t, Pair{"123456789012", "us-east-1"}, got)
	_, err = p.Resolve(t.Context())
	require.NoError(t, err)
	require.Equal(t, 2, calls, "read until it could, then never again")
	require.Equal(t, []any{"account", "123456789012", "region", "us-east-1"}, p.Pair().Attrs())
}
