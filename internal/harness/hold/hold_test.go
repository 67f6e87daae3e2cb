package hold

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHold(t *testing.T) {
	t.Parallel()
	c := New()
	require.NoError(t, c.Wait(context.Background(), "free"), "a call not held passes at once")

	release := c.Hold("k")
	done := make(chan error, 1)
	go func() { done <- c.Wait(context.Background(), "k") }()
	require.Equal(t, "k", c.Next(t))
	c.None(t, 50*time.Millisecond)
	release()
	release() // releasing twice is harmless
	require.ErrorIs(t, <-done, ErrReleased)
	require.NoError(t, c.Wait(context.Background(), "k"), "released: calls pass again")

	c.Hold("k")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Wait(ctx, "k"), context.DeadlineExceeded)
}
