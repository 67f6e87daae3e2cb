package ecs

import (
	"fmt"
	"testing"
)

// BenchmarkDiscover measures a steady-state refresh over 1 000 and 10 000 tasks (10 per service)
// with the in-memory fake, so that the time is ecs-sd's own (label building included), and
// reports the AWS calls of the first and of every later refresh.
func BenchmarkDiscover(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			e := newTestEnv(b, nil)
			e.seed("prod", n)
			if got := len(e.discover(b)); got != n {
				b.Fatalf("first refresh: %d targets", got)
			}
			first := sumCalls(e.aws.callCounts())
			e.aws.resetCalls()
			b.ResetTimer()
			for b.Loop() {
				e.discover(b)
			}
			b.StopTimer()
			steady := sumCalls(e.aws.callCounts())
			b.ReportMetric(float64(first), "calls-first-refresh")
			b.ReportMetric(float64(steady)/float64(b.N), "calls/refresh")
		})
	}
}

// sumCalls returns the total of calls counted per operation.
func sumCalls(calls map[string]int) int {
	total := 0
	for _, n := range calls {
		total += n
	}
	return total
}
