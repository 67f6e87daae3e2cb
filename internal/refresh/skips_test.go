package refresh

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// logLines parses JSON log lines, dropping the time.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		delete(m, "time")
		out = append(out, m)
	}
	buf.Reset()
	return out
}

func TestSkipsLogChangesOnly(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	s := m.Skips("cloudmap", Pair{}, logger, "bad_port", "no_ip", "unhealthy")
	ctx := context.Background()
	keepAll := func(string) bool { return true }
	gauge := func(reason string) float64 { return testutil.ToFloat64(s.current.WithLabelValues(reason)) }
	events := func(reason string) float64 { return testutil.ToFloat64(s.events.WithLabelValues(reason)) }

	bad := []Skip{
		{Item: "i-2", Reason: "bad_port", Detail: "tag METRICS_PORT=\"x\""},
		{Item: "i-1", Reason: "bad_port", Detail: "tag METRICS_PORT=\"x\""},
		{Item: "i-3", Reason: "unhealthy", Detail: "UNHEALTHY", Quiet: true},
	}
	s.Set("svc-a", bad, "service", "a")
	s.Set("svc-b", nil, "service", "b")
	s.Done(ctx, keepAll)
	require.Equal(t, []map[string]any{
		{"level": "WARN", "msg": "Targets skipped", "service": "a", "reason": "bad_port", "count": 2.0, "example": "i-1: tag METRICS_PORT=\"x\""},
		{"level": "DEBUG", "msg": "Targets skipped", "service": "a", "reason": "unhealthy", "count": 1.0, "example": "i-3: UNHEALTHY"},
	}, logLines(t, &buf))
	require.Equal(t, 2.0, gauge("bad_port"))
	require.Equal(t, 2.0, events("bad_port"))

	// The same skips for ten cycles: no log line, no event.
	for range 10 {
		s.Set("svc-a", bad, "service", "a")
		s.Done(ctx, keepAll)
	}
	require.Empty(t, buf.String())
	require.Equal(t, 2.0, gauge("bad_port"))
	require.Equal(t, 2.0, events("bad_port"))
	require.Equal(t, 1.0, events("unhealthy"))

	// i-1 fixed, i-2 changes reason, svc-a's discovery fails (not Set) the cycle after: kept.
	s.Set("svc-a", []Skip{{Item: "i-2", Reason: "no_ip", Detail: "no IP"}, bad[2]}, "service", "a")
	s.Done(ctx, keepAll)
	require.Equal(t, []map[string]any{
		{"level": "INFO", "msg": "Targets no longer skipped", "service": "a", "reason": "bad_port", "count": 2.0, "example": "i-1: tag METRICS_PORT=\"x\""},
		{"level": "WARN", "msg": "Targets skipped", "service": "a", "reason": "no_ip", "count": 1.0, "example": "i-2: no IP"},
	}, logLines(t, &buf))
	require.Equal(t, 0.0, gauge("bad_port"))
	require.Equal(t, 1.0, gauge("no_ip"))
	require.Equal(t, 1.0, events("no_ip"))
	s.Done(ctx, keepAll)
	require.Empty(t, buf.String())
	require.Equal(t, 1.0, gauge("no_ip"))

	// The service is gone: its items are skipped no more.
	s.Done(ctx, func(scope string) bool { return scope != "svc-a" })
	require.Equal(t, []map[string]any{
		{"level": "INFO", "msg": "Targets no longer skipped", "service": "a", "reason": "no_ip", "count": 1.0, "example": "i-2: no IP"},
		{"level": "DEBUG", "msg": "Targets no longer skipped", "service": "a", "reason": "unhealthy", "count": 1.0, "example": "i-3: UNHEALTHY"},
	}, logLines(t, &buf))
	require.Equal(t, 0.0, gauge("no_ip"))
	require.Equal(t, 0.0, gauge("unhealthy"))
	require.Empty(t, s.scopes)

	out, err := testutil.GatherAndCount(reg, "ecs_sd_targets_skipped", "ecs_sd_targets_skipped_total")
	require.NoError(t, err)
	require.Equal(t, 6, out, "three reasons, two metrics")
}

func TestOnce(t *testing.T) {
	t.Parallel()
	var o Once
	require.True(t, o.New("a"))
	require.False(t, o.New("a"), "met earlier in the cycle")
	o.Next()
	require.False(t, o.New("a"), "met in the previous cycle")
	require.True(t, o.New("b"))
	o.Next()
	o.Next() // a cycle without a and b
	require.True(t, o.New("a"), "went away and came back")
}
