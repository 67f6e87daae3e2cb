package ssmparam

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzSplitList checks the namespace list parser on any parameter value: every entry is
// non-empty, trimmed, free of commas, given once and found in the input; parsing the list joined
// again gives the same list (idempotence); and every non-blank piece of the input is an entry.
func FuzzSplitList(f *testing.F) {
	for _, s := range []string{"ecs-services", " a , b,,c ,a", "", " , ,", "ns-abc,\tecs-services\n, other", "a\u00a0,\u2003b", "é,日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := SplitList(v)
		seen := map[string]bool{}
		for _, e := range got {
			require.NotEmpty(t, e)
			require.Equal(t, strings.TrimSpace(e), e)
			require.NotContains(t, e, ",")
			require.False(t, seen[e], "%q given twice", e)
			seen[e] = true
			require.Contains(t, v, e)
		}
		require.Equal(t, got, SplitList(strings.Join(got, ",")), "idempotent")
		for _, piece := range strings.Split(v, ",") {
			if p := strings.TrimSpace(piece); p != "" {
				require.True(t, seen[p], "%q lost", p)
			}
		}
	})
}
