package events

import (
	"context"
	"math/rand/v2"
	"time"
)

// Defaults of the back-off after a failed receive.
const (
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 30 * time.Second
)

// backoff is an exponential back-off with jitter: the n-th wait in a row is drawn from
// [d/2, d], d = initial·2ⁿ⁻¹ capped at max, so that many ecs-sd processes failing together do
// not retry together.
type backoff struct {
	initial, max time.Duration
	failures     int // failures in a row
}

// next counts a failure and returns how long to wait before the next attempt.
func (b *backoff) next() time.Duration {
	d := b.initial
	for i := 0; i < b.failures && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	b.failures++
	half := d / 2
	return half + rand.N(d-half+1)
}

// reset ends a run of failures and reports how many there were.
func (b *backoff) reset() int {
	n := b.failures
	b.failures = 0
	return n
}

// sleep waits d, or until ctx ends; it reports whether the whole wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
