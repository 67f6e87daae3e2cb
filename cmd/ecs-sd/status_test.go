package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// fakeView is a statusView with fixed answers.
type fakeView struct {
	ready   bool
	pending []string
	status  refresh.Status
	groups  []*targets.Group
}

func (v *fakeView) Ready() bool       { return v.ready }
func (v *fakeView) Pending() []string { return v.pending }
func (v *fakeView) Targets() ([]*targets.Group, error) {
	return v.groups, nil
}

func (v *fakeView) Status(maxSkipped int) refresh.Status {
	st := v.status
	if st.Sources == nil {
		st.Sources = []refresh.SourceStatus{}
	}
	if st.Skipped == nil {
		st.Skipped = []refresh.Skipped{}
	}
	if len(st.Skipped) > maxSkipped {
		st.SkippedOmitted, st.Skipped = len(st.Skipped)-maxSkipped, st.Skipped[:maxSkipped]
	}
	return st
}

func group(addr string, labels model.LabelSet) *targets.Group {
	return &targets.Group{Targets: []string{addr}, Labels: labels}
}

// sampleView holds a source of each health, a skipped item, a change and targets, one of them
// with a tag value that is HTML.
func sampleView() *fakeView {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &fakeView{ready: true, status: refresh.Status{
		Sources: []refresh.SourceStatus{
			{Name: "cloudmap", Health: refresh.HealthUp, LastSuccess: &at, LastDuration: 0.25, Targets: 2, AWSCalls: 7},
			{Name: "ecs", Account: "111111111111", Region: "eu-west-1", Health: refresh.HealthFailing, LastError: "list tasks: AccessDenied", AWSCalls: 3},
		},
		Skipped: []refresh.Skipped{{
			Source: "cloudmap", Reason: "bad_port", Since: at,
			IDs:     refresh.IDs{{Name: "namespace", Value: "ns"}, {Name: "service", Value: "web"}, {Name: "instance", Value: "i-1"}},
			Message: `service tag METRICS_PORT="abc" is not a port number (1-65535)`,
		}},
		Changes: []refresh.Change{{Time: at, Change: "added", Target: "http://10.0.0.1:8080/metrics", Source: "cloudmap"}},
	}, groups: []*targets.Group{
		group("10.0.0.1:8080", model.LabelSet{"cluster": "prod", "__meta_ecs_sd_source": ",cloudmap,"}),
		group("10.0.0.2:9090", model.LabelSet{"cluster": "staging", "__meta_cloudmap_service_tag_team": "<script>alert(1)</script>"}),
	}}
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestStatusAPI(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(routes(config.Default().Web, nil, newRegistry(), sampleView()))
	defer srv.Close()
	code, body := get(t, srv, "/api/v1/status")
	require.Equal(t, http.StatusOK, code)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	sources := got["sources"].([]any)
	require.Len(t, sources, 2)
	require.Equal(t, map[string]any{
		"name": "cloudmap", "health": "up", "last_success": "2026-01-02T03:04:05Z", "last_error": "",
		"last_duration_seconds": 0.25, "targets": 2.0, "aws_calls": 7.0,
	}, sources[0])
	require.Equal(t, "111111111111", sources[1].(map[string]any)["account"])
	require.Nil(t, sources[1].(map[string]any)["last_success"])
	require.Equal(t, []any{map[string]any{
		"source": "cloudmap", "reason": "bad_port", "since": "2026-01-02T03:04:05Z",
		"ids":     map[string]any{"namespace": "ns", "service": "web", "instance": "i-1"},
		"message": `service tag METRICS_PORT="abc" is not a port number (1-65535)`,
	}}, got["skipped"])
	require.Equal(t, 0.0, got["skipped_omitted"])
	require.Equal(t, []any{map[string]any{
		"time": "2026-01-02T03:04:05Z", "change": "added", "target": "http://10.0.0.1:8080/metrics", "source": "cloudmap",
	}}, got["changes"])
	// The ids keep their order: the scope's first.
	require.Less(t, strings.Index(body, `"namespace"`), strings.Index(body, `"instance"`))

	resp, err := http.Post(srv.URL+"/api/v1/status", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestStatusAPICapsSkipped(t *testing.T) {
	t.Parallel()
	view := &fakeView{}
	for i := range maxStatusSkipped + 5 {
		view.status.Skipped = append(view.status.Skipped, refresh.Skipped{Source: "ecs", Reason: "no_ip", IDs: refresh.IDs{{Name: "task", Value: fmt.Sprint(i)}}})
	}
	srv := httptest.NewServer(routes(config.Default().Web, nil, newRegistry(), view))
	defer srv.Close()
	_, body := get(t, srv, "/api/v1/status")
	var got refresh.Status
	require.NoError(t, json.Unmarshal([]byte(body), &struct {
		Skipped        *[]json.RawMessage `json:"skipped"`
		SkippedOmitted *int               `json:"skipped_omitted"`
	}{new([]json.RawMessage), &got.SkippedOmitted}))
	require.Equal(t, 5, got.SkippedOmitted)
	require.Equal(t, maxStatusSkipped, strings.Count(body, `"reason": "no_ip"`))
}

func TestStatusPage(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(routes(config.Default().Web, http.NotFoundHandler(), newRegistry(), sampleView()))
	defer srv.Close()

	code, body := get(t, srv, "/")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		"<title>ecs-sd status</title>", ">cloudmap<", ">ecs<", `class="badge up"`, `class="badge failing"`,
		"list tasks: AccessDenied", "http://10.0.0.1:8080/metrics", "http://10.0.0.2:9090/metrics",
		"2 targets.", "bad_port", "service tag METRICS_PORT=&#34;abc&#34; is not a port number (1-65535)",
		"namespace=ns", "instance=i-1", ">added<",
		`href="/prometheus-targets"`, `href="/metrics"`, `href="/api/v1/status"`, `href="/-/ready"`,
	} {
		require.Contains(t, body, want)
	}
	// AWS tags are shown, never run: html/template escapes them.
	require.NotContains(t, body, "<script>")
	require.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	require.NotContains(t, body, "<script", "the page has no script")

	_, body = get(t, srv, "/?q="+url.QueryEscape("cluster=staging"))
	require.Contains(t, body, "http://10.0.0.2:9090/metrics")
	require.NotContains(t, body, `http://10.0.0.1:8080/metrics</td><td><span class="label">`)
	require.Contains(t, body, "1 of 2 targets match")
	require.Contains(t, body, `value="cluster=staging"`)

	_, body = get(t, srv, "/?q="+url.QueryEscape(`"><script>x</script>`))
	require.NotContains(t, body, "<script>")
	require.Contains(t, body, "0 of 2 targets match")

	code, _ = get(t, srv, "/nothing-here")
	require.Equal(t, http.StatusNotFound, code)
}

func TestStatusPageCapsRows(t *testing.T) {
	t.Parallel()
	view := &fakeView{}
	for i := range maxPageTargets + 3 {
		view.groups = append(view.groups, group(fmt.Sprintf("10.0.%d.%d:80", i/250, i%250), model.LabelSet{"job": "x"}))
	}
	srv := httptest.NewServer(routes(config.Default().Web, nil, newRegistry(), view))
	defer srv.Close()
	_, body := get(t, srv, "/")
	require.Contains(t, body, fmt.Sprintf("%d targets; the first %d are shown.", maxPageTargets+3, maxPageTargets))
	require.Equal(t, maxPageTargets, strings.Count(body, `<td class="mono">http://10.0.`))
}

func TestMatches(t *testing.T) {
	t.Parallel()
	tg := pageTarget{Endpoint: "http://10.0.0.1:80/metrics", Labels: labelPairs(model.LabelSet{"cluster": "Prod", "service": "web"})}
	for q, want := range map[string]bool{
		"": true, "10.0.0.1": true, "cluster=prod": true, `cluster="prod"`: true, "web": true,
		"cluster=web": false, "10.0.0.2": false,
	} {
		require.Equal(t, want, matches(tg, strings.ToLower(q)), q)
	}
}

func TestCheckFormat(t *testing.T) {
	t.Parallel()
	require.NoError(t, checkFormat("file", false))
	require.NoError(t, checkFormat("table", true))
	require.EqualError(t, checkFormat("table", false), "--output.format=table prints one discovery: it needs --once")
	require.EqualError(t, checkFormat("json", true), `--output.format="json" is neither file nor table`)
}

func TestWriteTables(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	require.NoError(t, writeTables(&buf, []*targets.Group{
		group("10.0.0.1:8080", model.LabelSet{"cluster": "prod", "service": "web", "__meta_ecs_sd_source": ",cloudmap,", "__meta_cloudmap_instance_id": "abc"}),
		group("10.0.0.22:9100", model.LabelSet{"__metrics_path__": "/m", "__meta_ecs_sd_source": ",ecs,", "cluster": "c\tx",
			"__meta_ecs_task_arn": "arn:aws:ecs:us-east-1:123456789012:task/c/0123"}),
	}, []refresh.Skipped{{
		Source: "ecs", Account: "111111111111", Region: "eu-west-1", Reason: "no_ip",
		IDs:     refresh.IDs{{Name: "cluster", Value: "c"}, {Name: "container", Value: "my app"}},
		Message: "the task runs on no EC2 container instance",
	}}))
	require.Equal(t, `TARGETS (2)
ADDRESS         PATH      SOURCE    CLUSTER  SERVICE  TASK
10.0.0.1:8080   /metrics  cloudmap  prod     web      abc
10.0.0.22:9100  /m        ecs       c x      -        0123

SKIPPED (1)
SOURCE                         REASON  ITEM                          WHAT TO CHANGE
ecs in 111111111111/eu-west-1  no_ip   cluster=c container="my app"  the task runs on no EC2 container instance
`, buf.String())
}
