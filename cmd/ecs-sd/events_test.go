package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// gatedSource counts its discoveries; each one ends when it takes a token from gate.
type gatedSource struct {
	n    atomic.Int32
	gate chan struct{}
}

func (s *gatedSource) Name() string { return "gated" }

func (s *gatedSource) Discover(ctx context.Context) ([]*targets.Group, error) {
	s.n.Add(1)
	select {
	case <-s.gate:
	case <-ctx.Done():
	}
	return nil, nil
}

// TestResyncRunsOneCycleAfterABatch: in event mode a batch's Flush runs a cycle at once, not at
// the next tick; Flushes made while a cycle runs give one cycle after it, not one each.
func TestResyncRunsOneCycleAfterABatch(t *testing.T) {
	t.Parallel()
	src := &gatedSource{gate: make(chan struct{})}
	loop := refresh.New(refresh.Options{Interval: time.Hour, Sources: []refresh.Source{src}})
	now := resync{loop}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = loop.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	cycles := func(n int32) {
		t.Helper()
		require.Eventually(t, func() bool { return src.n.Load() == n }, 5*time.Second, time.Millisecond)
	}

	cycles(1) // the first cycle, at start
	src.gate <- struct{}{}
	now.Flush(ctx)
	cycles(2)
	for range 5 {
		now.Flush(ctx) // while cycle 2 runs
	}
	src.gate <- struct{}{}
	cycles(3)
	src.gate <- struct{}{}
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, int32(3), src.n.Load(), "five Flushes during a cycle: one cycle after it")
}
