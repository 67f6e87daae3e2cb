package cloudmap

import (
	"context"
	"testing"
)

// BenchmarkDiscover10000Instances measures one steady-state cycle over 10 000 instances in 100
// services (the fake API answers in memory, so the time is ecs-sd's own) and reports the AWS
// calls a cycle makes. Results are recorded in docs/benchmarks.md.
func BenchmarkDiscover10000Instances(b *testing.B) {
	e := &testEnv{api: newFakeAPI(), ns: []string{"ecs-services"}}
	e.src = New(e.api, Options{
		Namespaces:          func(context.Context) ([]string, error) { return e.ns, nil },
		TagsRefreshInterval: 1 << 62,
	})
	e.seed("ns-main", "ecs-services", 100, 100)
	ctx := context.Background()
	groups, err := e.src.Discover(ctx)
	if err != nil || len(groups) != 10_000 {
		b.Fatalf("first cycle: %d targets, %v", len(groups), err)
	}
	first := totalCalls(e.api)
	e.api.resetCalls()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.src.Discover(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(first), "calls-first-cycle")
	b.ReportMetric(float64(totalCalls(e.api))/float64(b.N), "calls/cycle")
}

func totalCalls(f *fakeAPI) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}
