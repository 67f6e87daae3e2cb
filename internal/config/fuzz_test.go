package config

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// settingPrefixes start every error of Validate: each names the setting it is about.
var settingPrefixes = []string{
	"refresh interval", "output directory", "output file name", "web targets path", "web listen address",
	"cloudmap", "prometheus config", "prometheus reload url", "aws endpoint url", "ecs", "no source enabled",
	"no output enabled",
}

// FuzzConfigYAML parses any document as the configuration file over the defaults. Properties: no
// panic; every line of a validation error starts with the name of a setting; a valid
// configuration has finite numbers; a configuration that is valid, written back as YAML and read
// again over the defaults, is the same configuration, and valid again (reading and validating
// are idempotent).
func FuzzConfigYAML(f *testing.F) {
	for _, doc := range []string{
		"refresh_interval: 10s\noutput:\n  dir: /etc/config\ncloudmap:\n  namespaces: [a, b]\n",
		"ecs:\n  clusters: [prod]\n  matchers:\n    - service: web\n      ports: [9100]\n",
		"refresh_interval: 0s\nweb:\n  targets_path: x\n  listen_addresses: []\n",
		"ecs:\n  all_clusters: true\n  api:\n    requests_per_second: .nan\n",
		"cloudmap:\n  enabled: false\noutput:\n  file_sd: false\n  http_sd: false\n",
		"unknown: 1\n",
		"prometheus_config:\n  reload_url: ftp://x\naws:\n  endpoint_url: '::'\n",
		"ecs:\n  port_names:\n    pattern: '('\n",
		"",
	} {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		c := Default()
		if err := c.Parse([]byte(doc)); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				require.True(t, hasSettingPrefix(line), "error line %q names no setting", line)
			}
			return
		}
		rps := c.ECS.API.RequestsPerSecond
		require.False(t, math.IsNaN(rps) || math.IsInf(rps, 0), "requests per second %v accepted", rps)
		out, err := yaml.Marshal(c)
		require.NoError(t, err)
		again := Default()
		require.NoError(t, again.Parse(out), "written back:\n%s", out)
		require.NoError(t, again.Validate(), "written back:\n%s", out)
		back, err := yaml.Marshal(again)
		require.NoError(t, err)
		require.Equal(t, string(out), string(back))
	})
}

func hasSettingPrefix(line string) bool {
	for _, p := range settingPrefixes {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}
