//go:build integration

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

const seedCluster = "ecs-prometheus-cluster"

var hostedZone = regexp.MustCompile(`"/hostedzone/[A-Z0-9]+"`)

// seed builds the seed's scenario as its CLI steps do: a VPC, the private DNS namespace
// ecs-services, the services webapp-svc (METRICS_PATH=/metrics, METRICS_PORT=3000) and
// node-exporter-svc (METRICS_PORT=9100), two tasks of each registered as ECS registers them, and
// the namespaces parameter. It returns the ids to substitute in expected output.
func seed(t *testing.T, m *testenv.Moto) map[string]string {
	t.Helper()
	vpc := m.CreateVPC(t)
	ns := m.CreatePrivateDNSNamespace(t, "ecs-services", vpc)
	web, _ := m.CreateService(t, ns, "webapp-svc", map[string]string{"METRICS_PATH": "/metrics", "METRICS_PORT": "3000"})
	node, _ := m.CreateService(t, ns, "node-exporter-svc", map[string]string{"METRICS_PORT": "9100"})
	m.RegisterTasks(t, web, []testenv.Task{
		{ID: "0f6b0c2a9d8e4d7f9a1b2c3d4e5f6a7b", IPv4: "10.0.1.11", Cluster: seedCluster, Service: "WebAppService", Family: "WebAppTask", AZ: "us-east-1a"},
		{ID: "1a2b3c4d5e6f4a7b8c9d0e1f2a3b4c5d", IPv4: "10.0.2.12", Cluster: seedCluster, Service: "WebAppService", Family: "WebAppTask", AZ: "us-east-1b"},
	})
	m.RegisterTasks(t, node, []testenv.Task{
		{ID: "2b3c4d5e6f7a4b8c9d0e1f2a3b4c5d6e", IPv4: "10.0.1.21", Cluster: seedCluster, Service: "NodeExporterService", Family: "NodeExporterTask", AZ: "us-east-1a", EC2InstanceID: "i-0aaaaaaaaaaaaaaa1"},
		{ID: "3c4d5e6f7a8b4c9d0e1f2a3b4c5d6e7f", IPv4: "10.0.2.22", Cluster: seedCluster, Service: "NodeExporterService", Family: "NodeExporterTask", AZ: "us-east-1b", EC2InstanceID: "i-0aaaaaaaaaaaaaaa2"},
	})
	m.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "ecs-services", ssmtypes.ParameterTypeString)
	return map[string]string{ns: "NAMESPACE_ID", web: "WEBAPP_SERVICE_ID", node: "NODE_EXPORTER_SERVICE_ID"}
}

// TestSeedScenarioGolden runs ecs-sd --once as the seed's sidecar is run (environment variables
// only) and compares the whole file with the expected one.
func TestSeedScenarioGolden(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	ids := seed(t, m)
	dir := t.TempDir()
	env := withEnv(m.Env(), "CONFIG_FILE_DIR="+dir, "CONFIG_RELOAD_FREQUENCY=30")

	code, _, stderr := run(t, env, "--once")
	require.Equal(t, 0, code, stderr)
	first, err := os.ReadFile(filepath.Join(dir, "ecs-services.json"))
	require.NoError(t, err)

	got := string(first)
	for id, name := range ids {
		got = strings.ReplaceAll(got, id, name)
	}
	got = hostedZone.ReplaceAllString(got, `"/hostedzone/HOSTED_ZONE_ID"`)
	golden := filepath.Join("testdata", "seed-ecs-services.json")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), got)

	// A second run over the same state gives byte-identical output and leaves the file alone.
	st, err := os.Stat(filepath.Join(dir, "ecs-services.json"))
	require.NoError(t, err)
	code, _, stderr = run(t, env, "--once")
	require.Equal(t, 0, code, stderr)
	second, err := os.ReadFile(filepath.Join(dir, "ecs-services.json"))
	require.NoError(t, err)
	require.Equal(t, string(first), string(second))
	st2, err := os.Stat(filepath.Join(dir, "ecs-services.json"))
	require.NoError(t, err)
	require.Equal(t, st.ModTime(), st2.ModTime(), "unchanged content must not be rewritten")
	require.Equal(t, os.FileMode(0o644), st2.Mode().Perm())
}

// TestNoTruncation covers sizes where the seed's sidecar silently stopped at 100: one service with
// 1 100 instances (beyond DiscoverInstances' 1 000), one with 300, and 125 more services.
func TestNoTruncation(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	ns := m.CreateHTTPNamespace(t, "big")
	huge, _ := m.CreateService(t, ns, "huge", map[string]string{"METRICS_PORT": "9000"})
	m.RegisterTasks(t, huge, tasks("h", 1100))
	large, _ := m.CreateService(t, ns, "large", map[string]string{"METRICS_PORT": "9001"})
	m.RegisterTasks(t, large, tasks("l", 300))
	for i := range 125 {
		id, _ := m.CreateService(t, ns, fmt.Sprintf("small-%03d", i), map[string]string{"METRICS_PORT": "9002"})
		m.RegisterTask(t, id, testenv.Task{ID: fmt.Sprintf("s%03d", i), IPv4: fmt.Sprintf("10.9.%d.%d", i/200, i%200+1), Cluster: "c", Service: "small", Family: "f"})
	}
	dir := t.TempDir()
	code, _, stderr := run(t, withEnv(m.Env(), "CONFIG_FILE_DIR="+dir), "--once", "--cloudmap.namespace", "big", "--no-prometheus.config-sync")
	require.Equal(t, 0, code, stderr)
	data, err := os.ReadFile(filepath.Join(dir, "ecs-services.json"))
	require.NoError(t, err)
	got := addresses(t, string(data))
	require.Len(t, got, 1100+300+125)
	seen := map[string]bool{}
	for _, a := range got {
		require.False(t, seen[a], "duplicate target %s", a)
		seen[a] = true
	}
}

func tasks(prefix string, n int) []testenv.Task {
	out := make([]testenv.Task, n)
	for i := range out {
		out[i] = testenv.Task{ID: fmt.Sprintf("%s%05d", prefix, i), IPv4: fmt.Sprintf("10.%d.%d.%d", len(prefix)*10+i/62500, i/250%250, i%250+1), Cluster: "c", Service: prefix, Family: "f"}
	}
	return out
}

// TestNamespaceTypes reads a StringList parameter naming two namespaces of every type, by name and
// by id, two of them sharing a name in different VPCs, and one that does not exist.
func TestNamespaceTypes(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	vpc1, vpc2 := m.CreateVPC(t), m.CreateVPC(t)
	private1 := m.CreatePrivateDNSNamespace(t, "shared.local", vpc1)
	private2 := m.CreatePrivateDNSNamespace(t, "shared.local", vpc2)
	public := m.CreatePublicDNSNamespace(t, "example.com")
	public2 := m.CreatePublicDNSNamespace(t, "example.org")
	httpNS := m.CreateHTTPNamespace(t, "apps")
	httpNS2 := m.CreateHTTPNamespace(t, "jobs")
	for i, ns := range []string{private1, private2, public, public2, httpNS, httpNS2} {
		svc, _ := m.CreateService(t, ns, "svc", map[string]string{"METRICS_PORT": "8080"})
		m.RegisterTask(t, svc, testenv.Task{ID: fmt.Sprintf("task-%d", i), IPv4: fmt.Sprintf("10.0.0.%d", i+1), Cluster: "c", Service: "s", Family: "f"})
	}
	m.PutParameter(t, "my-namespaces", " shared.local ,, "+public+",apps , missing-namespace ,example.org,"+httpNS2, ssmtypes.ParameterTypeStringList)

	d := startDaemon(t, withEnv(m.Env(), "DISCOVERY_NAMESPACES_PARAMETER_NAME=my-namespaces"), "--no-prometheus.config-sync")
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		got := d.file(t)
		return got != "" && len(addresses(t, got)) == 6, "file: " + got
	})
	doc := d.file(t)
	for _, want := range []string{private1, private2, public, public2, httpNS, httpNS2, `"DNS_PRIVATE"`, `"DNS_PUBLIC"`, `"HTTP"`} {
		require.Contains(t, doc, want)
	}
	require.Equal(t, 1.0, d.metric(t, `ecs_sd_cloudmap_namespace_unresolved{namespace="missing-namespace"}`))
	d.waitReady(t) // an unknown namespace is a warning, not a failure
}

// TestUnhealthyInstances: instances marked UNHEALTHY through their custom health check are left
// out, unless asked for, and their health is a label.
func TestUnhealthyInstances(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	ns := m.CreateHTTPNamespace(t, "apps")
	svc, _ := m.CreateService(t, ns, "web", map[string]string{"METRICS_PORT": "3000"})
	m.RegisterTasks(t, svc, []testenv.Task{{ID: "good", IPv4: "10.0.0.1"}, {ID: "sick", IPv4: "10.0.0.2"}})
	m.SetHealth(t, svc, "sick", false)
	env := m.Env()

	dir := t.TempDir()
	code, _, stderr := run(t, withEnv(env, "CONFIG_FILE_DIR="+dir), "--once", "--cloudmap.namespace", "apps", "--no-prometheus.config-sync")
	require.Equal(t, 0, code, stderr)
	data, err := os.ReadFile(filepath.Join(dir, "ecs-services.json"))
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.1:3000"}, addresses(t, string(data)))

	code, _, stderr = run(t, withEnv(env, "CONFIG_FILE_DIR="+dir), "--once", "--cloudmap.namespace", "apps", "--no-prometheus.config-sync", "--cloudmap.include-unhealthy")
	require.Equal(t, 0, code, stderr)
	data, err = os.ReadFile(filepath.Join(dir, "ecs-services.json"))
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.1:3000", "10.0.0.2:3000"}, addresses(t, string(data)))
	require.Contains(t, string(data), `"__meta_cloudmap_health_status": "UNHEALTHY"`)
}
