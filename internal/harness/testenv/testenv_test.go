package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var webTasks = []Task{
	{ID: "task1", IPv4: "10.0.0.1", Port: 8080, Cluster: "prod", Service: "web", Family: "web",
		AZ: "us-east-1a", EC2InstanceID: "i-0123", Extra: map[string]string{"custom": "x"}},
	{ID: "task2", IPv4: "10.0.0.2", Port: 8080, Cluster: "prod", Service: "web", Family: "web", AZ: "us-east-1b"},
	{ID: "task3", Cluster: "prod", Service: "web", Family: "web"}, // no IP, no port
}

func TestTaskAttributes(t *testing.T) {
	assert.Equal(t, map[string]string{
		"AWS_INSTANCE_IPV4":          "10.0.0.1",
		"AWS_INSTANCE_PORT":          "8080",
		"AVAILABILITY_ZONE":          "us-east-1a",
		"AWS_INIT_HEALTH_STATUS":     "HEALTHY",
		"ECS_CLUSTER_NAME":           "prod",
		"ECS_SERVICE_NAME":           "web",
		"ECS_TASK_DEFINITION_FAMILY": "web",
		"REGION":                     "us-east-1",
		"EC2_INSTANCE_ID":            "i-0123",
		"custom":                     "x",
	}, webTasks[0].Attributes())
	assert.Equal(t, map[string]string{
		"AWS_INSTANCE_IPV6":      "fd00::1",
		"AWS_INIT_HEALTH_STATUS": "HEALTHY",
		"REGION":                 "us-east-1",
	}, Task{ID: "v6", IPv6: "fd00::1"}.Attributes())
}

func TestEnv(t *testing.T) {
	t.Setenv("AWS_PROFILE", "prod")
	t.Setenv("AWS_SESSION_TOKEN", "secret")
	t.Setenv("AWS_ENDPOINT_URL_SSM", "http://elsewhere")
	t.Setenv("AWS_REGION", "eu-west-1")
	bin := BuildBinary(t, "internal/harness/testenv/testdata/printenv")
	assert.Equal(t, bin, BuildBinary(t, "internal/harness/testenv/testdata/printenv"), "built once")

	cmd := exec.Command(bin)
	cmd.Env = AWSEnv("http://127.0.0.1:1")
	out, err := cmd.Output()
	require.NoError(t, err)
	vars := strings.Split(strings.TrimSpace(string(out)), "\n")
	assert.Subset(t, vars, []string{
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL=http://127.0.0.1:1", "AWS_CA_BUNDLE=" + os.Getenv("AWS_CA_BUNDLE"),
	})
	for _, v := range vars {
		name, _, _ := strings.Cut(v, "=")
		assert.NotContains(t, []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_SSM"}, name)
	}
}

func TestBuildBinaryFailure(t *testing.T) {
	_, err := buildBinary("internal/harness/testenv/testdata/missing")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "go build internal/harness/testenv/testdata/missing")
}

// fakeTB records Fatalf instead of failing, for testing Eventually's failure path.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestEventually(t *testing.T) {
	calls := 0
	Eventually(t, time.Second, time.Millisecond, func() (bool, string) {
		calls++
		return calls == 3, "not yet"
	})
	assert.Equal(t, 3, calls)

	fake := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(fake, 50*time.Millisecond, 10*time.Millisecond, func() (bool, string) { return false, "still 0" })
	}()
	<-done
	assert.Equal(t, "condition not met within 50ms: still 0", fake.fatal)
}

func TestMissingTool(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := startMoto(t.TempDir())
	assert.ErrorContains(t, err, "moto_server not found on PATH")
}
