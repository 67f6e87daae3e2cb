package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/cloudmap"
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

// TestUnappliedBatchRunsOneCycle: in event mode a batch with an event no source can apply (a task
// event while only Cloud Map is enabled) runs a cycle at once, not at the next tick; batches
// flushed while a cycle runs give one cycle after it, not one each; a batch that changed nothing
// runs none.
func TestUnappliedBatchRunsOneCycle(t *testing.T) {
	t.Parallel()
	src := &gatedSource{gate: make(chan struct{})}
	loop := refresh.New(refresh.Options{Interval: time.Hour, Sources: []refresh.Source{src}})
	a := &applier{loop: loop, cloudMap: new(cloudmap.Source), logger: slog.New(slog.DiscardHandler)}
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
	batch := func() {
		a.TaskChanged(ctx, ecstypes.Task{TaskArn: aws.String("arn:aws:ecs:us-east-1:123456789012:task/prod/1")})
		a.Flush(ctx)
	}

	cycles(1) // the first cycle, at start
	src.gate <- struct{}{}
	batch()
	cycles(2)
	for range 5 {
		batch() // while cycle 2 runs
	}
	src.gate <- struct{}{}
	cycles(3)
	src.gate <- struct{}{}
	a.Flush(ctx) // an empty batch
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, int32(3), src.n.Load(), "five batches during a cycle: one cycle after it; an empty batch: none")
}
