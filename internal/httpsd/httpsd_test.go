package httpsd

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// get fetches url with the Accept-Encoding given ("" sends none) and returns the response with
// its body as sent.
func get(t *testing.T, url, acceptEncoding string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req) // no gzip added, nothing uncompressed
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, int64(len(body)), resp.ContentLength)
	return resp, body
}

func TestHandlerServesLastSnapshot(t *testing.T) {
	t.Parallel()
	h := New()
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, body := get(t, srv.URL, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, "[]\n", string(body))

	groups := []*targets.Group{{Targets: []string{"10.0.0.1:3000"}, Labels: model.LabelSet{"service": "web"}}}
	snap, err := targets.NewSnapshot(groups)
	require.NoError(t, err)
	require.NoError(t, h.Update(context.Background(), snap, false))
	want, err := targets.Marshal(groups)
	require.NoError(t, err)
	_, body = get(t, srv.URL, "")
	require.Equal(t, string(want), string(body))

	// A client that accepts gzip gets the snapshot's bytes as they are.
	for _, ae := range []string{"gzip", "deflate, gzip;q=0.5", "*", "x-gzip"} {
		resp, body = get(t, srv.URL, ae)
		require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"), ae)
		require.Equal(t, snap.Gzip, body, ae)
		zr, err := gzip.NewReader(bytes.NewReader(body))
		require.NoError(t, err)
		plain, err := io.ReadAll(zr)
		require.NoError(t, err)
		require.Equal(t, string(want), string(plain))
	}
	for _, ae := range []string{"identity", "gzip;q=0", "br", "*;q=0", "gzip;q=0, *"} {
		resp, body = get(t, srv.URL, ae)
		require.Empty(t, resp.Header.Get("Content-Encoding"), ae)
		require.Equal(t, string(want), string(body), ae)
	}

	// Go's client asks for gzip by itself and uncompresses it.
	plain, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer plain.Body.Close()
	got, err := io.ReadAll(plain.Body)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))

	resp, err = http.Post(srv.URL, "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}
