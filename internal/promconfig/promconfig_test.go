package promconfig

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/require"
)

type fakeSSM struct {
	mu    sync.Mutex
	value *string
	typ   types.ParameterType
}

func (f *fakeSSM) set(v *string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value = v
}

func (f *fakeSSM) GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.value == nil {
		return nil, &types.ParameterNotFound{}
	}
	return &ssm.GetParameterOutput{Parameter: &types.Parameter{Value: f.value, Type: f.typ}}, nil
}

func (f *fakeSSM) setType(typ types.ParameterType) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.typ = typ
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Mode().Perm()
}

// TestSecureStringIsNotWorldReadable: the file of a SecureString parameter is 0640, of a String
// 0644; a file an earlier version wrote 0644 from a SecureString loses its world access although
// its content is the same.
func TestSecureStringIsNotWorldReadable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "prometheus.yaml")
	api := &fakeSSM{value: aws.String("password: s3cret\n"), typ: types.ParameterTypeSecureString}
	require.NoError(t, os.WriteFile(path, []byte("password: s3cret\n"), 0o644))
	require.NoError(t, os.Chmod(path, 0o644))
	s := New(api, Options{Parameter: "p", Path: path})
	ctx := context.Background()

	require.NoError(t, s.Run(ctx))
	require.Equal(t, os.FileMode(0o640), mode(t, path))

	api.set(aws.String("global: {}\n"))
	api.setType(types.ParameterTypeString)
	require.NoError(t, s.Run(ctx))
	require.Equal(t, os.FileMode(0o644), mode(t, path))

	api.set(aws.String("password: other\n"))
	api.setType(types.ParameterTypeSecureString)
	require.NoError(t, s.Run(ctx))
	require.Equal(t, os.FileMode(0o640), mode(t, path))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "password: other\n", string(data))
}

func TestNewRemovesTemporaryFilesOfInterruptedWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{".prometheus.yaml.tmp-123", ".ecs-services.json.tmp-9", "prometheus.yaml"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600))
	}
	New(&fakeSSM{}, Options{Parameter: "p", Path: filepath.Join(dir, "prometheus.yaml")})
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	require.ElementsMatch(t, []string{".ecs-services.json.tmp-9", "prometheus.yaml"}, left)
}

func TestSyncWritesAndReloads(t *testing.T) {
	t.Parallel()
	var reloads atomic.Int32
	var fail atomic.Bool
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, "/-/reload", r.URL.Path)
		if fail.Load() {
			http.Error(w, "bad config", http.StatusInternalServerError)
			return
		}
		reloads.Add(1)
	}))
	defer prom.Close()

	path := filepath.Join(t.TempDir(), "prometheus.yaml")
	api := &fakeSSM{}
	s := New(api, Options{Parameter: "p", Path: path, ReloadURL: prom.URL + "/-/reload"})
	ctx := context.Background()

	// Missing parameter: a warning, no file.
	require.NoError(t, s.Run(ctx))
	_, err := os.Stat(path)
	require.True(t, os.IsNotExist(err))

	api.set(aws.String("global: {}\n"))
	require.NoError(t, s.Run(ctx))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "global: {}\n", string(data))
	require.EqualValues(t, 1, reloads.Load())

	// Unchanged: no reload.
	require.NoError(t, s.Run(ctx))
	require.EqualValues(t, 1, reloads.Load())

	// A failed reload is retried next cycle.
	fail.Store(true)
	api.set(aws.String("global: {scrape_interval: 15s}\n"))
	require.ErrorContains(t, s.Run(ctx), "500")
	fail.Store(false)
	require.NoError(t, s.Run(ctx))
	require.EqualValues(t, 2, reloads.Load())

	// The parameter disappears: the good file stays.
	api.set(nil)
	require.NoError(t, s.Run(ctx))
	data, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "global: {scrape_interval: 15s}\n", string(data))
}
