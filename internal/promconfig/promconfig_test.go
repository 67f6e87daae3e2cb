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
	return &ssm.GetParameterOutput{Parameter: &types.Parameter{Value: f.value}}, nil
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
