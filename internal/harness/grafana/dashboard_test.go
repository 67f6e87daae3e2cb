package grafana_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/grafana"
)

func TestQueriesReadsCollapsedRows(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "d.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"panels": [
		{"type": "row", "title": "r", "collapsed": true, "panels": [
			{"type": "timeseries", "title": "inner", "targets": [{"refId": "A", "expr": "up{job=\"$job\"}"}]}
		]},
		{"type": "text", "title": "no queries"},
		{"type": "timeseries", "title": "outer", "targets": [{"refId": "A", "expr": "[[x]] + ${x:raw}"}, {"refId": "B"}]}
	]}`), 0o600))
	queries, err := grafana.Queries(path, map[string]string{"job": "webapp", "x": "1"})
	require.NoError(t, err)
	require.Equal(t, []grafana.Query{
		{Title: "inner", RefID: "A", Expr: `up{job="webapp"}`},
		{Title: "outer", RefID: "A", Expr: `1 + 1`},
	}, queries)
}

func TestQueriesErrors(t *testing.T) {
	t.Parallel()
	_, err := grafana.Queries(filepath.Join(t.TempDir(), "missing.json"), nil)
	require.ErrorIs(t, err, os.ErrNotExist)

	path := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"panels": [`), 0o600))
	_, err = grafana.Queries(path, nil)
	require.ErrorContains(t, err, "parse dashboard")
}

func TestSubstitute(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"a": "x", "ab": "y", "__rate_interval": "1m"}
	for in, want := range map[string]string{
		`$a`:                        `x`,
		`$ab`:                       `y`,
		`${a}b`:                     `xb`,
		`${ab:regex}`:               `y`,
		`[[a]] [[ab:raw]]`:          `x y`,
		`rate(m[$__rate_interval])`: `rate(m[1m])`,
		`m{l=~"^a$"}`:               `m{l=~"^a$"}`, // a regex anchor is not a variable
		`no variables`:              `no variables`,
	} {
		got, err := grafana.Substitute(in, vars)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := grafana.Substitute(`$a + $missing`, vars)
	require.ErrorContains(t, err, `"missing"`)
}
