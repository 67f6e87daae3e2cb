package filesd

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

func TestEarlier(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "ecs-services.json")
	groups, err := Earlier(path, nil)
	require.NoError(t, err)
	require.Nil(t, groups, "no file")

	old, err := targets.Marshal([]*targets.Group{g("10.0.0.1:80"), g("10.0.0.2:80")})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, old, 0o644))
	groups, err = Earlier(path, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80"}, []string{groups[0].Address(), groups[1].Address()})

	for _, bad := range []string{"{", `[{"targets": ["10.0.0.1:80"]}, null]`, `{"targets": []}`} {
		require.NoError(t, os.WriteFile(path, []byte(bad), 0o644))
		groups, err = Earlier(path, nil)
		require.NoError(t, err, "an invalid file is replaced, not fatal")
		require.Nil(t, groups, bad)
	}

	require.NoError(t, os.Remove(path))
	require.NoError(t, os.Mkdir(path, 0o755))
	_, err = Earlier(path, nil)
	require.ErrorContains(t, err, path, "a file that cannot be read is named")
}

func TestUpdateWritesTheSnapshot(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ecs-services.json")
	reg := prometheus.NewRegistry()
	s, err := New(path, nil, reg)
	require.NoError(t, err)
	ctx := context.Background()

	first := snap(t, "10.0.0.2:80", "10.0.0.1:80")
	require.NoError(t, s.Update(ctx, first))
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80"}, read(t, path))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	want, err := first.JSON()
	require.NoError(t, err)
	require.Equal(t, string(want), string(data), "the snapshot's list, as rendered")
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm(), "Prometheus reads it, whatever its user")

	require.NoError(t, s.Update(ctx, snap(t, "10.0.0.3:80")))
	require.Equal(t, []string{"10.0.0.3:80"}, read(t, path))
	require.NoError(t, s.Update(ctx, snap(t, "10.0.0.3:80")))
	require.Equal(t, 2.0, testutil.ToFloat64(s.writes.WithLabelValues("written")))
	require.Equal(t, 1.0, testutil.ToFloat64(s.writes.WithLabelValues("unchanged")))
}

func TestNewRemovesTemporaryFilesOfInterruptedWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "ecs-services.json")
	for _, name := range []string{".ecs-services.json.tmp-4242", ".ecs-services.json.tmp-17", ".prometheus.yaml.tmp-5", "notes.txt"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o600))
	}
	var logs bytes.Buffer
	_, err := New(path, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	require.NoError(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	require.ElementsMatch(t, []string{".prometheus.yaml.tmp-5", "notes.txt"}, left, "only its own file's temporary files")
	require.Contains(t, logs.String(), `msg="Removed a temporary file of an interrupted write" file=`+filepath.Join(dir, ".ecs-services.json.tmp-4242"))
	require.Equal(t, 2, strings.Count(logs.String(), "Removed a temporary file"))
}

func TestUnwritableDirectory(t *testing.T) {
	t.Parallel()
	_, err := New(filepath.Join(t.TempDir(), "no", "such", "dir", "f.json"), nil, nil)
	require.ErrorContains(t, err, "no/such/dir")
}
