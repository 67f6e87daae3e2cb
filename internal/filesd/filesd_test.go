package filesd

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

func g(addr string) *targets.Group {
	return &targets.Group{Targets: []string{addr}, Labels: model.LabelSet{"__metrics_path__": "/metrics"}}
}

// snap is the snapshot of the targets at addrs.
func snap(t *testing.T, addrs ...string) targets.Snapshot {
	t.Helper()
	var groups []*targets.Group
	for _, a := range addrs {
		groups = append(groups, g(a))
	}
	s, err := targets.NewSnapshot(groups)
	require.NoError(t, err)
	return s
}

func read(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	groups, err := targets.Unmarshal(data)
	require.NoError(t, err)
	var out []string
	for _, g := range groups {
		out = append(out, g.Address())
	}
	return out
}

func TestNewWritesEmptyListWhenMissing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ecs-services.json")
	_, err := New(path, nil, nil)
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "[]\n", string(data))
}

func TestIncompleteDiscoveryNeverShrinksAnEarlierFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ecs-services.json")
	old, err := targets.Marshal([]*targets.Group{g("10.0.0.1:80"), g("10.0.0.2:80")})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, old, 0o644))

	reg := prometheus.NewRegistry()
	s, err := New(path, nil, reg)
	require.NoError(t, err)
	ctx := context.Background()

	require.NoError(t, s.Update(ctx, snap(t, "10.0.0.2:80", "10.0.0.3:80"), false))
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}, read(t, path))

	complete := snap(t, "10.0.0.3:80")
	require.NoError(t, s.Update(ctx, complete, true))
	require.Equal(t, []string{"10.0.0.3:80"}, read(t, path))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	want, err := complete.JSON()
	require.NoError(t, err)
	require.Equal(t, string(want), string(data), "the snapshot's list, as rendered")

	// After a complete discovery the earlier file no longer counts.
	require.NoError(t, s.Update(ctx, snap(t, "10.0.0.4:80"), false))
	require.Equal(t, []string{"10.0.0.4:80"}, read(t, path))

	require.NoError(t, s.Update(ctx, snap(t, "10.0.0.4:80"), true))
	require.Equal(t, 3.0, testutil.ToFloat64(s.writes.WithLabelValues("written")))
	require.Equal(t, 1.0, testutil.ToFloat64(s.writes.WithLabelValues("unchanged")))
}

func TestUnwritableDirectory(t *testing.T) {
	t.Parallel()
	_, err := New(filepath.Join(t.TempDir(), "no", "such", "dir", "f.json"), nil, nil)
	require.ErrorContains(t, err, "no/such/dir")
}

// TestBaselineReadOnlyWhenNeeded: a complete first discovery never reads the earlier file (an
// invalid one is then replaced without a word); an incomplete one reads it, once.
func TestBaselineReadOnlyWhenNeeded(t *testing.T) {
	t.Parallel()
	for _, complete := range []bool{true, false} {
		var logs bytes.Buffer
		path := filepath.Join(t.TempDir(), "ecs-services.json")
		require.NoError(t, os.WriteFile(path, []byte("not json"), 0o644))
		s, err := New(path, slog.New(slog.NewTextHandler(&logs, nil)), nil)
		require.NoError(t, err)
		require.NoError(t, s.Update(context.Background(), snap(t, "10.0.0.1:80"), complete))
		require.Equal(t, []string{"10.0.0.1:80"}, read(t, path))
		if complete {
			require.NotContains(t, logs.String(), "not valid")
		} else {
			require.Contains(t, logs.String(), "Existing file_sd file is not valid")
		}
		require.NoError(t, s.Update(context.Background(), snap(t, "10.0.0.2:80"), false))
		require.Equal(t, []string{"10.0.0.2:80"}, read(t, path), "the baseline is the earlier file, read once")
	}
}
