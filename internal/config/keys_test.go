package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestParseErrorsNameTheKey: an unknown key, a value of the wrong type and a value its parser
// rejects are each named by the key's path in the file, with its line.
func TestParseErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, want string }{
		{"cloudmap:\n  concurency: 3\n", "line 2: unknown key cloudmap.concurency"},
		{"cloudmap:\n  concurrency: abc\n", `line 2: cloudmap.concurrency: "abc" is not a valid int`},
		{"refresh_interval: 2x\n", `line 1: refresh_interval: unknown unit "x" in duration "2x"`},
		{"ecs:\n  clusters: [a]\n  docker_labels:\n    enabled: maybe\n", `line 4: ecs.docker_labels.enabled: "maybe" is not a valid bool`},
		{"aws:\n  accounts:\n    - role_arn: x\n      extid: 3\n", "line 4: unknown key aws.accounts[0].extid"},
		{"cloudmap: {enabled: true, concurrency: x}\n", `line 1: cloudmap.concurrency: "x" is not a valid int`},
		{"aws: [1]\n", "line 1: aws: cannot unmarshal !!seq into config.AWS"},
		{"log:\n  lvl: debug\nweb:\n  listen_addr: [':1']\n", "line 2: unknown key log.lvl; line 4: unknown key web.listen_addr"},
	} {
		c := Default()
		require.EqualError(t, c.Parse([]byte(tc.yaml)), tc.want, tc.yaml)
	}
	c := Default()
	require.ErrorContains(t, c.Parse([]byte("a: b: c")), "mapping values are not allowed", "a syntax error as YAML has it")
}
