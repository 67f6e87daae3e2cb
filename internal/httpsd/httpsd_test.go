package httpsd

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

func TestHandlerServesLastSnapshot(t *testing.T) {
	t.Parallel()
	h := New()
	srv := httptest.NewServer(h)
	defer srv.Close()

	code, ct, body := get(t, srv.URL)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "application/json", ct)
	require.Equal(t, "[]\n", body)

	groups := []*targets.Group{{Targets: []string{"10.0.0.1:3000"}, Labels: model.LabelSet{"service": "web"}}}
	snap, err := targets.NewSnapshot(groups)
	require.NoError(t, err)
	require.NoError(t, h.Update(context.Background(), snap, false))
	want, err := targets.Marshal(groups)
	require.NoError(t, err)
	_, _, body = get(t, srv.URL)
	require.Equal(t, string(want), body)

	resp, err := http.Post(srv.URL, "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}
