package demo

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/ecs-sd/ecs-sd/internal/harness/promclient"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// agentSettings are the settings of shard 1 of 3 the tests render.
var agentSettings = AgentSettings{
	Shard: 1, Shards: 3, EcsSDAddr: "127.0.0.1:9999",
	RemoteWriteURL: "http://127.0.0.1:9998/api/v1/write", ScrapeInterval: 2 * time.Second,
}

// renderAgent renders the deploy kit's agent template for agentSettings.
func renderAgent(t *testing.T) []byte {
	t.Helper()
	out, err := AgentConfig(t.Context(), filepath.Join("..", "..", ".."), agentSettings)
	require.NoError(t, err)
	return out
}

func TestAgentConfigFromTheDeployKit(t *testing.T) {
	out := renderAgent(t)
	var got promConfig
	require.NoError(t, yaml.Unmarshal(out, &got), "%s", out)
	assert.Equal(t, "2s", got.Global.ScrapeInterval)
	assert.Equal(t, "2s", got.Global.ScrapeTimeout)
	assert.Equal(t, map[string]string{AgentLabel: "1"}, got.Global.ExternalLabels)
	jobs := map[string]bool{}
	for _, job := range got.ScrapeConfigs {
		jobs[job.JobName] = true
		for _, sd := range job.HTTPSDConfigs {
			assert.Equal(t, "http://127.0.0.1:9999/prometheus-targets?shard=1&of=3", sd.URL, job.JobName)
			assert.Equal(t, "2s", sd.RefreshInterval, job.JobName)
		}
		if job.JobName == "ecs_sd" {
			require.Len(t, job.StaticConfigs, 1)
			assert.Equal(t, []string{"127.0.0.1:9999"}, job.StaticConfigs[0].Targets)
			require.Len(t, job.RelabelConfigs, 2)
			assert.Equal(t, 3, job.RelabelConfigs[0]["modulus"], "the kit's hashmod keeps ecs-sd in one agent")
			assert.Equal(t, "1", job.RelabelConfigs[1]["regex"])
		}
	}
	assert.Equal(t, map[string]bool{"ecs_services": true, "node_exporter": true, "ecs_sd": true}, jobs)
	require.Len(t, got.RemoteWrite, 1)
	rw := got.RemoteWrite[0]
	assert.Equal(t, "http://127.0.0.1:9998/api/v1/write", rw["url"])
	assert.NotContains(t, rw, "sigv4", "Debian's Prometheus 2.42 cannot sign")
	assert.Equal(t, "2s", rw["queue_config"].(map[string]any)["batch_send_deadline"])
	assert.Equal(t, 2500, rw["queue_config"].(map[string]any)["capacity"], "the kit's queue settings are kept")
	assert.NotContains(t, string(out), "${")
}

func TestAgentConfigMissingTemplate(t *testing.T) {
	_, err := AgentConfig(t.Context(), t.TempDir(), agentSettings)
	assert.ErrorContains(t, err, "prometheus-agent-shard.yml")
}

// fakePrometheus serves /api/v1/targets with active targets at the given instances, and
// /api/v1/query with an up series per element of up (instance, agent label).
func fakePrometheus(t *testing.T, instances []string, up [][2]string) *promclient.Client {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/targets", func(w http.ResponseWriter, _ *http.Request) {
		body := `{"status":"success","data":{"activeTargets":[`
		for i, instance := range instances {
			if i > 0 {
				body += ","
			}
			body += fmt.Sprintf(`{"labels":{"instance":%q},"scrapePool":"ecs_services","health":"up"}`, instance)
		}
		fmt.Fprint(w, body+"]}}")
	})
	mux.HandleFunc("/api/v1/query", func(w http.ResponseWriter, _ *http.Request) {
		body := `{"status":"success","data":{"resultType":"vector","result":[`
		for i, s := range up {
			if i > 0 {
				body += ","
			}
			body += fmt.Sprintf(`{"metric":{"__name__":"up","instance":%q,"agent":%q},"value":[1,"1"]}`, s[0], s[1])
		}
		fmt.Fprint(w, body+"]}}")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &promclient.Client{URL: srv.URL}
}

func TestCoverage(t *testing.T) {
	const shards = 3
	// Instances of each shard.
	byShard := map[uint64][]string{}
	for i := 0; len(byShard[0]) < 3 || len(byShard[1]) < 3 || len(byShard[2]) < 3; i++ {
		addr := fmt.Sprintf("127.0.0.%d:3000", i)
		byShard[targets.HashMod(addr, shards)] = append(byShard[targets.HashMod(addr, shards)], addr)
	}
	a0, a1, a2 := byShard[0][:3], byShard[1][:3], byShard[2][:3]
	agentsOf := func(extra0 ...string) []Agent {
		return []Agent{
			{Shard: 0, client: fakePrometheus(t, slices.Concat(a0, extra0), nil)},
			{Shard: 1, client: fakePrometheus(t, a1, nil)},
			{Shard: 2, client: fakePrometheus(t, a2, nil)},
		}
	}
	sink := [][2]string{
		{a0[0], "0"}, {a0[1], "0"}, // a0[2]: missing
		{a1[0], "1"}, {a1[1], "1"}, {a1[1], "2"}, // a1[1]: sent twice
		{a1[2], "0"}, // sent by another agent
		{a2[0], "2"}, {a2[1], "2"}, {a2[2], "2"},
		{"127.9.9.9:1", "1"}, // no longer scraped: left out
	}
	p := &Pipeline{opts: Options{Shards: shards}, Agents: agentsOf(a2[2]), sink: fakePrometheus(t, nil, sink)}
	c, err := p.Coverage(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []int{4, 3, 3}, c.Scraped)
	assert.ElementsMatch(t, []string{a0[0], a0[1], a1[0], a2[0], a2[1]}, c.Once)
	assert.Equal(t, []string{a0[2]}, c.Missing)
	assert.ElementsMatch(t, []string{a1[1], a1[2], a2[2]}, c.Twice, "a2[2] is scraped by two agents")
	assert.False(t, c.Complete())

	all := [][2]string{}
	for shard, addrs := range [][]string{a0, a1, a2} {
		for _, a := range addrs {
			all = append(all, [2]string{a, fmt.Sprint(shard)})
		}
	}
	p = &Pipeline{opts: Options{Shards: shards}, Agents: agentsOf(), sink: fakePrometheus(t, nil, all)}
	c, err = p.Coverage(t.Context())
	require.NoError(t, err)
	assert.Len(t, c.Once, 9)
	assert.True(t, c.Complete())
}
