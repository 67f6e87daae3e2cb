package grafana_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/grafana"
)

// The dashboard model, as far as the tests check it.
type (
	dashboardModel struct {
		UID           string       `json:"uid"`
		Title         string       `json:"title"`
		SchemaVersion int          `json:"schemaVersion"`
		Panels        []panelModel `json:"panels"`
		Templating    struct {
			List []variableModel `json:"list"`
		} `json:"templating"`
	}
	datasourceRef struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	panelModel struct {
		ID          int                      `json:"id"`
		Type        string                   `json:"type"`
		Title       string                   `json:"title"`
		Description string                   `json:"description"`
		Datasource  *datasourceRef           `json:"datasource"`
		GridPos     struct{ H, W, X, Y int } `json:"gridPos"`
		Targets     []targetModel            `json:"targets"`
		Panels      []panelModel             `json:"panels"`
	}
	targetModel struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	}
	variableModel struct {
		Name       string          `json:"name"`
		Type       string          `json:"type"`
		Query      json.RawMessage `json:"query"`
		Datasource *datasourceRef  `json:"datasource"`
		IncludeAll bool            `json:"includeAll"`
		Multi      bool            `json:"multi"`
		AllValue   string          `json:"allValue"`
	}
)

// dashboardFile is the dashboard under test, next to this file.
const dashboardFile = "ecs-sd-dashboard.json"

// promDatasource is the reference every panel and query must use.
var promDatasource = datasourceRef{Type: "prometheus", UID: "${datasource}"}

// allVars selects every cluster and service, as the dashboard's "All" does.
var allVars = map[string]string{"cluster": ".*", "service": ".*"}

// checkDashboard loads a dashboard of the kit and checks what they all share: an id, a title, a
// schema version Grafana 9 to 11 read, the datasource variable, distinct panel ids, and panels
// (rows aside) with a title, a place on the 24-column grid and queries, each with its own refId,
// all on ${datasource}, using only the variables of vars. It returns the dashboard, its variables
// by name and its panels (rows aside).
func checkDashboard(t *testing.T, file string, vars map[string]string) (dashboardModel, map[string]variableModel, []panelModel) {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var d dashboardModel
	require.NoError(t, json.Unmarshal(data, &d))
	require.NotEmpty(t, d.UID)
	require.NotEmpty(t, d.Title)
	require.GreaterOrEqual(t, d.SchemaVersion, 36)
	require.LessOrEqual(t, d.SchemaVersion, 41)

	byName := map[string]variableModel{}
	for _, v := range d.Templating.List {
		byName[v.Name] = v
	}
	ds, ok := byName["datasource"]
	require.True(t, ok, "no datasource variable")
	require.Equal(t, "datasource", ds.Type)
	require.Equal(t, "prometheus", queryString(t, ds.Query))

	ids := map[int]bool{}
	for _, p := range d.Panels {
		require.False(t, ids[p.ID], "duplicate panel id %d", p.ID)
		ids[p.ID] = true
	}
	panels := leafPanels(d.Panels)
	for _, p := range panels {
		require.NotEmpty(t, p.Title)
		require.NotNil(t, p.Datasource, p.Title)
		require.Equal(t, promDatasource, *p.Datasource, p.Title)
		require.Positive(t, p.GridPos.W, p.Title)
		require.Positive(t, p.GridPos.H, p.Title)
		require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, p.Title)
		require.NotEmpty(t, p.Targets, p.Title)
		refIDs := map[string]bool{}
		for _, tg := range p.Targets {
			require.NotEmpty(t, strings.TrimSpace(tg.Expr), "panel %q query %s", p.Title, tg.RefID)
			require.NotNil(t, tg.Datasource, "panel %q query %s", p.Title, tg.RefID)
			require.Equal(t, promDatasource, *tg.Datasource, "panel %q query %s", p.Title, tg.RefID)
			require.False(t, refIDs[tg.RefID], "panel %q: duplicate refId %s", p.Title, tg.RefID)
			refIDs[tg.RefID] = true
			// Every variable used is defined by the dashboard.
			_, err := grafana.Substitute(tg.Expr, vars)
			require.NoError(t, err, "panel %q query %s", p.Title, tg.RefID)
		}
	}
	return d, byName, panels
}

// leafPanels returns the panels that are not rows, including those inside collapsed rows.
func leafPanels(panels []panelModel) []panelModel {
	var out []panelModel
	for _, p := range panels {
		if p.Type != "row" {
			out = append(out, p)
		}
		out = append(out, leafPanels(p.Panels)...)
	}
	return out
}

// queryString returns a variable's query, which Grafana stores as a string or as an object with
// a "query" field.
func queryString(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	require.NoError(t, json.Unmarshal(raw, &o))
	return o.Query
}

func TestDashboardModel(t *testing.T) {
	t.Parallel()
	_, vars, panels := checkDashboard(t, dashboardFile, allVars)
	for _, name := range []string{"cluster", "service"} {
		v, ok := vars[name]
		require.True(t, ok, "no %s variable", name)
		require.Equal(t, "query", v.Type, name)
		require.NotNil(t, v.Datasource, name)
		require.Equal(t, promDatasource, *v.Datasource, name)
		require.Regexp(t, `^label_values\(http_requests_total(\{[^}]*\})?, `+name+`\)$`, queryString(t, v.Query))
		// "All" must be a regex matching everything, since the queries use =~"$name".
		require.True(t, v.IncludeAll && v.Multi, name)
		require.Equal(t, ".*", v.AllValue, name)
	}
	require.Len(t, panels, 5)
	for _, p := range panels {
		require.Equal(t, "timeseries", p.Type, p.Title)
		require.Contains(t, p.Description, "seed query", "panel %q must name the seed query it implements", p.Title)
	}
}

// filterMatcher matches the dashboard's variable filters, which the seed's queries do not have.
var filterMatcher = regexp.MustCompile(`(cluster|service)=~"\$(cluster|service)"`)

// leMatcher matches the dashboard's bucket matcher, le=~"50(\\.0)?", which stands for the seed's
// le="50" on both Prometheus 2 (le="50") and 3 (le="50.0").
var leMatcher = regexp.MustCompile(`le=~"(\d+)\(\\\\\.0\)\?"`)

// asSeed rewrites a dashboard expression into the form of the blog's query: without the
// variable filters and with the bucket matched by equality.
func asSeed(expr string) string {
	expr = filterMatcher.ReplaceAllString(expr, "")
	expr = leMatcher.ReplaceAllString(expr, `le="$1"`)
	expr = regexp.MustCompile(`\{[\s,]*\}`).ReplaceAllString(expr, "")
	expr = regexp.MustCompile(`\s*,[\s,]*\}`).ReplaceAllString(expr, "}")
	expr = regexp.MustCompile(`\{[\s,]*`).ReplaceAllString(expr, "{")
	return strings.Join(strings.Fields(expr), " ")
}

func TestAsSeed(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`sum(rate(x{cluster=~"$cluster", service=~"$service"}[5m]))`:                  `sum(rate(x[5m]))`,
		`sum(rate(x{le=~"50(\\.0)?", cluster=~"$cluster", service=~"$service"}[5m]))`: `sum(rate(x{le="50"}[5m]))`,
		`rate(x{mode="idle", cluster=~"$cluster"}[1m])`:                               `rate(x{mode="idle"}[1m])`,
		`rate(x{cluster=~"$cluster", mode="idle"}[1m])`:                               `rate(x{mode="idle"}[1m])`,
		`rate(x{le="50"}[1m])`: `rate(x{le="50"}[1m])`,
	} {
		require.Equal(t, want, asSeed(in), in)
	}
}

// TestDashboardCoversSeedCharts checks that the dashboard has the blog's charts and that each
// query is the blog's query, up to the dashboard's variable filters.
func TestDashboardCoversSeedCharts(t *testing.T) {
	t.Parallel()
	const count = `sum(rate(request_duration_milliseconds_count[5m]))`
	bucket := func(le string) string {
		return `sum(rate(request_duration_milliseconds_bucket{le="` + le + `"}[5m])) / ` + count
	}
	seed := map[string][]string{
		"HTTP request rate":         {`sum(rate(http_requests_total[5m]))`},
		"Average response latency":  {`sum(rate(request_duration_milliseconds_sum[5m])) / ` + count},
		"Request latency histogram": {bucket("50"), bucket("100"), bucket("250"), bucket("500")},
		"Network traffic received":  {`sum by (instance) (rate(node_network_receive_bytes_total[1m]))`},
		"CPU usage":                 {`1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[1m]))`},
	}

	queries, err := grafana.Queries(dashboardFile, nil)
	require.NoError(t, err)
	got := map[string][]string{}
	for _, q := range queries {
		got[q.Title] = append(got[q.Title], asSeed(q.Expr))
		require.NotContains(t, q.Expr, "durtaion", "the blog's misspelling of the metric name")
		// Prometheus 3 stores le="50" as le="50.0": an equality matcher on le finds nothing there.
		require.NotContains(t, q.Expr, `le="`, "panel %q: match le with le=~\"N(\\\\.0)?\"", q.Title)
	}
	require.Equal(t, seed, got)

	// The application panels filter by cluster and service, the Node Exporter panels by cluster.
	for _, q := range queries {
		require.Contains(t, q.Expr, `cluster=~"$cluster"`, q.Title)
		if strings.Contains(q.Expr, "node_") {
			require.NotContains(t, q.Expr, "$service", q.Title)
		} else {
			require.Equal(t, strings.Count(q.Expr, "{"), strings.Count(q.Expr, `service=~"$service"`), "every selector of %q is filtered", q.Title)
		}
	}
}

func TestQueriesSubstitutesVariables(t *testing.T) {
	t.Parallel()
	queries, err := grafana.Queries(dashboardFile, allVars)
	require.NoError(t, err)
	require.Len(t, queries, 8)
	require.Equal(t, grafana.Query{
		Title:  "HTTP request rate",
		RefID:  "A",
		Legend: "requests/s",
		Expr:   `sum(rate(http_requests_total{cluster=~".*", service=~".*"}[5m]))`,
	}, queries[0])
	var refs []string
	for _, q := range queries {
		require.NotContains(t, q.Expr, "$", q.Title)
		if q.Title == "Request latency histogram" {
			refs = append(refs, q.RefID)
		}
	}
	require.Equal(t, []string{"A", "B", "C", "D"}, refs)

	_, err = grafana.Queries(dashboardFile, map[string]string{"cluster": ".*"})
	require.ErrorContains(t, err, `"service"`)
}
