package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/stretchr/testify/require"
)

// runCheckConfig runs `ecs-sd [args] check config file` and returns its exit code and output.
func runCheckConfig(t *testing.T, file string, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	app := kingpin.New("ecs-sd", "")
	fl := registerFlags(app)
	cmds := registerCommands(app)
	command, err := app.Parse(append(args, "check", "config", file))
	require.NoError(t, err)
	require.Equal(t, cmds.checkConfig.FullCommand(), command)
	var stdout, stderr strings.Builder
	code := checkConfig(fl, *cmds.file, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ecs-sd.yml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// TestCheckConfig: a valid file gives exit 0 and one line that says what it sets up; an invalid
// one exit 2 and the bad key, value or setting named; the environment and flags apply over the
// file, as for the daemon.
func TestCheckConfig(t *testing.T) {
	t.Parallel()
	good := writeFile(t, "cloudmap:\n  namespaces: [apps]\necs:\n  all_clusters: true\naws:\n  regions: [us-east-1, eu-west-1]\n  accounts:\n    - role_arn: arn:aws:iam::111111111111:role/ecs-sd-reader\nprometheus_config:\n  enabled: false\n")
	code, stdout, stderr := runCheckConfig(t, good, nil)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, good+": valid: sources cloudmap (namespaces apps), ecs (every cluster) in own account and 1 role account(s), region(s) us-east-1, eu-west-1; "+
		"outputs file_sd /etc/config/ecs-services.json, http_sd /prometheus-targets; refresh every 30s\n", stdout)
	require.Empty(t, stderr)

	for _, tc := range []struct {
		yaml string
		env  map[string]string
		args []string
		want string
	}{
		{yaml: "cloudmap:\n  concurency: 3\n", want: "line 2: unknown key cloudmap.concurency"},
		{yaml: "ecs:\n  clusters: [prod]\n  api:\n    burst: many\n", want: `line 4: ecs.api.burst: "many" is not a valid int`},
		{yaml: "cloudmap:\n  concurrency: 0\n", want: "cloudmap concurrency 0: must be at least 1"},
		{yaml: "log:\n  level: loud\n", want: "log level"},
		{yaml: "web:\n  config_file: /does/not/exist.yml\n", want: "web config file /does/not/exist.yml"},
		{yaml: "refresh_interval: 1m\n", env: map[string]string{"CONFIG_RELOAD_FREQUENCY": "abc"}, want: `CONFIG_RELOAD_FREQUENCY="abc"`},
		{yaml: "refresh_interval: 1m\n", args: []string{"--refresh.interval=2d"}, want: "refresh interval 2d"},
		{yaml: "refresh_interval: 1m\n", args: []string{"--config.file=/other.yml"}, want: "--config.file=/other.yml names another file"},
	} {
		code, stdout, stderr := runCheckConfig(t, writeFile(t, tc.yaml), tc.env, tc.args...)
		require.Equal(t, 2, code, tc.yaml)
		require.Empty(t, stdout)
		require.Contains(t, stderr, tc.want)
	}
}

// TestCommands: without a command ecs-sd is the daemon, with every flag; check takes the same
// flags.
func TestCommands(t *testing.T) {
	t.Parallel()
	app := kingpin.New("ecs-sd", "")
	fl := registerFlags(app)
	cmds := registerCommands(app)
	command, err := app.Parse([]string{"--once", "--cloudmap.namespace=apps"})
	require.NoError(t, err)
	require.Equal(t, "serve", command)
	require.True(t, *fl.once)
	command, err = app.Parse([]string{"check", "aws", "--ecs.cluster=prod"})
	require.NoError(t, err)
	require.Equal(t, cmds.checkAWS.FullCommand(), command)
	cfg, err := fl.resolve(func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	require.Equal(t, []string{"prod"}, cfg.ECS.Clusters)
	_, err = app.Parse([]string{"check", "config"})
	require.ErrorContains(t, err, "file", "the file is required")
}
