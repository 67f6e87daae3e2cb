package events

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestVersionsAreForgottenAfterTheirRetention: a stopped task's version is kept for the stopped
// retention, any other for the idle retention after its last event; until then an event no newer
// is refused, afterwards the memory is gone.
func TestVersionsAreForgottenAfterTheirRetention(t *testing.T) {
	t.Parallel()
	v := newVersions(time.Hour, 24*time.Hour)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

	require.True(t, v.apply("running", 2, false, t0))
	require.True(t, v.apply("stopped", 1, false, t0))
	require.True(t, v.apply("stopped", 5, true, t0.Add(time.Minute)))
	require.False(t, v.apply("stopped", 5, true, t0.Add(2*time.Minute)), "a duplicate")
	require.False(t, v.apply("stopped", 4, false, t0.Add(3*time.Minute)), "an older event")
	require.False(t, v.apply("running", 1, false, t0.Add(59*time.Minute)))
	require.Equal(t, 2, v.len())

	// 1 h after the STOPPED event: forgotten; the running task is kept.
	require.True(t, v.apply("other", 1, false, t0.Add(61*time.Minute+time.Second)))
	require.Equal(t, 2, v.len())
	require.True(t, v.apply("stopped", 4, false, t0.Add(62*time.Minute)), "no memory of the task any more")
	require.True(t, v.apply("stopped", 6, true, t0.Add(63*time.Minute)))

	// A day without events forgets any task.
	require.True(t, v.apply("running", 3, false, t0.Add(2*time.Hour)))
	require.False(t, v.apply("running", 3, false, t0.Add(25*time.Hour)))
	v.sweep(t0.Add(26*time.Hour + time.Second))
	require.Zero(t, v.len())
}

// TestVersionsSweepAtMostOncePerInterval: the expired entries are removed by a sweep that runs at
// most once a minute, not at every event.
func TestVersionsSweepAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	v := newVersions(time.Second, time.Second)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	v.sweep(t0)
	for i := range 100 {
		v.apply(taskARN(i), 1, true, t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	require.Equal(t, 100, v.len(), "no sweep within the minute")
	v.apply("x", 1, false, t0.Add(sweepInterval))
	require.Equal(t, 1, v.len())
}

// TestBackoffGrowsWithJitterUpToItsCap: each wait lies in the upper half of initial·2ⁿ, capped.
func TestBackoffGrowsWithJitterUpToItsCap(t *testing.T) {
	t.Parallel()
	b := backoff{initial: time.Second, max: 30 * time.Second}
	for range 50 {
		b.reset()
		for _, d := range []time.Duration{1, 2, 4, 8, 16, 30, 30, 30} {
			wait := b.next()
			require.GreaterOrEqual(t, wait, d*time.Second/2)
			require.LessOrEqual(t, wait, d*time.Second)
		}
	}
	require.Equal(t, 8, b.reset())
	require.Zero(t, b.reset())
}
