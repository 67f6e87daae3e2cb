package targets

import (
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestParseScrapeSettings(t *testing.T) {
	t.Parallel()
	scheme := func(v string) Setting { return Setting{"tag S", v, true} }
	interval := func(v string) Setting { return Setting{"tag I", v, true} }
	timeout := func(v string) Setting { return Setting{"tag T", v, true} }
	for _, tc := range []struct {
		name                      string
		scheme, interval, timeout Setting
		want                      ScrapeSettings
		reason, err               string
	}{
		{name: "none set"},
		{name: "all set", scheme: scheme(" HTTPS "), interval: interval("90s"), timeout: timeout("1m"),
			want: ScrapeSettings{Scheme: "https", Interval: "1m30s", Timeout: "1m"}},
		{name: "timeout equal to interval", interval: interval("15s"), timeout: timeout("15s"),
			want: ScrapeSettings{Interval: "15s", Timeout: "15s"}},
		{name: "interval alone", interval: interval(" 2m "), want: ScrapeSettings{Interval: "2m"}},
		{name: "timeout alone, longer than any job's default", timeout: timeout("5m"), want: ScrapeSettings{Timeout: "5m"}},
		{name: "scheme", scheme: scheme("ftp"), reason: ReasonBadScheme, err: `tag S="ftp" is neither http nor https`},
		{name: "blank values are unset", scheme: scheme(" "), interval: interval(""), timeout: timeout("\t")},
		{name: "interval not a duration", interval: interval("abc"), reason: ReasonBadScrapeInterval, err: `tag I="abc" is not a duration (such as 15s or 1m30s)`},
		{name: "interval in Go's syntax", interval: interval("1.5s"), reason: ReasonBadScrapeInterval, err: `tag I="1.5s" is not a duration (such as 15s or 1m30s)`},
		{name: "interval 0", interval: interval("0s"), reason: ReasonBadScrapeInterval, err: `tag I="0s" is not above 0`},
		{name: "timeout not a duration", timeout: timeout("abc"), reason: ReasonBadScrapeTimeout, err: `tag T="abc" is not a duration (such as 15s or 1m30s)`},
		{name: "timeout 0", interval: interval("1m"), timeout: timeout("0"), reason: ReasonBadScrapeTimeout, err: `tag T="0" is not above 0`},
		{name: "timeout longer", interval: interval("10s"), timeout: timeout("11s"), reason: ReasonBadScrapeTimeout, err: `tag T="11s" is longer than tag I="10s"`},
		{name: "bad scheme reported before bad durations", scheme: scheme("x"), interval: interval("x"), reason: ReasonBadScheme, err: `tag S="x" is neither http nor https`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseScrapeSettings(tc.scheme, tc.interval, tc.timeout)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				require.Equal(t, tc.reason, err.Reason)
				require.Zero(t, got)
				return
			}
			require.Nil(t, err)
			require.Equal(t, tc.want, got)
			// What ParseScrapeSettings accepts, Check accepts.
			var b LabelBuilder
			g := &Group{Targets: []string{"h:80"}, Labels: model.LabelSet{}}
			b.SetScrape(g.Labels, got)
			require.NoError(t, g.Check())
			require.Len(t, g.Labels, count(got.Scheme, got.Interval, got.Timeout))
		})
	}
}

func count(values ...string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}

// TestMergeKeepsTheScrapePairOfOneGroup: groups of one endpoint merged take the scrape interval
// and timeout both from one group, the first by source, never the interval of one and the timeout
// of another (which could be longer than that interval).
func TestMergeKeepsTheScrapePairOfOneGroup(t *testing.T) {
	t.Parallel()
	g := func(labels model.LabelSet) *Group { return &Group{Targets: []string{"10.0.0.1:80"}, Labels: labels} }
	for _, tc := range []struct {
		name         string
		a, b         model.LabelSet // of sources a and b
		wantInterval model.LabelValue
		wantTimeout  model.LabelValue
	}{
		{"interval of one, timeout of the other", model.LabelSet{LabelScrapeInterval: "3s"}, model.LabelSet{LabelScrapeTimeout: "5s"}, "3s", ""},
		{"timeout of one, interval of the other", model.LabelSet{LabelScrapeTimeout: "5s"}, model.LabelSet{LabelScrapeInterval: "3s"}, "", "5s"},
		{"the first source without settings", model.LabelSet{"x": "1"}, model.LabelSet{LabelScrapeInterval: "1m", LabelScrapeTimeout: "50s"}, "1m", "50s"},
		{"both set", model.LabelSet{LabelScrapeInterval: "10s", LabelScrapeTimeout: "2s"}, model.LabelSet{LabelScrapeInterval: "5s", LabelScrapeTimeout: "5s"}, "10s", "2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := Merge(map[string][]*Group{"a": {g(tc.a)}, "b": {g(tc.b)}})
			require.Len(t, out, 1)
			require.Equal(t, tc.wantInterval, out[0].Labels[LabelScrapeInterval])
			require.Equal(t, tc.wantTimeout, out[0].Labels[LabelScrapeTimeout])
			require.NoError(t, out[0].Check())
		})
	}
}
