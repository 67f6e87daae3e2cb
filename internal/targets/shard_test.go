package targets

import (
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// TestHashMod checks HashMod against sums computed apart from Go (Python's hashlib): the MD5 sum
// of the value, its last 8 bytes as a big-endian integer, modulo n, as Prometheus's relabel
// action hashmod computes it (model/relabel/relabel.go).
func TestHashMod(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value string
		last8 uint64 // the sum's last 8 bytes, big-endian
	}{
		{"10.0.1.5:3000", 4279683819996463649},       // md5 564de947da7cbdec 3b647dc271e04221
		{"10.0.1.6:3000", 11681451360332326309},      // md5 96dde00d7ccfb27b a21cda1f099ca5a5
		{"10.0.2.7:9100", 5691608287661983520},       // md5 46ba7dbd7ce715c4 4efca7950ac30720
		{"[2001:db8::1]:8080", 14285688839074432439}, // md5 72bad8912b6fb5f0 c640f64f70cb45b7
		{"", 16825458760271544958},                   // md5 d41d8cd98f00b204 e9800998ecf8427e
	} {
		require.Equal(t, tc.last8, HashMod(tc.value, 1<<63+(1<<63-1)), "%q modulo the largest uint64", tc.value)
		for _, n := range []uint64{1, 2, 3, 7, 10, 1000} {
			require.Equal(t, tc.last8%n, HashMod(tc.value, n), "%q modulo %d", tc.value, n)
		}
	}
	// The same, spelt out for n = 3 and 10.
	require.Equal(t, []uint64{2, 9}, []uint64{HashMod("10.0.1.5:3000", 3), HashMod("10.0.1.5:3000", 10)})
	require.Equal(t, []uint64{1, 9}, []uint64{HashMod("10.0.1.6:3000", 3), HashMod("10.0.1.6:3000", 10)})
	require.Equal(t, []uint64{2, 0}, []uint64{HashMod("10.0.2.7:9100", 3), HashMod("10.0.2.7:9100", 10)})
}

// shardGroups is n one-target groups and, every seventh, a group of three targets.
func shardGroups(n int) []*Group {
	var groups []*Group
	for i := range n {
		g := &Group{Targets: []string{fmt.Sprintf("10.1.%d.%d:8080", i/200, i%200)}, Labels: model.LabelSet{"service": model.LabelValue(fmt.Sprint("s", i%5))}}
		if i%7 == 0 {
			g.Targets = append(g.Targets, fmt.Sprintf("10.2.%d.%d:9100", i/200, i%200), fmt.Sprintf("10.3.%d.%d:9100", i/200, i%200))
		}
		groups = append(groups, g)
	}
	return groups
}

// TestShardsPartition: for each n, every target of the list is in exactly one shard, the one
// HashMod gives, with the labels of its group; the shards together are the list.
func TestShardsPartition(t *testing.T) {
	t.Parallel()
	groups := shardGroups(300)
	type target struct {
		addr   string
		labels string
	}
	var all []target
	for _, g := range groups {
		for _, a := range g.Targets {
			all = append(all, target{a, g.Labels.String()})
		}
	}
	for _, n := range []uint64{1, 2, 3, 10, 64} {
		var union []target
		split := 0
		for i := range n {
			shard := Shard(groups, i, n)
			for _, g := range shard {
				require.NotEmpty(t, g.Targets, "no empty group")
				for _, a := range g.Targets {
					require.Equal(t, i, HashMod(a, n), "%s in shard %d of %d", a, i, n)
					union = append(union, target{a, g.Labels.String()})
				}
				if !slices.ContainsFunc(groups, func(o *Group) bool { return o == g }) {
					split++
				}
			}
		}
		require.Len(t, union, len(all), "n=%d: each target once", n)
		require.ElementsMatch(t, all, union, "n=%d", n)
		if n == 1 {
			require.Equal(t, groups, Shard(groups, 0, 1), "one shard is the list, its groups as they are")
		}
		if n >= 3 {
			require.Positive(t, split, "n=%d: some three-target group is split", n)
		}
	}
	require.Empty(t, Shard(groups, 5, 3), "no target is in shard 5 of 3")
}

// TestShardSplitsAGroup: a group whose targets fall in several shards is in each, with only its
// targets of that shard, in their order, and its labels; the group given is not modified.
func TestShardSplitsAGroup(t *testing.T) {
	t.Parallel()
	// Shards of 3: 10.0.1.5:3000 -> 2, 10.0.1.6:3000 -> 1, 10.0.2.7:9100 -> 2 (TestHashMod).
	labels := model.LabelSet{"job": "x"}
	g := &Group{Targets: []string{"10.0.1.5:3000", "10.0.1.6:3000", "10.0.2.7:9100"}, Labels: labels}
	one := &Group{Targets: []string{"10.0.1.6:3000"}, Labels: model.LabelSet{"job": "y"}}
	groups := []*Group{g, nil, one, {Targets: []string{}, Labels: labels}}

	require.Empty(t, Shard(groups, 0, 3))
	s1 := Shard(groups, 1, 3)
	require.Len(t, s1, 2)
	require.Equal(t, []string{"10.0.1.6:3000"}, s1[0].Targets)
	require.Equal(t, labels, s1[0].Labels)
	require.Same(t, one, s1[1], "a group wholly in the shard as it is")
	s2 := Shard(groups, 2, 3)
	require.Len(t, s2, 1)
	require.Equal(t, []string{"10.0.1.5:3000", "10.0.2.7:9100"}, s2[0].Targets)
	require.Equal(t, labels, s2[0].Labels)
	require.Equal(t, []string{"10.0.1.5:3000", "10.0.1.6:3000", "10.0.2.7:9100"}, g.Targets, "not modified")
}

// TestSnapshotList: a snapshot's groups, or when it holds none, those of its compressed list.
func TestSnapshotList(t *testing.T) {
	t.Parallel()
	snap, err := NewSnapshot(shardGroups(50))
	require.NoError(t, err)
	got, err := snap.List()
	require.NoError(t, err)
	require.Equal(t, snap.Groups, got)
	decoded, err := Snapshot{Gzip: snap.Gzip, Size: snap.Size}.List()
	require.NoError(t, err)
	require.Len(t, decoded, len(snap.Groups))
	for i := range decoded {
		require.True(t, decoded[i].Equal(snap.Groups[i]), "group %d", i)
	}
	_, err = Snapshot{Gzip: []byte("not gzip")}.List()
	require.ErrorContains(t, err, "read compressed target list")
}
