package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// TestCommandLine: --version, --help, and bad settings rejected at start with their names.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	env := testenv.AWSEnv("http://127.0.0.1:1")
	code, stdout, stderr := run(t, env, "--version")
	require.Equal(t, 0, code)
	require.Contains(t, stdout+stderr, "ecs-sd, version")
	code, stdout, _ = run(t, env, "--help")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "--cloudmap.namespace")

	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{env: []string{"CONFIG_RELOAD_FREQUENCY=abc"}, want: `CONFIG_RELOAD_FREQUENCY="abc"`},
		{env: []string{"CONFIG_RELOAD_FREQUENCY=0"}, want: `CONFIG_RELOAD_FREQUENCY="0"`},
		{env: []string{"CONFIG_RELOAD_FREQUENCY=18446744074"}, want: `CONFIG_RELOAD_FREQUENCY="18446744074": want a whole number of seconds from 1 to 86400`},
		{env: []string{"CONFIG_RELOAD_FREQUENCY=99999999999"}, want: `CONFIG_RELOAD_FREQUENCY="99999999999"`},
		{args: []string{"--refresh.interval=2d"}, want: "refresh interval 2d: must be from 100ms to 1d"},
		{args: []string{"--cloudmap.tags-refresh-interval=3d"}, want: "cloudmap tags refresh interval 3d: must be from 0s to 1d"},
		{args: []string{"--refresh.interval=banana"}, want: "refresh.interval"},
		{args: []string{"--prometheus.reload-url=localhost:9090"}, want: "prometheus reload url"},
		{args: []string{"--log.level=loud"}, want: "log level"},
		{env: []string{"AWS_REGION=", "AWS_DEFAULT_REGION=", "AWS_CONFIG_FILE=/nonexistent"}, want: "no aws region"},
	} {
		code, _, stderr := run(t, withEnv(env, tc.env...), append([]string{"--once"}, tc.args...)...)
		require.Equal(t, 2, code, "%v %v", tc.env, tc.args)
		require.Contains(t, stderr, tc.want)
	}
}

// TestCheckConfigCommand: `ecs-sd check config FILE` on a good file exits 0 with one line; on a
// bad one 2, naming the key and its value; it calls no AWS (the endpoint refuses connections).
// `ecs-sd check aws` rejects a bad configuration as the daemon does.
func TestCheckConfigCommand(t *testing.T) {
	t.Parallel()
	env := testenv.AWSEnv("http://127.0.0.1:1")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	require.NoError(t, os.WriteFile(good, []byte("cloudmap:\n  namespaces: [apps]\necs:\n  clusters: [prod]\n"), 0o600))
	code, stdout, stderr := run(t, env, "check", "config", good)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, 1, strings.Count(stdout, "\n"), stdout)
	require.True(t, strings.HasPrefix(stdout, good+": valid: sources cloudmap (namespaces apps), ecs (clusters prod) in own account, region(s) us-east-1;"), stdout)

	bad := filepath.Join(dir, "bad.yml")
	require.NoError(t, os.WriteFile(bad, []byte("cloudmap:\n  namespaces: [apps]\n  concurrency: eight\n"), 0o600))
	code, stdout, stderr = run(t, env, "check", "config", bad)
	require.Equal(t, 2, code)
	require.Empty(t, stdout)
	require.Contains(t, stderr, `line 3: cloudmap.concurrency: "eight" is not a valid int`)

	code, _, stderr = run(t, env, "--config.file", bad, "check", "aws")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "cloudmap.concurrency")
}
