package cloudmap

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/servicediscovery/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

func ecsAttrs(ip string) map[string]string {
	return map[string]string{
		"AWS_INSTANCE_IPV4":          ip,
		"ECS_CLUSTER_NAME":           "ecs-prometheus-cluster",
		"ECS_SERVICE_NAME":           "WebAppService",
		"ECS_TASK_DEFINITION_FAMILY": "WebAppTask",
		"AVAILABILITY_ZONE":          "us-east-1a",
	}
}

func TestBuildTargets(t *testing.T) {
	t.Parallel()
	ns := namespace{ID: "ns-1", Name: "ecs-services", Type: "DNS_PRIVATE", HTTPName: "ecs-services"}
	withAttr := func(k, v string) map[string]string {
		a := ecsAttrs("10.0.0.1")
		if v == "" {
			delete(a, k)
		} else {
			a[k] = v
		}
		return a
	}
	cases := []struct {
		name      string
		tags      map[string]string
		attrs     map[string]string
		health    string
		unhealthy bool
		want      []string // address + path
		skips     []string
	}{
		{name: "tags", tags: map[string]string{"METRICS_PORT": "3000", "METRICS_PATH": "/m"}, attrs: ecsAttrs("10.0.0.1"), want: []string{"10.0.0.1:3000/m"}},
		{name: "port from attribute, default path", attrs: withAttr("AWS_INSTANCE_PORT", "8080"), want: []string{"10.0.0.1:8080/metrics"}},
		{name: "tag wins over attribute", tags: map[string]string{"METRICS_PORT": "9100"}, attrs: withAttr("AWS_INSTANCE_PORT", "8080"), want: []string{"10.0.0.1:9100/metrics"}},
		{name: "default port", attrs: ecsAttrs("10.0.0.1"), want: []string{"10.0.0.1:80/metrics"}},
		{name: "ipv6", tags: map[string]string{"METRICS_PORT": "3000"}, attrs: map[string]string{"AWS_INSTANCE_IPV6": "2001:db8::1"}, want: []string{"[2001:db8::1]:3000/metrics"}},
		{name: "ecs second target", tags: map[string]string{"METRICS_PORT": "3000", "ECS_METRICS_PORT": "51678", "ECS_METRICS_PATH": "/v1/metrics"}, attrs: ecsAttrs("10.0.0.1"),
			want: []string{"10.0.0.1:3000/metrics", "10.0.0.1:51678/v1/metrics"}},
		{name: "bad port tag", tags: map[string]string{"METRICS_PORT": "abc"}, attrs: ecsAttrs("10.0.0.1"), skips: []string{reasonBadPort}},
		{name: "port out of range", tags: map[string]string{"METRICS_PORT": "70000"}, attrs: ecsAttrs("10.0.0.1"), skips: []string{reasonBadPort}},
		{name: "bad port attribute", attrs: withAttr("AWS_INSTANCE_PORT", "x"), skips: []string{reasonBadPort}},
		{name: "bad path", tags: map[string]string{"METRICS_PATH": "metrics"}, attrs: ecsAttrs("10.0.0.1"), skips: []string{reasonBadPath}},
		{name: "bad ecs port keeps application target", tags: map[string]string{"ECS_METRICS_PORT": "no"}, attrs: ecsAttrs("10.0.0.1"), want: []string{"10.0.0.1:80/metrics"}, skips: []string{reasonBadPort}},
		{name: "no ip", attrs: withAttr("AWS_INSTANCE_IPV4", ""), skips: []string{reasonNoIP}},
		{name: "bad ip", attrs: withAttr("AWS_INSTANCE_IPV4", "10.0.0"), skips: []string{reasonBadIP}},
		{name: "unhealthy left out", attrs: ecsAttrs("10.0.0.1"), health: "UNHEALTHY", skips: []string{reasonUnhealthy}},
		{name: "unhealthy kept on request", attrs: ecsAttrs("10.0.0.1"), health: "UNHEALTHY", unhealthy: true, want: []string{"10.0.0.1:80/metrics"}},
		{name: "scrape settings", tags: map[string]string{"METRICS_SCHEME": "https", "METRICS_SCRAPE_INTERVAL": "1m", "METRICS_SCRAPE_TIMEOUT": "50s"}, attrs: ecsAttrs("10.0.0.1"), want: []string{"10.0.0.1:80/metrics"}},
		{name: "bad scheme", tags: map[string]string{"METRICS_SCHEME": "ftp"}, attrs: ecsAttrs("10.0.0.1"), skips: []string{targets.ReasonBadScheme}},
		{name: "bad scrape interval", tags: map[string]string{"METRICS_SCRAPE_INTERVAL": "often"}, attrs: ecsAttrs("10.0.0.1"), skips: []string{targets.ReasonBadScrapeInterval}},
		{name: "bad scrape timeout", tags: map[string]string{"METRICS_SCRAPE_TIMEOUT": "abc"}, attrs: ecsAttrs("10.0.0.1"), skips: []string{targets.ReasonBadScrapeTimeout}},
		{name: "scrape timeout longer than interval", tags: map[string]string{"METRICS_SCRAPE_INTERVAL": "10s", "METRICS_SCRAPE_TIMEOUT": "20s"}, attrs: ecsAttrs("10.0.0.1"), skips: []string{targets.ReasonBadScrapeTimeout}},
		{name: "bad scrape setting keeps the ecs target", tags: map[string]string{"METRICS_SCRAPE_INTERVAL": "0s", "ECS_METRICS_PORT": "51678"}, attrs: ecsAttrs("10.0.0.1"),
			want: []string{"10.0.0.1:51678/metrics"}, skips: []string{targets.ReasonBadScrapeInterval}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			svc := service{ID: "srv-1", Name: "webapp-svc", Tags: tc.tags}
			groups, skips, _ := newBuilder(ns, svc, tc.unhealthy).build(instance{ID: "task-1", Attributes: tc.attrs, Health: tc.health})
			var got []string
			for _, g := range groups {
				require.Len(t, g.Targets, 1)
				got = append(got, g.Targets[0]+string(g.Labels[targets.LabelMetricsPath]))
			}
			require.Equal(t, tc.want, got)
			var reasons []string
			for _, s := range skips {
				reasons = append(reasons, s.Reason)
				require.NotEmpty(t, s.Detail)
				// The instance's id, and the endpoint's when the skip is of one endpoint.
				require.Equal(t, refresh.ID{Name: "instance", Value: "task-1"}, s.IDs[0])
				if strings.Contains(s.Item, "/") {
					require.Equal(t, []refresh.ID{{Name: "instance", Value: "task-1"}, {Name: "endpoint", Value: s.Item[len("task-1/"):]}}, s.IDs)
				}
			}
			require.Equal(t, tc.skips, reasons)
		})
	}
}

func TestBuildTargetsLabels(t *testing.T) {
	t.Parallel()
	ns := namespace{ID: "ns-1", Name: "ecs-services", Type: "DNS_PRIVATE", HostedZoneID: "Z1"}
	attrs := ecsAttrs("10.0.0.1")
	attrs["custom-attr.x"] = "v"
	svc := service{ID: "srv-1", Name: "webapp-svc", Tags: map[string]string{"METRICS_PORT": "3000", "team:owner": "payments"}}
	groups, skips, _ := newBuilder(ns, svc, false).build(instance{ID: "task-1", Attributes: attrs, Health: "HEALTHY"})
	require.Empty(t, skips)
	require.Len(t, groups, 1)
	l := groups[0].Labels
	for k, v := range map[string]string{
		"cluster": "ecs-prometheus-cluster", "service": "WebAppService", "taskdefinition": "WebAppTask", "__metrics_path__": "/metrics",
		LabelNamespaceID: "ns-1", LabelNamespaceName: "ecs-services", LabelNamespaceType: "DNS_PRIVATE", LabelNamespaceHostedZone: "Z1",
		LabelServiceID: "srv-1", LabelServiceName: "webapp-svc", LabelInstanceID: "task-1", LabelHealthStatus: "HEALTHY",
		AttributeLabelPrefix + "custom_attr_x": "v", AttributeLabelPrefix + "AVAILABILITY_ZONE": "us-east-1a",
		ServiceTagLabelPrefix + "team_owner": "payments", ServiceTagLabelPrefix + "METRICS_PORT": "3000",
	} {
		require.Equal(t, model.LabelValue(v), l[model.LabelName(k)], k)
	}
	require.NotContains(t, l, model.LabelName("instance"), "instance must not be set: Prometheus derives it from the address")
	require.NoError(t, l.Validate())
}

type testEnv struct {
	api *fakeAPI
	src *Source
	reg *prometheus.Registry
	ns  []string
	now time.Time
}

func newTestEnv(t *testing.T, namespaces ...string) *testEnv {
	t.Helper()
	e := &testEnv{api: newFakeAPI(), reg: prometheus.NewRegistry(), ns: namespaces, now: time.Unix(1_700_000_000, 0)}
	e.src = New(e.api, Options{
		Namespaces:          func(context.Context) ([]string, error) { return e.ns, nil },
		TagsRefreshInterval: time.Minute,
		Registerer:          e.reg,
		now:                 func() time.Time { return e.now },
	})
	return e
}

func addresses(groups []*targets.Group) []string {
	targets.Sort(groups)
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		out = append(out, g.Address())
	}
	return out
}

func (e *testEnv) seed(nsID, nsName string, services, perService int) {
	e.api.addNamespace(nsID, nsName, types.NamespaceTypeDnsPrivate)
	for s := range services {
		id := fmt.Sprintf("%s-srv-%03d", nsID, s)
		e.api.addService(nsID, id, fmt.Sprintf("svc-%03d", s), map[string]string{"METRICS_PORT": "3000"})
		for i := range perService {
			e.api.addInstance(id, fmt.Sprintf("%s-task-%04d", id, i), ecsAttrs(fmt.Sprintf("10.%d.%d.%d", s/256, s%256, i%250+1)), types.HealthStatusHealthy)
		}
	}
}

func TestDiscoverPaginatesEverything(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, "ecs-services")
	e.api.ignoreServiceFilter = true
	// 130 namespaces: the one we want is on the second page.
	for i := range 129 {
		e.api.addNamespace(fmt.Sprintf("ns-other-%03d", i), fmt.Sprintf("other-%03d", i), types.NamespaceTypeHttp)
	}
	e.seed("ns-main", "ecs-services", 125, 2)
	// One service with 1 200 instances: more than DiscoverInstances returns, so it is paged.
	e.api.addService("ns-main", "big", "big-svc", map[string]string{"METRICS_PORT": "9100"})
	for i := range 1200 {
		e.api.addInstance("big", fmt.Sprintf("big-%04d", i), ecsAttrs(fmt.Sprintf("10.200.%d.%d", i/250, i%250+1)), types.HealthStatusHealthy)
	}

	groups, err := e.src.Discover(context.Background())
	require.NoError(t, err)
	require.Len(t, groups, 125*2+1200)
	require.Equal(t, 2, e.api.callCount("ListNamespaces"))
	require.Equal(t, 126, e.api.callCount("GetService"))
	require.Equal(t, 12, e.api.callCount("ListInstances"))
	require.Equal(t, 12, e.api.callCount("GetInstancesHealthStatus"))

	// Steady state: the namespace of every service is cached, tags are fresh.
	e.api.resetCalls()
	again, err := e.src.Discover(context.Background())
	require.NoError(t, err)
	require.Equal(t, addresses(groups), addresses(again))
	require.Zero(t, e.api.callCount("GetService"))
	require.Zero(t, e.api.callCount("ListTagsForResource"))
	require.Equal(t, 126, e.api.callCount("DiscoverInstances"))

	// Tags are read again after the refresh interval.
	e.now = e.now.Add(2 * time.Minute)
	e.api.resetCalls()
	_, err = e.src.Discover(context.Background())
	require.NoError(t, err)
	require.Equal(t, 126, e.api.callCount("ListTagsForResource"))
}

func TestDiscoverNamespacesByNameAndID(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, "ns-b", "shared", "nothing-here")
	e.seed("ns-a", "shared", 1, 1)
	e.seed("ns-b", "b", 1, 1)
	e.seed("ns-c", "shared", 1, 1) // same name, other VPC
	groups, err := e.src.Discover(context.Background())
	require.NoError(t, err)
	require.Len(t, groups, 3)
	ids := map[model.LabelValue]bool{}
	for _, g := range groups {
		ids[g.Labels[LabelNamespaceID]] = true
	}
	require.Equal(t, map[model.LabelValue]bool{"ns-a": true, "ns-b": true, "ns-c": true}, ids)
	require.Equal(t, 1.0, testutil.ToFloat64(e.src.unresolved.WithLabelValues("nothing-here")))
	// Shared HTTP names are ambiguous for DiscoverInstances: those services are listed instead.
	require.Equal(t, 2, e.api.callCount("ListInstances"))
}

func TestFaultsKeepLastGoodTargets(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, "one", "two")
	e.seed("ns-1", "one", 3, 2)
	e.seed("ns-2", "two", 2, 2)
	ctx := context.Background()
	first, err := e.src.Discover(ctx)
	require.NoError(t, err)
	require.Len(t, first, 10)
	want := addresses(first)

	// The error and the log line name the failed operation and what it was about.
	for _, tc := range []struct {
		fault, text string
		log         map[string]string
	}{
		{"DiscoverInstances/ns-1-srv-001", `namespace "one" (ns-1): service "svc-001" (ns-1-srv-001): DiscoverInstances: injected fault`,
			map[string]string{"operation": "DiscoverInstances", "namespace": "one", "service": "svc-001", "service_id": "ns-1-srv-001"}},
		{"ListTagsForResource/ns-2-srv-000", `namespace "two" (ns-2): service "svc-000" (ns-2-srv-000): ListTagsForResource: injected fault`,
			map[string]string{"operation": "ListTagsForResource", "namespace": "two", "service": "svc-000", "service_id": "ns-2-srv-000"}},
		{"ListServices/ns-2", `namespace "two" (ns-2): ListServices: injected fault`,
			map[string]string{"operation": "ListServices", "namespace": "two", "namespace_id": "ns-2"}},
		{"ListNamespaces", `call ListNamespaces: injected fault`,
			map[string]string{"operation": "ListNamespaces"}},
	} {
		var logs bytes.Buffer
		e.src.opts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		e.api.setFail(tc.fault, errInjected)
		e.now = e.now.Add(time.Hour) // make tags stale so they are read
		groups, err := e.src.Discover(ctx)
		require.ErrorIs(t, err, errInjected, tc.fault)
		require.EqualError(t, err, tc.text)
		var opErr *refresh.OpError
		require.ErrorAs(t, err, &opErr)
		require.Equal(t, tc.log["operation"], opErr.Op)
		var line map[string]any
		require.NoError(t, json.Unmarshal(logs.Bytes(), &line), logs.String())
		require.Equal(t, "Cloud Map call failed; keeping last-known targets", line["msg"])
		for k, v := range tc.log {
			require.Equal(t, v, line[k], "log attribute %s of %s", k, tc.fault)
		}
		require.Equal(t, want, addresses(groups), "fault %s must not lose targets", tc.fault)
		e.api.setFail(tc.fault, nil)
	}

	// A new instance in a healthy service shows up while another service fails.
	e.api.addInstance("ns-1-srv-000", "new-task", ecsAttrs("10.99.0.1"), types.HealthStatusHealthy)
	e.api.setFail("DiscoverInstances/ns-1-srv-002", errInjected)
	groups, err := e.src.Discover(ctx)
	require.ErrorIs(t, err, errInjected)
	require.Len(t, groups, 11)
	require.Contains(t, addresses(groups), "10.99.0.1:3000")
}

func TestNamespaceListFailure(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.seed("ns-1", "one", 1, 1)
	fail := true
	e.src.opts.Namespaces = func(context.Context) ([]string, error) {
		if fail {
			return nil, errInjected
		}
		return []string{"one"}, nil
	}
	groups, err := e.src.Discover(context.Background())
	require.ErrorIs(t, err, errInjected)
	require.Nil(t, groups, "no namespace list yet: nothing to vouch for")

	fail = false
	groups, err = e.src.Discover(context.Background())
	require.NoError(t, err)
	require.Len(t, groups, 1)

	fail = true
	groups, err = e.src.Discover(context.Background())
	require.ErrorIs(t, err, errInjected)
	require.Len(t, groups, 1, "the last namespace list is used")
}

func TestRemovedServiceAndNamespace(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, "one", "two")
	e.seed("ns-1", "one", 2, 1)
	e.seed("ns-2", "two", 1, 1)
	ctx := context.Background()
	groups, err := e.src.Discover(ctx)
	require.NoError(t, err)
	require.Len(t, groups, 3)

	// A service that is gone takes its targets with it.
	e.api.removeService("ns-1-srv-001")
	groups, err = e.src.Discover(ctx)
	require.NoError(t, err)
	require.Len(t, groups, 2)

	// A namespace removed from the list takes its targets with it.
	e.ns = []string{"one"}
	groups, err = e.src.Discover(ctx)
	require.NoError(t, err)
	require.Len(t, groups, 1)
}

// TestScrapeSettingsLabels: the METRICS_SCHEME, METRICS_SCRAPE_INTERVAL and METRICS_SCRAPE_TIMEOUT
// tags give the application target's __scheme__, __scrape_interval__ and __scrape_timeout__ (in
// canonical form), not the ECS-agent target's; an unusable one skips the application target with
// a detail naming the tag and its value.
func TestScrapeSettingsLabels(t *testing.T) {
	t.Parallel()
	ns := namespace{ID: "ns-1", Name: "ecs-services", Type: "HTTP"}
	svc := service{ID: "srv-1", Name: "webapp-svc", Tags: map[string]string{
		"METRICS_PORT": "3000", "METRICS_SCHEME": " HTTPS", "METRICS_SCRAPE_INTERVAL": "90s", "METRICS_SCRAPE_TIMEOUT": "1m", "ECS_METRICS_PORT": "51678",
	}}
	groups, skips, _ := newBuilder(ns, svc, false).build(instance{ID: "task-1", Attributes: ecsAttrs("10.0.0.1")})
	require.Empty(t, skips)
	require.Len(t, groups, 2)
	app, agent := groups[0].Labels, groups[1].Labels
	require.Equal(t, model.LabelValue("https"), app[targets.LabelScheme])
	require.Equal(t, model.LabelValue("1m30s"), app[targets.LabelScrapeInterval])
	require.Equal(t, model.LabelValue("1m"), app[targets.LabelScrapeTimeout])
	for _, name := range []model.LabelName{targets.LabelScheme, targets.LabelScrapeInterval, targets.LabelScrapeTimeout} {
		require.NotContains(t, agent, name)
	}
	for _, g := range groups {
		require.NoError(t, g.Check())
	}

	for tags, detail := range map[[2]string]string{
		{"METRICS_SCRAPE_TIMEOUT", "abc"}:  `service tag METRICS_SCRAPE_TIMEOUT="abc" is not a duration (such as 15s or 1m30s)`,
		{"METRICS_SCRAPE_INTERVAL", "1h1"}: `service tag METRICS_SCRAPE_INTERVAL="1h1" is not a duration (such as 15s or 1m30s)`,
		{"METRICS_SCHEME", "tcp"}:          `service tag METRICS_SCHEME="tcp" is neither http nor https`,
	} {
		svc := service{ID: "srv-1", Name: "webapp-svc", Tags: map[string]string{tags[0]: tags[1]}}
		groups, skips, _ := newBuilder(ns, svc, false).build(instance{ID: "task-1", Attributes: ecsAttrs("10.0.0.1")})
		require.Empty(t, groups)
		require.Len(t, skips, 1)
		require.Equal(t, "task-1/application", skips[0].Item)
		require.Equal(t, detail, skips[0].Detail)
	}
	svc.Tags = map[string]string{"METRICS_SCRAPE_INTERVAL": "15s", "METRICS_SCRAPE_TIMEOUT": "30s"}
	_, skips, _ = newBuilder(ns, svc, false).build(instance{ID: "task-1", Attributes: ecsAttrs("10.0.0.1")})
	require.Len(t, skips, 1)
	require.Equal(t, `service tag METRICS_SCRAPE_TIMEOUT="30s" is longer than service tag METRICS_SCRAPE_INTERVAL="15s"`, skips[0].Detail)
}

func TestBadDataSkipsOnlyItsTargets(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, "one")
	e.seed("ns-1", "one", 2, 2)
	e.api.addService("ns-1", "bad-port", "bad-port-svc", map[string]string{"METRICS_PORT": "abc"})
	e.api.addInstance("bad-port", "t1", ecsAttrs("10.1.1.1"), types.HealthStatusHealthy)
	e.api.addService("ns-1", "bad-timeout", "bad-timeout-svc", map[string]string{"METRICS_SCRAPE_TIMEOUT": "abc"})
	e.api.addInstance("bad-timeout", "t2", ecsAttrs("10.1.1.3"), types.HealthStatusHealthy)
	e.api.addInstance("bad-timeout", "t3", ecsAttrs("10.1.1.4"), types.HealthStatusHealthy)
	e.api.addInstance("ns-1-srv-000", "no-ip", map[string]string{"ECS_CLUSTER_NAME": "c"}, types.HealthStatusHealthy)
	e.api.addInstance("ns-1-srv-000", "sick", ecsAttrs("10.1.1.2"), types.HealthStatusUnhealthy)
	groups, err := e.src.Discover(context.Background())
	require.NoError(t, err)
	require.Len(t, groups, 4)
	for _, reason := range []string{reasonBadPort, reasonNoIP, reasonUnhealthy} {
		now, newly := e.src.skips.Counts(reason)
		require.Equal(t, [2]int{1, 1}, [2]int{now, newly}, reason)
	}
	now, newly := e.src.skips.Counts(targets.ReasonBadScrapeTimeout)
	require.Equal(t, [2]int{2, 2}, [2]int{now, newly}, "both instances of the badly tagged service")
}

// jsonLogs is a logger writing JSON lines, and a reader of the lines with a given message.
func jsonLogs() (*slog.Logger, func(msg string) []map[string]any) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return logger, func(msg string) []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
				out = append(out, m)
			}
		}
		return out
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestLabelNameCollisions: instance attributes and service tags whose keys differ only in
// characters that sanitising replaces give the label of the key that sorts first, at every cycle
// and in every process whatever Go's map order, and each collision is logged once.
func TestLabelNameCollisions(t *testing.T) {
	t.Parallel()
	attrs := ecsAttrs("10.0.0.1")
	for i, k := range []string{"a.b", "a-b", "a:b", "a/b", "a b", "a_b"} {
		attrs[k] = fmt.Sprint(i)
	}
	tags := map[string]string{"METRICS_PORT": "3000", "team.x": "dot", "team-x": "dash"}
	var first []byte
	for run := range 10 {
		logger, lines := jsonLogs()
		e := newTestEnv(t, "one")
		e.src.opts.Logger = logger
		e.api.addNamespace("ns-1", "one", types.NamespaceTypeHttp)
		e.api.addService("ns-1", "srv-1", "web", tags)
		e.api.addInstance("srv-1", "task-1", attrs, types.HealthStatusHealthy)
		for cycle := range 8 {
			groups, err := e.src.Discover(context.Background())
			require.NoError(t, err)
			require.Len(t, groups, 1)
			l := groups[0].Labels
			require.Equal(t, model.LabelValue("4"), l[AttributeLabelPrefix+"a_b"], `"a b" sorts first`)
			require.Equal(t, model.LabelValue("dash"), l[ServiceTagLabelPrefix+"team_x"], `"team-x" sorts first`)
			out, err := targets.Marshal(groups)
			require.NoError(t, err)
			if first == nil {
				first = out
			}
			require.Equal(t, string(first), string(out), "run %d, cycle %d", run, cycle)
		}
		var got []string
		for _, m := range lines("Keys give the same label name; the key that sorts first gives the label") {
			got = append(got, fmt.Sprint(m["label"], " ", m["kept"], " ", m["dropped"]))
		}
		require.ElementsMatch(t, []string{
			"__meta_cloudmap_attribute_a_b a b a-b", "__meta_cloudmap_attribute_a_b a b a.b", "__meta_cloudmap_attribute_a_b a b a/b",
			"__meta_cloudmap_attribute_a_b a b a:b", "__meta_cloudmap_attribute_a_b a b a_b",
			"__meta_cloudmap_service_tag_team_x team-x team.x",
		}, got, "each collision logged once in 8 cycles")
	}
}

// TestSkipsLoggedWhenTheyChange: a skipped instance is logged when it is first skipped, when its
// reason changes and when it is skipped no more, not at every cycle; the gauge holds the instances
// skipped now and the counter the times one was newly skipped.
func TestSkipsLoggedWhenTheyChange(t *testing.T) {
	t.Parallel()
	logger, lines := jsonLogs()
	e := newTestEnv(t, "one")
	e.src.opts.Logger = logger
	e.src.metrics = newMetrics(nil, refresh.Pair{}, nil, logger)
	e.api.addNamespace("ns-1", "one", types.NamespaceTypeHttp)
	e.api.addService("ns-1", "srv-1", "web", map[string]string{"METRICS_PORT": "3000"})
	e.api.addInstance("srv-1", "good", ecsAttrs("10.0.0.1"), types.HealthStatusHealthy)
	e.api.addInstance("srv-1", "no-ip-1", map[string]string{"ECS_CLUSTER_NAME": "c"}, types.HealthStatusHealthy)
	e.api.addInstance("srv-1", "no-ip-2", map[string]string{"ECS_CLUSTER_NAME": "c"}, types.HealthStatusHealthy)
	ctx := context.Background()
	counts := func(reason string) [2]int {
		now, newly := e.src.skips.Counts(reason)
		return [2]int{now, newly}
	}
	for range 16 {
		_, err := e.src.Discover(ctx)
		require.NoError(t, err)
	}
	skipped := lines("Targets skipped")
	require.Len(t, skipped, 1, "16 cycles, one line")
	require.Equal(t, map[string]any{"level": "WARN", "msg": "Targets skipped", "namespace": "one", "service": "web",
		"reason": "no_ip", "count": 2.0, "example": "no-ip-1: instance has neither AWS_INSTANCE_IPV4 nor AWS_INSTANCE_IPV6"},
		withoutTime(skipped[0]))
	require.Equal(t, [2]int{2, 2}, counts(reasonNoIP))

	// One gets an address, the other a bad one.
	e.api.mu.Lock()
	e.api.instances["srv-1"][1].Attributes = ecsAttrs("10.0.0.2")
	e.api.instances["srv-1"][2].Attributes = ecsAttrs("10.0.0")
	e.api.mu.Unlock()
	for range 4 {
		_, err := e.src.Discover(ctx)
		require.NoError(t, err)
	}
	require.Len(t, lines("Targets skipped"), 2)
	require.Equal(t, "bad_ip", lines("Targets skipped")[1]["reason"])
	gone := lines("Targets no longer skipped")
	require.Len(t, gone, 1)
	require.Equal(t, "no_ip", gone[0]["reason"])
	require.Equal(t, 2.0, gone[0]["count"], "one fixed, one skipped for another reason")
	require.Equal(t, [2]int{0, 2}, counts(reasonNoIP))
	require.Equal(t, [2]int{1, 1}, counts(reasonBadIP))

	// The service is deleted: its instance is skipped no more.
	e.api.removeService("srv-1")
	_, err := e.src.Discover(ctx)
	require.NoError(t, err)
	require.Len(t, lines("Targets no longer skipped"), 2)
	require.Equal(t, [2]int{0, 1}, counts(reasonBadIP))
}

func withoutTime(m map[string]any) map[string]any {
	delete(m, "time")
	return m
}
