package demo

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// promConfig is the part of a Prometheus configuration the template and agent configuration tests read.
type promConfig struct {
	Global struct {
		ScrapeInterval string            `yaml:"scrape_interval"`
		ScrapeTimeout  string            `yaml:"scrape_timeout"`
		ExternalLabels map[string]string `yaml:"external_labels"`
	} `yaml:"global"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		FileSDConfigs []struct {
			Files []string `yaml:"files"`
		} `yaml:"file_sd_configs"`
		HTTPSDConfigs []struct {
			URL             string `yaml:"url"`
			RefreshInterval string `yaml:"refresh_interval"`
		} `yaml:"http_sd_configs"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		RelabelConfigs []map[string]any `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
	RemoteWrite []map[string]any `yaml:"remote_write"`
}

// deployKitTemplate returns the deploy kit's file_sd configuration and the demo's template made
// from it.
func deployKitTemplate(t *testing.T) (src, out []byte) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "prometheus", "prometheus-file-sd.yml"))
	require.NoError(t, err)
	out, err = prometheusTemplate(src, templateSettings{
		FileSDPath:        "/tmp/demo/config/ecs-services.json",
		EcsSDAddr:         "127.0.0.1:9999",
		RemoteWriteURL:    "http://127.0.0.1:9998/api/v1/write",
		ScrapeInterval:    2 * time.Second,
		BatchSendDeadline: time.Second,
	})
	require.NoError(t, err)
	return src, out
}

func TestPrometheusTemplateFromTheDeployKit(t *testing.T) {
	src, out := deployKitTemplate(t)

	var got, orig promConfig
	require.NoError(t, yaml.Unmarshal(out, &got))
	require.NoError(t, yaml.Unmarshal(src, &orig))
	assert.Equal(t, "2s", got.Global.ScrapeInterval)
	assert.Equal(t, "2s", got.Global.ScrapeTimeout)
	require.Len(t, got.ScrapeConfigs, len(orig.ScrapeConfigs), "every job of the deploy kit is kept")
	jobs := map[string]bool{}
	for i, job := range got.ScrapeConfigs {
		jobs[job.JobName] = true
		assert.Equal(t, orig.ScrapeConfigs[i].RelabelConfigs, job.RelabelConfigs, "relabelling of %s is kept", job.JobName)
		for _, sd := range job.FileSDConfigs {
			assert.Equal(t, []string{"/tmp/demo/config/ecs-services.json"}, sd.Files, job.JobName)
		}
		if job.JobName == "ecs_sd" {
			require.Len(t, job.StaticConfigs, 1)
			assert.Equal(t, []string{"127.0.0.1:9999"}, job.StaticConfigs[0].Targets)
		}
	}
	assert.Equal(t, map[string]bool{"ecs_services": true, "node_exporter": true, "ecs_sd": true}, jobs)
	require.Len(t, got.RemoteWrite, 1)
	rw := got.RemoteWrite[0]
	assert.Equal(t, "http://127.0.0.1:9998/api/v1/write", rw["url"])
	assert.NotContains(t, rw, "sigv4", "Debian's Prometheus 2.42 cannot sign")
	assert.Equal(t, "1s", rw["queue_config"].(map[string]any)["batch_send_deadline"])
	assert.NotContains(t, string(out), "${", "02-ssm-parameters.sh has nothing to fill in")
}

func TestPrometheusTemplateErrors(t *testing.T) {
	settings := templateSettings{ScrapeInterval: time.Second}
	for name, src := range map[string]string{
		"not yaml":        "a: [",
		"not a mapping":   "- a",
		"no file_sd":      "scrape_configs: [{job_name: ecs_sd, static_configs: [{targets: [x]}]}]\nremote_write: [{url: x}]",
		"no ecs_sd job":   "scrape_configs: [{job_name: a, file_sd_configs: [{files: [x]}]}]\nremote_write: [{url: x}]",
		"no remote_write": "scrape_configs: [{job_name: ecs_sd, file_sd_configs: [{files: [x]}]}]",
	} {
		_, err := prometheusTemplate([]byte(src), settings)
		assert.Error(t, err, name)
	}
}

func TestParseExports(t *testing.T) {
	vars, err := parseExports("export A='x'\n\nexport B_2='it'\\''s'\nexport C=''\n")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"A": "x", "B_2": "it's", "C": ""}, vars)
	_, err = parseExports("export A='x'\nsomething else\n")
	assert.ErrorContains(t, err, `"something else" is not an export line`)
}
