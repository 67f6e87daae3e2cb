package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/httpsd"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	reg := newRegistry()
	var ready atomic.Bool
	handler, err := routes(config.Default().Web, httpsd.New(), reg, ready.Load)
	require.NoError(t, err)
	srv := httptest.NewServer(handler)
	defer srv.Close()

	code, body := get(t, srv.URL+"/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "<title>ecs-sd</title>")
	for _, path := range []string{"/prometheus-targets", "/metrics", "/-/healthy", "/-/ready"} {
		require.Contains(t, body, `href="`+path+`"`, "the landing page links %s", path)
	}
	require.NotContains(t, body, "debug/pprof", "ecs-sd serves no profiles")

	code, _ = get(t, srv.URL+"/nothing-here")
	require.Equal(t, http.StatusNotFound, code)
	code, body = get(t, srv.URL+"/prometheus-targets")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "[]\n", body)
	code, body = get(t, srv.URL+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "ecs_sd_build_info")
	code, _ = get(t, srv.URL+"/-/healthy")
	require.Equal(t, http.StatusOK, code)
	code, _ = get(t, srv.URL+"/-/ready")
	require.Equal(t, http.StatusServiceUnavailable, code)
	ready.Store(true)
	code, _ = get(t, srv.URL+"/-/ready")
	require.Equal(t, http.StatusOK, code)
}

func TestRoutesWithoutHTTPSD(t *testing.T) {
	t.Parallel()
	handler, err := routes(config.Default().Web, nil, prometheus.NewRegistry(), func() bool { return true })
	require.NoError(t, err)
	srv := httptest.NewServer(handler)
	defer srv.Close()
	code, body := get(t, srv.URL+"/")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, "prometheus-targets")
	require.Contains(t, body, `href="/metrics"`)
	code, _ = get(t, srv.URL+"/prometheus-targets")
	require.Equal(t, http.StatusNotFound, code)
}

func TestTargetsAtTheRoot(t *testing.T) {
	t.Parallel()
	wc := config.Default().Web
	wc.TargetsPath = "/"
	handler, err := routes(wc, httpsd.New(), prometheus.NewRegistry(), func() bool { return true })
	require.NoError(t, err)
	srv := httptest.NewServer(handler)
	defer srv.Close()
	code, body := get(t, srv.URL+"/")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "[]\n", body, "the target list, not the landing page")
}
