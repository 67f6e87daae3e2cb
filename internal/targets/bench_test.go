package targets

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/common/model"
)

// BenchmarkMarshal10000 renders 10 000 target groups, given in random order, as the file_sd JSON
// (sorting included), as every cycle that found a change does.
func BenchmarkMarshal10000(b *testing.B) {
	groups := benchGroups(10000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(groups); err != nil {
			b.Fatal(err)
		}
	}
}

// benchGroups returns n target groups of one target each, in random order.
func benchGroups(n int) []*Group {
	groups := make([]*Group, n)
	for i := range groups {
		groups[i] = &Group{
			Targets: []string{fmt.Sprintf("10.0.%d.%d:3000", i/250, i%250)},
			Labels: model.LabelSet{
				LabelCluster: "prod", LabelService: model.LabelValue(fmt.Sprintf("svc-%03d", i/100)),
				LabelTaskDefinition: "webapp", LabelMetricsPath: "/metrics",
				"__meta_cloudmap_instance_id": model.LabelValue(fmt.Sprintf("task-%05d", i)),
			},
		}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(groups), func(i, j int) { groups[i], groups[j] = groups[j], groups[i] })
	return groups
}

// BenchmarkSnapshot10000 is a cycle's output work for 10 000 target groups of two sources, given
// in random order: merge, sort once, render once (every output then writes the same bytes).
func BenchmarkSnapshot10000(b *testing.B) {
	groups := benchGroups(10000)
	bySource := map[string][]*Group{"cloudmap": groups[:5000], "ecs": groups[5000:]}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewSnapshot(Merge(bySource)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWithLacking10000 is the output work of a list that is not complete after a restart:
// 5 000 discovered groups and the 5 000 groups of the earlier list (of 10 000, held compressed)
// that they lack, decoded one at a time while the list is rendered.
func BenchmarkWithLacking10000(b *testing.B) {
	groups := benchGroups(10000)
	earlier, err := NewSnapshot(groups)
	if err != nil {
		b.Fatal(err)
	}
	earlier.Groups = nil
	found := groups[:5000]
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := WithLacking(found, earlier); err != nil {
			b.Fatal(err)
		}
	}
}
