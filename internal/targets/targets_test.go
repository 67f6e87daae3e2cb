package targets

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestMarshalIsDeterministic(t *testing.T) {
	t.Parallel()
	a := &Group{Targets: []string{"10.0.0.2:80"}, Labels: model.LabelSet{"b": "2", "a": "1"}}
	b := &Group{Targets: []string{"10.0.0.1:80"}, Labels: model.LabelSet{"z": "1"}}
	one, err := Marshal([]*Group{a, b})
	require.NoError(t, err)
	two, err := Marshal([]*Group{b, a})
	require.NoError(t, err)
	require.Equal(t, string(one), string(two))
	require.Equal(t, `[
  {
    "targets": [
      "10.0.0.1:80"
    ],
    "labels": {
      "z": "1"
    }
  },
  {
    "targets": [
      "10.0.0.2:80"
    ],
    "labels": {
      "a": "1",
      "b": "2"
    }
  }
]
`, string(one))
	empty, err := Marshal(nil)
	require.NoError(t, err)
	require.Equal(t, "[]\n", string(empty))
	back, err := Unmarshal(one)
	require.NoError(t, err)
	require.Len(t, back, 2)
}

func TestJoinHostPortAndSanitize(t *testing.T) {
	t.Parallel()
	require.Equal(t, "10.0.0.1:9100", JoinHostPort("10.0.0.1", 9100))
	require.Equal(t, "[2001:db8::1]:80", JoinHostPort("2001:db8::1", 80))
	require.Equal(t, "team_owner_x_y", SanitizeLabelName("team:owner-x.y"))
}

func TestMergeDeduplicatesEndpoints(t *testing.T) {
	t.Parallel()
	cm := []*Group{
		{Targets: []string{"10.0.0.1:3000"}, Labels: model.LabelSet{"__metrics_path__": "/metrics", "service": "web", "__meta_cloudmap_service_name": "web-svc"}},
		{Targets: []string{"10.0.0.2:3000"}, Labels: model.LabelSet{"__metrics_path__": "/metrics"}},
	}
	ecs := []*Group{
		{Targets: []string{"10.0.0.1:3000"}, Labels: model.LabelSet{"service": "other", "__meta_ecs_task_arn": "arn"}},
		{Targets: []string{"10.0.0.1:3000"}, Labels: model.LabelSet{"__metrics_path__": "/other"}},
	}
	out := Merge(map[string][]*Group{"cloudmap": cm, "ecs": ecs})
	Sort(out)
	require.Len(t, out, 3)
	require.Equal(t, "http://10.0.0.1:3000/metrics", out[0].Key())
	require.Equal(t, model.LabelValue(",cloudmap,ecs,"), out[0].Labels[LabelSource])
	require.Equal(t, model.LabelValue("web"), out[0].Labels["service"], "the first source wins a conflict")
	require.Equal(t, model.LabelValue("arn"), out[0].Labels["__meta_ecs_task_arn"])
	require.Equal(t, model.LabelValue(",ecs,"), out[1].Labels[LabelSource])
	require.Equal(t, model.LabelValue(",cloudmap,"), out[2].Labels[LabelSource])
	// Inputs are not modified.
	require.NotContains(t, cm[0].Labels, model.LabelName(LabelSource))
}

func TestParsePort(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want int
	}{{"1", 1}, {" 9100 ", 9100}, {"65535", 65535}} {
		p, err := ParsePort(c.in)
		require.NoError(t, err, c.in)
		require.Equal(t, c.want, p)
	}
	for _, in := range []string{"", "0", "65536", "-1", "http", "80.5"} {
		_, err := ParsePort(in)
		require.EqualError(t, err, fmt.Sprintf("%q is not a port number (1-65535)", in))
	}
	require.NoError(t, CheckPort(65535))
	require.EqualError(t, CheckPort(0), "0 is not a port number (1-65535)")
}

func TestSnapshotSortsAndRendersOnce(t *testing.T) {
	t.Parallel()
	a := &Group{Targets: []string{"10.0.0.2:80"}, Labels: model.LabelSet{"b": "2"}}
	b := &Group{Targets: []string{"10.0.0.1:80"}, Labels: model.LabelSet{"z": "1"}}
	groups := []*Group{a, b}
	snap, err := NewSnapshot(groups)
	require.NoError(t, err)
	require.Equal(t, []*Group{b, a}, snap.Groups, "sorted")
	want, err := Marshal([]*Group{a, b})
	require.NoError(t, err)
	got, err := snap.JSON()
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "rendered as Marshal renders")
	requireList(t, snap)

	empty, err := NewSnapshot(nil)
	require.NoError(t, err)
	got, err = empty.JSON()
	require.NoError(t, err)
	require.Equal(t, "[]\n", string(got))
	require.NotNil(t, empty.Groups)
}

// jsonEncoder renders groups as encoding/json does with the settings of the file_sd format: the
// reference that render must match byte for byte.
func jsonEncoder(t testing.TB, groups []*Group) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(groups))
	return buf.Bytes()
}

// rendered returns render's output for groups, checking the size it reports.
func rendered(t testing.TB, groups []*Group) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := render(&buf, groups)
	require.NoError(t, err)
	require.Equal(t, int64(buf.Len()), n)
	return buf.Bytes()
}

func TestRenderMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	odd := "q\"b\\s/<>&\x00\x01\x1f\x7f\b\f\n\r\t é \u2028\u2029 \xff\xfe end"
	for name, groups := range map[string][]*Group{
		"nil list":   nil,
		"empty list": {},
		"nil group":  {nil, {Targets: []string{"a:1"}}},
		"nil and empty members": {
			{Targets: nil, Labels: nil},
			{Targets: []string{}, Labels: model.LabelSet{}},
		},
		"several targets": {{Targets: []string{"a:1", "b:2", ""}, Labels: model.LabelSet{"z": "", "a": "1", "m": "x"}}},
		"escapes":         {{Targets: []string{odd}, Labels: model.LabelSet{model.LabelName(odd): model.LabelValue(odd), "k": model.LabelValue(odd[3:9])}}},
		"bench":           benchGroups(50),
		"several pieces":  benchGroups(2000), // more than flushSize
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, string(jsonEncoder(t, groups)), string(rendered(t, groups)))
		})
	}
}

func TestMergeIsAFunctionOfTheGroupsNotTheirOrder(t *testing.T) {
	t.Parallel()
	// Three groups of one endpoint in one source, and one in another, disagreeing on labels.
	g := func(labels model.LabelSet) *Group { return &Group{Targets: []string{"10.0.0.1:80"}, Labels: labels} }
	cm := []*Group{
		g(model.LabelSet{"__meta_cloudmap_instance_id": "b", "zone": "b"}),
		g(model.LabelSet{"__meta_cloudmap_instance_id": "a", "only_a": "1"}),
		g(model.LabelSet{"__meta_cloudmap_instance_id": "c", "zone": "c", "only_c": "1"}),
		{Targets: []string{"10.0.0.2:80"}, Labels: model.LabelSet{"x": "1"}},
	}
	ecs := []*Group{g(model.LabelSet{"__meta_cloudmap_instance_id": "ecs", "ecs": "1"})}
	var first []byte
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 50 {
		a, b := slices.Clone(cm), slices.Clone(ecs)
		rng.Shuffle(len(a), func(i, j int) { a[i], a[j] = a[j], a[i] })
		out, err := Marshal(Merge(map[string][]*Group{"ecs": b, "cloudmap": a}))
		require.NoError(t, err)
		if i == 0 {
			first = out
			continue
		}
		require.Equal(t, string(first), string(out), "order %d", i)
	}
	out := Merge(map[string][]*Group{"cloudmap": cm, "ecs": ecs})
	Sort(out)
	require.Len(t, out, 2)
	require.Equal(t, model.LabelSet{
		"__meta_cloudmap_instance_id": "a", // the label set that sorts first wins within a source
		"only_a":                      "1",
		"only_c":                      "1",
		"zone":                        "b", // then the next one: b before c
		"ecs":                         "1",
		LabelSource:                   ",cloudmap,ecs,",
	}, out[0].Labels)
}

func TestMergeUsesGroupsThatCarryTheirSource(t *testing.T) {
	t.Parallel()
	own := &Group{Targets: []string{"10.0.0.1:80"}, Labels: model.LabelSet{"a": "1", LabelSource: SourceValue("cloudmap")}}
	other := &Group{Targets: []string{"10.0.0.2:80"}, Labels: model.LabelSet{"a": "1"}}
	out := Merge(map[string][]*Group{"cloudmap": {own, other}})
	Sort(out)
	require.Same(t, own, out[0], "a group that carries its source is not copied")
	require.NotSame(t, other, out[1])
	require.Equal(t, SourceValue("cloudmap"), out[1].Labels[LabelSource])
	require.NotContains(t, other.Labels, model.LabelName(LabelSource), "inputs are not modified")
}

func TestSnapshotUpdateRendersOnlyChanges(t *testing.T) {
	t.Parallel()
	groups := benchGroups(20)
	var zero Snapshot
	first, err := zero.Update(slices.Clone(groups))
	require.NoError(t, err)
	requireList(t, first)

	// The same groups, in another order: the same snapshot, not rendered again.
	again, err := first.Update(slices.Clone(groups))
	require.NoError(t, err)
	require.Same(t, &first.Gzip[0], &again.Gzip[0])

	// Equal copies: the same.
	copies := make([]*Group, len(groups))
	for i, g := range groups {
		copies[i] = &Group{Targets: slices.Clone(g.Targets), Labels: g.Labels.Clone()}
	}
	again, err = first.Update(copies)
	require.NoError(t, err)
	require.Same(t, &first.Gzip[0], &again.Gzip[0])

	// One label changed: rendered again.
	copies[7].Labels["changed"] = "1"
	changed, err := first.Update(copies)
	require.NoError(t, err)
	require.NotSame(t, &first.Gzip[0], &changed.Gzip[0])
	requireList(t, changed)
	data, err := changed.JSON()
	require.NoError(t, err)
	require.Contains(t, string(data), `"changed": "1"`)

	// One group fewer: rendered again.
	fewer, err := changed.Update(copies[1:])
	require.NoError(t, err)
	require.Len(t, fewer.Groups, 19)
	requireList(t, fewer)
}

// requireList checks that snap holds its groups' list: gzip-compressed, of the size it says.
func requireList(t *testing.T, snap Snapshot) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(snap.Gzip))
	require.NoError(t, err)
	data, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Equal(t, string(rendered(t, snap.Groups)), string(data))
	require.Equal(t, int64(len(data)), snap.Size)
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	require.NoError(t, err)
	require.Equal(t, snap.Size, n)
	require.Equal(t, string(data), buf.String())
}

func TestSanitizeLabelName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                  "",
		"AVAILABILITY_ZONE": "AVAILABILITY_ZONE",
		"team:owner-x.y":    "team_owner_x_y",
		"é":                 "_",   // one character, two bytes: one underscore
		"a\xffb":            "a_b", // invalid UTF-8: one per byte
		"日本":                "__",
		"0abc":              "0abc", // a fragment: the prefix comes first
	} {
		require.Equal(t, want, SanitizeLabelName(in), in)
	}
}

func TestSetMapCollisionsFirstKeyWins(t *testing.T) {
	t.Parallel()
	attrs := map[string]string{"a.b": "dot", "a-b": "dash", "a_b": "underscore", "a:b": "", "c": "3"}
	// Map order changes from run to run: the result must not.
	for range 100 {
		var b LabelBuilder
		labels := model.LabelSet{"pre_c": "fixed"}
		collisions := b.SetMap(labels, "pre_", maps.Clone(attrs))
		require.Equal(t, model.LabelSet{"pre_a_b": "dash", "pre_c": "fixed"}, labels, "a-b sorts before a.b and a_b; an empty a:b gives nothing")
		require.Equal(t, []Collision{
			{Name: "pre_a_b", Kept: "a-b", Dropped: "a.b"},
			{Name: "pre_a_b", Kept: "a-b", Dropped: "a_b"},
			{Name: "pre_c", Kept: "", Dropped: "c"},
		}, collisions)
	}
	var b LabelBuilder
	require.Nil(t, b.SetMap(model.LabelSet{}, "p_", map[string]string{"x": "1"}))
	require.Equal(t, b.Name("p_", "a.b"), b.Name("p_", "a.b"))
}

func TestGroupCheck(t *testing.T) {
	t.Parallel()
	ok := &Group{Targets: []string{"10.0.0.1:9100"}, Labels: model.LabelSet{LabelMetricsPath: "/metrics", LabelScheme: "https", "__meta_x": "é"}}
	require.NoError(t, ok.Check())
	require.NoError(t, (&Group{Targets: []string{"[2001:db8::1]:80"}}).Check())
	for want, g := range map[string]*Group{
		"0 targets, want 1": {},
		`target "10.0.0.1": address 10.0.0.1: missing port in address`: {Targets: []string{"10.0.0.1"}},
		`target "10.0.0.1:0": port "0" is not a port number (1-65535)`: {Targets: []string{"10.0.0.1:0"}},
		`target "h: 80": port " 80" is not a port number (1-65535)`:    {Targets: []string{"h: 80"}},
		`label name "é" is not valid`:                                  {Targets: []string{"h:80"}, Labels: model.LabelSet{"é": "1"}},
		`metrics path "m" does not start with /`:                       {Targets: []string{"h:80"}, Labels: model.LabelSet{LabelMetricsPath: "m"}},
		`scheme "ftp" is neither http nor https`:                       {Targets: []string{"h:80"}, Labels: model.LabelSet{LabelScheme: "ftp"}},
		`label __scrape_interval__="0s" is not a duration above 0`:     {Targets: []string{"h:80"}, Labels: model.LabelSet{LabelScrapeInterval: "0s"}},
		`label __scrape_timeout__="x" is not a duration above 0`:       {Targets: []string{"h:80"}, Labels: model.LabelSet{LabelScrapeTimeout: "x"}},
		`scrape timeout 1m is longer than the scrape interval 30s`:     {Targets: []string{"h:80"}, Labels: model.LabelSet{LabelScrapeInterval: "30s", LabelScrapeTimeout: "1m"}},
	} {
		require.EqualError(t, g.Check(), want)
	}
}

// TestWithLackingIsTheSnapshotOfBothLists: the list of groups with the earlier list's groups
// whose endpoints they lack, rendered while the earlier list is decoded one group at a time, is
// byte for byte the snapshot NewSnapshot makes of the same groups, for lists of every shape:
// either one empty, endpoints in either list only, an endpoint twice in the earlier list,
// schemes and paths that make other endpoints of one address.
func TestWithLackingIsTheSnapshotOfBothLists(t *testing.T) {
	t.Parallel()
	g := func(addr string, labels ...string) *Group {
		ls := model.LabelSet{}
		for i := 0; i+1 < len(labels); i += 2 {
			ls[model.LabelName(labels[i])] = model.LabelValue(labels[i+1])
		}
		return &Group{Targets: []string{addr}, Labels: ls}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var many, earlierMany []*Group
	for i := range 300 {
		addr := fmt.Sprintf("10.0.%d.%d:%d", i/250, i%250, 8000+i%3)
		switch rng.IntN(3) {
		case 0:
			many = append(many, g(addr, "svc", "new"))
		case 1:
			earlierMany = append(earlierMany, g(addr, "svc", "old"))
		default:
			many = append(many, g(addr, "svc", "new"))
			earlierMany = append(earlierMany, g(addr, "svc", "old"))
		}
	}
	for _, tc := range []struct {
		name            string
		groups, earlier []*Group
		wantKept        int
	}{
		{"both empty", nil, nil, 0},
		{"no earlier groups", []*Group{g("10.0.0.1:80")}, nil, 0},
		{"no groups", nil, []*Group{g("10.0.0.2:80", "a", "1"), g("10.0.0.1:80")}, 2},
		{"endpoints of one address", []*Group{g("10.0.0.1:80", LabelMetricsPath, "/a")},
			[]*Group{g("10.0.0.1:80", LabelMetricsPath, "/b"), g("10.0.0.1:80", LabelScheme, "https"), g("10.0.0.1:80", LabelMetricsPath, "/a", "x", "old")}, 2},
		{"an endpoint twice in the earlier list", []*Group{g("10.0.0.5:80")},
			[]*Group{g("10.0.0.3:80", "a", "2"), g("10.0.0.3:80", "a", "1"), g("10.0.0.9:80"), g("10.0.0.5:80", "old", "1")}, 3},
		{"many", many, earlierMany, 300 - len(many)},
	} {
		earlier, err := NewSnapshot(slices.Clone(tc.earlier))
		require.NoError(t, err, tc.name)
		earlier.Groups = nil
		groups := slices.Clone(tc.groups)
		got, kept, err := WithLacking(groups, earlier)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.wantKept, kept, tc.name)
		require.Nil(t, got.Groups, tc.name)

		have := map[string]bool{}
		for _, g := range tc.groups {
			have[g.Key()] = true
		}
		both := slices.Clone(tc.groups)
		for _, e := range tc.earlier {
			if !have[e.Key()] {
				both = append(both, e)
			}
		}
		want, err := NewSnapshot(both)
		require.NoError(t, err, tc.name)
		require.Equal(t, want.Size, got.Size, tc.name)
		wantJSON, err := want.JSON()
		require.NoError(t, err)
		gotJSON, err := got.JSON()
		require.NoError(t, err)
		require.Equal(t, string(wantJSON), string(gotJSON), tc.name)
		require.Equal(t, want.Gzip, got.Gzip, tc.name)

		n, err := CountLacking(tc.groups, earlier)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.wantKept, n, tc.name)
	}

	_, _, err := WithLacking(nil, Snapshot{Gzip: []byte("not gzip")})
	require.ErrorContains(t, err, "read compressed target list")
}
