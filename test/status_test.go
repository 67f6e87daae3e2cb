//go:build integration

package test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// status is /api/v1/status as the tests read it.
type status struct {
	Sources []struct {
		Name        string     `json:"name"`
		Account     string     `json:"account"`
		Region      string     `json:"region"`
		Health      string     `json:"health"`
		LastSuccess *time.Time `json:"last_success"`
		LastError   string     `json:"last_error"`
		Targets     int        `json:"targets"`
		AWSCalls    int        `json:"aws_calls"`
	} `json:"sources"`
	Skipped []struct {
		Source  string            `json:"source"`
		Reason  string            `json:"reason"`
		IDs     map[string]string `json:"ids"`
		Message string            `json:"message"`
	} `json:"skipped"`
	SkippedOmitted int            `json:"skipped_omitted"`
	Changes        []statusChange `json:"changes"`
}

type statusChange struct {
	Time   time.Time `json:"time"`
	Change string    `json:"change"`
	Target string    `json:"target"`
	Source string    `json:"source"`
}

func (d *daemon) status(t *testing.T) status {
	t.Helper()
	code, body, err := d.get("/api/v1/status")
	require.NoError(t, err)
	require.Equal(t, 200, code, body)
	var st status
	require.NoError(t, json.Unmarshal([]byte(body), &st), body)
	return st
}

// hasChange reports whether st holds the change of target.
func (st status) hasChange(change, target string) bool {
	return slices.ContainsFunc(st.Changes, func(c statusChange) bool {
		return c.Change == change && c.Target == target && c.Source == "cloudmap"
	})
}

// statusFixtures registers, in a fresh moto, the namespace apps with the service web (port 3000,
// a tag whose value is HTML) holding a task with an address and one without, and the service
// bad, whose port tag is no number, holding one task.
func statusFixtures(t *testing.T) *testenv.Moto {
	t.Helper()
	m := testenv.StartMoto(t)
	ns := m.CreateHTTPNamespace(t, "apps")
	web, _ := m.CreateService(t, ns, "web", map[string]string{"METRICS_PORT": "3000", "TEAM": "<script>alert(1)</script>"})
	bad, _ := m.CreateService(t, ns, "bad", map[string]string{"METRICS_PORT": "abc"})
	m.RegisterTasks(t, web, []testenv.Task{{ID: "w1", IPv4: "10.0.0.1", Cluster: "prod", Service: "web"}, {ID: "no-ip", Cluster: "prod"}})
	m.RegisterTask(t, bad, testenv.Task{ID: "b1", IPv4: "10.0.1.1"})
	return m
}

// TestStatusAPI runs the daemon over a bad port tag and an instance without an address, and
// reads /api/v1/status: the source is up, with its targets and AWS calls; both items are in
// skipped with the ids that find them and what to change; a registration and a deregistration
// are in the changes.
func TestStatusAPI(t *testing.T) {
	t.Parallel()
	m := statusFixtures(t)
	d := startDaemon(t, m.Env(), "--cloudmap.namespace", "apps", "--no-prometheus.config-sync", "--refresh.interval=300ms")
	waitTargets(t, d, "10.0.0.1:3000")
	d.waitReady(t)

	st := d.status(t)
	require.Len(t, st.Sources, 1)
	src := st.Sources[0]
	require.Equal(t, "cloudmap", src.Name)
	require.Equal(t, "123456789012", src.Account, "moto's account, read by the first discovery")
	require.Equal(t, "us-east-1", src.Region)
	require.Equal(t, "up", src.Health)
	require.Empty(t, src.LastError)
	require.NotNil(t, src.LastSuccess)
	require.Equal(t, 1, src.Targets)
	// ListServices, and per service DiscoverInstances (GetService and the tags are cached, the
	// namespace too): at least 3 calls a cycle.
	require.GreaterOrEqual(t, src.AWSCalls, 3)

	require.Equal(t, 0, st.SkippedOmitted)
	require.Len(t, st.Skipped, 2, "%+v", st.Skipped)
	byReason := map[string]int{}
	for i, s := range st.Skipped {
		byReason[s.Reason] = i
	}
	badPort := st.Skipped[byReason["bad_port"]]
	require.Equal(t, "cloudmap", badPort.Source)
	require.Equal(t, map[string]string{"namespace": "apps", "service": "bad", "instance": "b1", "endpoint": "application"}, badPort.IDs)
	require.Equal(t, `service tag METRICS_PORT="abc" is not a port number (1-65535)`, badPort.Message)
	noIP := st.Skipped[byReason["no_ip"]]
	require.Equal(t, map[string]string{"namespace": "apps", "service": "web", "instance": "no-ip"}, noIP.IDs)
	require.Equal(t, "instance has neither AWS_INSTANCE_IPV4 nor AWS_INSTANCE_IPV6", noIP.Message)
	require.True(t, st.hasChange("added", "http://10.0.0.1:3000/metrics"), "%+v", st.Changes)

	webID := serviceID(t, m, "web")
	m.RegisterTask(t, webID, testenv.Task{ID: "w2", IPv4: "10.0.0.2", Cluster: "prod"})
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		st = d.status(t)
		return st.hasChange("added", "http://10.0.0.2:3000/metrics"), fmt.Sprintf("changes: %+v", st.Changes)
	})
	m.DeregisterTask(t, webID, "w1")
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		st = d.status(t)
		return st.hasChange("removed", "http://10.0.0.1:3000/metrics"), fmt.Sprintf("changes: %+v", st.Changes)
	})
	require.Equal(t, "removed", st.Changes[0].Change, "newest first")
	require.Equal(t, 1, st.Sources[0].Targets)
}

// serviceID returns the id of the Cloud Map service name.
func serviceID(t *testing.T, m *testenv.Moto, name string) string {
	t.Helper()
	out, err := m.CloudMapClient(t).ListServices(t.Context(), nil)
	require.NoError(t, err)
	for _, s := range out.Services {
		if s.Name != nil && *s.Name == name {
			return *s.Id
		}
	}
	t.Fatalf("no Cloud Map service %s", name)
	return ""
}

// TestStatusPageInBrowser loads the status page of a running daemon in headless Chromium and
// checks what it shows: the source and its health, the targets with their labels (the HTML in a
// tag shown as text, never run), the skipped items with what to change, the changes, the links,
// and the filter ?q=. STATUS_SCREENSHOT=1 saves docs/status-page.png.
func TestStatusPageInBrowser(t *testing.T) {
	t.Parallel()
	m := statusFixtures(t)
	webID := serviceID(t, m, "web")
	m.RegisterTask(t, webID, testenv.Task{ID: "w2", IPv4: "10.0.0.2", Cluster: "staging"})
	d := startDaemon(t, m.Env(), "--cloudmap.namespace", "apps", "--no-prometheus.config-sync", "--refresh.interval=300ms")
	waitTargets(t, d, "10.0.0.1:3000", "10.0.0.2:3000")
	d.waitReady(t)

	dom := testenv.BrowserDOM(t, d.URL+"/")
	for _, want := range []string{
		"<title>ecs-sd status</title>",
		`<td>cloudmap</td>`, `<span class="badge up">up</span>`,
		`<td class="mono">http://10.0.0.1:3000/metrics</td><td><span class="label">`,
		`<td class="mono">http://10.0.0.2:3000/metrics</td><td><span class="label">`,
		"2 targets.",
		`<code>bad_port</code>`, `service tag METRICS_PORT="abc" is not a port number (1-65535)`,
		`<span class="label">service=bad</span>`, `<span class="label">instance=b1</span>`,
		`<code>no_ip</code>`, "instance has neither AWS_INSTANCE_IPV4 nor AWS_INSTANCE_IPV6",
		`<td class="added">added</td>`,
		`href="/prometheus-targets"`, `href="/metrics"`, `href="/api/v1/status"`, `href="/-/ready"`,
		`__meta_cloudmap_service_tag_TEAM="&lt;script&gt;alert(1)&lt;/script&gt;"`,
	} {
		require.Contains(t, dom, want, "the page as Chromium shows it:\n%s", dom)
	}
	require.NotContains(t, dom, "<script", "no script runs on the page: the tag's HTML is text")

	filtered := testenv.BrowserDOM(t, d.URL+"/?q="+url.QueryEscape("cluster=staging"))
	require.Contains(t, filtered, "1 of 2 targets match")
	require.Contains(t, filtered, `<td class="mono">http://10.0.0.2:3000/metrics</td><td><span class="label">`)
	require.NotContains(t, filtered, `<td class="mono">http://10.0.0.1:3000/metrics</td><td><span class="label">`, filtered)
	require.Contains(t, filtered, `value="cluster=staging"`)

	if os.Getenv("STATUS_SCREENSHOT") != "" {
		testenv.BrowserScreenshot(t, d.URL+"/", filepath.Join("..", "docs", "status-page.png"))
	}
}

// TestOnceTable runs ecs-sd --once --output.format=table: the targets and the skipped items are
// printed as tables, and no file is written.
func TestOnceTable(t *testing.T) {
	t.Parallel()
	m := statusFixtures(t)
	dir := t.TempDir()
	code, stdout, stderr := run(t, m.Env(), "--once", "--output.format=table", "--output.dir", dir,
		"--cloudmap.namespace", "apps", "--no-prometheus.config-sync")
	require.Equal(t, 0, code, stderr)
	t.Logf("stdout:\n%s", stdout)
	lines := strings.Split(stdout, "\n")
	require.Equal(t, "TARGETS (1)", lines[0], stdout)
	require.Regexp(t, `^ADDRESS +PATH +SOURCE +CLUSTER +SERVICE +TASK$`, lines[1])
	require.Regexp(t, `^10\.0\.0\.1:3000 +/metrics +cloudmap +prod +web +w1$`, lines[2])
	require.Equal(t, "", lines[3])
	require.Equal(t, "SKIPPED (2)", lines[4])
	require.Regexp(t, `^SOURCE +REASON +ITEM +WHAT TO CHANGE$`, lines[5])
	require.Regexp(t, `^cloudmap in us-east-1 +bad_port +namespace=apps service=bad instance=b1 endpoint=application +service tag METRICS_PORT="abc" is not a port number \(1-65535\)$`, lines[6])
	require.Regexp(t, `^cloudmap in us-east-1 +no_ip +namespace=apps service=web instance=no-ip +instance has neither AWS_INSTANCE_IPV4 nor AWS_INSTANCE_IPV6$`, lines[7])
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "a table writes no file")

	code, _, stderr = run(t, m.Env(), "--once", "--output.format=yaml", "--cloudmap.namespace", "apps")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `--output.format="yaml" is neither file nor table`)
}
