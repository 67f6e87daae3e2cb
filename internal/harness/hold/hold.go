// Package hold makes chosen calls of a fake AWS API hang, as calls to an endpoint that never
// answers do, until the test releases them (the call then fails as one ended by its timeout) or
// the call's context ends. Unit tests use it to catch a discovery at a known point: which calls
// run while another one hangs.
package hold

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// ErrReleased is the error of a held call once it is released.
var ErrReleased = errors.New("no answer within the call timeout")

// Calls are the held calls of one fake, by key (the fake chooses its keys, e.g.
// "DiscoverInstances/srv-1"). The zero value is not usable: use New.
type Calls struct {
	mu      sync.Mutex
	gates   map[string]chan struct{}
	started chan string
}

// New returns an empty set of held calls.
func New() *Calls {
	return &Calls{gates: map[string]chan struct{}{}, started: make(chan string, 100)}
}

// Hold makes the calls about key wait until release is called.
func (c *Calls) Hold(key string) (release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gate := make(chan struct{})
	c.gates[key] = gate
	return sync.OnceFunc(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.gates, key)
		close(gate)
	})
}

// Wait returns at once (nil) when key is not held. Otherwise it waits: ErrReleased once the hold
// is released, ctx.Err() when ctx ends first.
func (c *Calls) Wait(ctx context.Context, key string) error {
	c.mu.Lock()
	gate := c.gates[key]
	c.mu.Unlock()
	if gate == nil {
		return nil
	}
	c.started <- key
	select {
	case <-gate:
		return ErrReleased
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Next returns the key of the next call that started waiting, and fails tb when none does within
// 5 s.
func (c *Calls) Next(tb testing.TB) string {
	tb.Helper()
	select {
	case key := <-c.started:
		return key
	case <-time.After(5 * time.Second):
		tb.Fatal("no held call started within 5 s")
		return ""
	}
}

// None fails tb when a held call starts within d.
func (c *Calls) None(tb testing.TB, d time.Duration) {
	tb.Helper()
	select {
	case key := <-c.started:
		tb.Fatalf("held call %s started", key)
	case <-time.After(d):
	}
}
