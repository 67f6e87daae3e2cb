package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/httpsd"
)

func TestRoutes(t *testing.T) {
	t.Parallel()
	type answer struct {
		code     int
		contains []string
		lacks    []string
	}
	landing := []string{"<title>ecs-sd status</title>", `href="/metrics"`, `href="/-/healthy"`, `href="/-/ready"`, `href="/api/v1/status"`}
	for _, tc := range []struct {
		name        string
		targetsPath string
		httpSD      bool
		ready       bool
		want        map[string]answer
	}{
		{name: "default", targetsPath: "/prometheus-targets", httpSD: true, want: map[string]answer{
			"/":                   {200, append(landing, `href="/prometheus-targets"`), []string{"debug/pprof"}},
			"/prometheus-targets": {200, []string{"[]\n"}, nil},
			"/metrics":            {200, []string{"ecs_sd_build_info"}, nil},
			"/-/healthy":          {200, []string{"healthy"}, nil},
			"/-/ready":            {503, []string{"not ready", "Waiting for:\ncloudmap"}, nil},
			"/api/v1/status":      {200, []string{`"sources": [`, `"skipped": [`}, nil},
			"/nothing-here":       {404, nil, nil},
		}},
		{name: "ready", targetsPath: "/prometheus-targets", httpSD: true, ready: true, want: map[string]answer{
			"/-/ready": {200, []string{"ecs-sd is ready."}, nil},
		}},
		{name: "no http_sd", targetsPath: "/prometheus-targets", want: map[string]answer{
			"/":                   {200, landing, []string{"prometheus-targets"}},
			"/prometheus-targets": {404, nil, nil},
		}},
		{name: "targets at the root", targetsPath: "/", httpSD: true, want: map[string]answer{
			"/": {200, []string{"[]\n"}, []string{"<title>"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wc := config.Default().Web
			wc.TargetsPath = tc.targetsPath
			var targets http.Handler
			if tc.httpSD {
				targets = httpsd.New(nil)
			}
			view := &fakeView{ready: tc.ready}
			if !tc.ready {
				view.pending = []string{"cloudmap"}
			}
			handler := routes(wc, targets, newRegistry(), view)
			srv := httptest.NewServer(handler)
			defer srv.Close()
			for path, want := range tc.want {
				resp, err := http.Get(srv.URL + path)
				require.NoError(t, err)
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NoError(t, err)
				require.Equal(t, want.code, resp.StatusCode, path)
				for _, s := range want.contains {
					require.Contains(t, string(body), s, path)
				}
				for _, s := range want.lacks {
					require.NotContains(t, string(body), s, path)
				}
			}
		})
	}
}
