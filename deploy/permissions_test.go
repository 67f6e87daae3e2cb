package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// identity is a container's user: "uid:gid", as a container definition's "user" gives it.
type identity struct{ uid, gid int }

func parseIdentity(s string) (identity, error) {
	u, g, ok := strings.Cut(s, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil {
		return identity{}, fmt.Errorf("user %q: want numeric uid:gid", s)
	}
	return identity{uid, gid}, nil
}

// canRead reports whether who may read a file that owner created with mode perm, by the POSIX
// rules: the owner bits for the owner's uid, the group bits for its group (ecs-sd's files get its
// primary gid), the other bits for everyone else.
func canRead(who, owner identity, perm os.FileMode) bool {
	switch {
	case who.uid == 0:
		return true
	case who.uid == owner.uid:
		return perm&0o400 != 0
	case who.gid == owner.gid:
		return perm&0o040 != 0
	default:
		return perm&0o004 != 0
	}
}

// Modes ecs-sd writes its files with (internal/filesd, internal/promconfig).
const (
	fileSDMode           os.FileMode = 0o644
	secretPromConfigMode os.FileMode = 0o640
)

// prometheusTask is what the permission check needs of the Prometheus task definition.
type prometheusTask struct {
	ecsSD, prometheus identity
	initCommand       string // config-init's command: it hands the volumes to their users
}

// prometheusTasks returns the Prometheus task definition of both deploy paths: the CLI's JSON and
// the CloudFormation template's.
func prometheusTasks(t *testing.T) map[string]prometheusTask {
	t.Helper()
	data, err := os.ReadFile("task-definitions/prometheus.json")
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON map[string]any
	if err := json.Unmarshal(data, &fromJSON); err != nil {
		t.Fatalf("task-definitions/prometheus.json: %v", err)
	}
	fromCFN := lowerKeys(loadTemplate(t).resource(t, "PrometheusTaskDefinition")).(map[string]any)
	out := map[string]prometheusTask{}
	for where, def := range map[string]map[string]any{"task-definitions/prometheus.json": fromJSON, templatePath: fromCFN} {
		var task prometheusTask
		for _, c := range asSlice(def["containerDefinitions"]) {
			c := c.(map[string]any)
			name, _ := c["name"].(string)
			user, _ := c["user"].(string)
			switch name {
			case "ecs-sd", "prometheus":
				id, err := parseIdentity(user)
				if err != nil {
					t.Fatalf("%s: container %s: %v", where, name, err)
				}
				if name == "ecs-sd" {
					task.ecsSD = id
				} else {
					task.prometheus = id
				}
			case "config-init":
				for _, part := range asSlice(c["command"]) {
					task.initCommand += fmt.Sprint(part) + " "
				}
			}
		}
		out[where] = task
	}
	return out
}

// chownOf returns the uid:gid that command gives path with chown.
func chownOf(t *testing.T, command, path string) identity {
	t.Helper()
	m := regexp.MustCompile(`chown (\d+:\d+) ` + regexp.QuoteMeta(path) + `\b`).FindStringSubmatch(command)
	if m == nil {
		t.Fatalf("config-init does not chown %s: %q", path, command)
	}
	id, err := parseIdentity(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestPrometheusReadsWhatEcsSdWrites checks the users of the Prometheus task (both deploy
// paths): ecs-sd owns the shared configuration volume, Prometheus owns its WAL volume, and
// Prometheus can read both files ecs-sd writes there, the Prometheus configuration of a
// SecureString parameter (0640, no world access) included, because it runs in ecs-sd's group.
func TestPrometheusReadsWhatEcsSdWrites(t *testing.T) {
	t.Parallel()
	for where, task := range prometheusTasks(t) {
		if task.ecsSD.uid == 0 || task.prometheus.uid == 0 {
			t.Errorf("%s: ecs-sd (%v) and Prometheus (%v) must not run as root", where, task.ecsSD, task.prometheus)
		}
		if got := chownOf(t, task.initCommand, "/etc/config"); got.uid != task.ecsSD.uid {
			t.Errorf("%s: /etc/config is given to uid %d, ecs-sd runs as %d", where, got.uid, task.ecsSD.uid)
		}
		if got := chownOf(t, task.initCommand, "/prometheus"); got.uid != task.prometheus.uid {
			t.Errorf("%s: /prometheus is given to uid %d, Prometheus runs as %d", where, got.uid, task.prometheus.uid)
		}
		for file, mode := range map[string]os.FileMode{"ecs-services.json": fileSDMode, "prometheus.yaml (SecureString)": secretPromConfigMode} {
			if !canRead(task.prometheus, task.ecsSD, mode) {
				t.Errorf("%s: Prometheus (%v) cannot read %s, mode %v, written by ecs-sd (%v)", where, task.prometheus, file, mode, task.ecsSD)
			}
		}
	}
}

func TestCanRead(t *testing.T) {
	t.Parallel()
	ecsSD := identity{65532, 65532}
	for _, tc := range []struct {
		who  identity
		perm os.FileMode
		want bool
	}{
		{identity{65534, 65532}, 0o640, true},  // in the group
		{identity{65534, 65534}, 0o640, false}, // Prometheus's image default: nobody
		{identity{65534, 65534}, 0o644, true},
		{identity{65532, 1}, 0o600, true}, // the owner
		{identity{65534, 65532}, 0o600, false},
		{identity{0, 0}, 0o600, true},
	} {
		if got := canRead(tc.who, ecsSD, tc.perm); got != tc.want {
			t.Errorf("canRead(%v, %v, %v) = %v, want %v", tc.who, ecsSD, tc.perm, got, tc.want)
		}
	}
}
