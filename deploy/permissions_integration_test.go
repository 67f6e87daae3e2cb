//go:build integration

package deploy_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// runAs runs name with args as the user id (no supplementary groups, as in a container whose
// "user" is uid:gid) and returns its combined output and error.
func runAs(t *testing.T, id identity, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id.uid), Gid: uint32(id.gid), Groups: []uint32{}}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestPrometheusUserReadsTheSecretConfiguration runs the Prometheus task's file sharing for real,
// with the users of task-definitions/prometheus.json: a directory handed to ecs-sd as config-init
// hands /etc/config, ecs-sd (built binary, as its user) writing the configuration of a
// SecureString parameter on moto and the file_sd file into it, then Prometheus's user reading
// both. The configuration is 0640: the Prometheus image's default user (nobody, 65534:65534),
// in no group of ecs-sd's, cannot read it.
func TestPrometheusUserReadsTheSecretConfiguration(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Fatal("this test runs processes as the task definitions' users, which needs root")
	}
	task := prometheusTasks(t)["task-definitions/prometheus.json"]
	m := testenv.StartMoto(t)
	m.CreateHTTPNamespace(t, "apps")
	m.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "apps", ssmtypes.ParameterTypeString)
	const secret = "global: {scrape_interval: 15s}\n# basic_auth password: s3cret\n"
	m.PutParameter(t, "ECS-Prometheus-Configuration", secret, ssmtypes.ParameterTypeSecureString)

	// A directory every user may enter, as a task's volume is: the test's own temporary
	// directories are root's alone.
	root, err := os.MkdirTemp("", "ecs-sd-permissions-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	bin := filepath.Join(root, "ecs-sd")
	copyFile(t, testenv.BuildBinary(t, "cmd/ecs-sd"), bin, 0o755)
	config := filepath.Join(root, "config")
	owner := chownOf(t, task.initCommand, "/etc/config")
	for path, mode := range map[string]os.FileMode{root: 0o755, config: 0o755} {
		if err := os.MkdirAll(path, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(config, owner.uid, owner.gid); err != nil {
		t.Fatal(err)
	}

	env := append(testenv.AWSEnv(m.URL), "HOME="+root, "CONFIG_FILE_DIR="+config)
	if out, err := runAs(t, task.ecsSD, env, bin, "--once"); err != nil {
		t.Fatalf("ecs-sd as %v: %v\n%s", task.ecsSD, err, out)
	}
	promConfig := filepath.Join(config, "prometheus.yaml")
	st, err := os.Stat(promConfig)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 || st.Sys().(*syscall.Stat_t).Uid != uint32(task.ecsSD.uid) || st.Sys().(*syscall.Stat_t).Gid != uint32(task.ecsSD.gid) {
		t.Fatalf("prometheus.yaml: mode %v, owner %d:%d; want 0640 and ecs-sd's %v", st.Mode().Perm(),
			st.Sys().(*syscall.Stat_t).Uid, st.Sys().(*syscall.Stat_t).Gid, task.ecsSD)
	}

	for _, file := range []string{promConfig, filepath.Join(config, "ecs-services.json")} {
		out, err := runAs(t, task.prometheus, nil, "cat", file)
		if err != nil {
			t.Errorf("Prometheus's user %v cannot read %s: %v %s", task.prometheus, file, err, out)
		}
		if file == promConfig && out != secret {
			t.Errorf("Prometheus's user read %q, want %q", out, secret)
		}
	}
	nobody := identity{65534, 65534}
	out, err := runAs(t, nobody, nil, "cat", promConfig)
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("a user outside ecs-sd's group (%v) read the SecureString's configuration: %v %q", nobody, err, out)
	}
	if _, err := runAs(t, nobody, nil, "cat", filepath.Join(config, "ecs-services.json")); err != nil {
		t.Errorf("the file_sd file is for every user to read: %v", err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
