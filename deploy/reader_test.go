package deploy_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// sourcePackages are the daemon's packages whose AWS calls a member account's reader role grants:
// the discovery sources and the SSM parameter reader (the namespace list).
var sourcePackages = []string{"internal/cloudmap/", "internal/ecs/", "internal/ssmparam/"}

// sourceActions returns the IAM actions of the sources' calls, with the ECS source's or not.
func sourceActions(t *testing.T, withECS bool) []string {
	t.Helper()
	var out []string
	for action, at := range codeActions(t) {
		fromSource := slices.ContainsFunc(at, func(where string) bool {
			return slices.ContainsFunc(sourcePackages, func(p string) bool { return strings.HasPrefix(where, p) })
		})
		ecsOnly := strings.HasPrefix(action, "ecs:") || strings.HasPrefix(action, "ec2:")
		if fromSource && (withECS || !ecsOnly) {
			out = append(out, action)
		}
	}
	slices.Sort(out)
	return out
}

// TestReaderRoleIsLeastPrivilege: the member account's reader role grants exactly the read calls
// of ecs-sd's sources (the ECS source's only with EcsApiDiscovery), on its own account only,
// and trusts only the monitoring account's task role, with the external id.
func TestReaderRoleIsLeastPrivilege(t *testing.T) {
	t.Parallel()
	c := loadTemplateFile(t, readerTemplatePath)
	const taskRole = "arn:aws:iam::222222222222:role/ecs-sd-PrometheusTaskRole-ABC"
	for _, withECS := range []bool{false, true} {
		params := map[string]string{"MonitoringTaskRoleArn": taskRole, "ExternalId": "my-external-id"}
		if withECS {
			params["EcsApiDiscovery"] = "Enabled"
		}
		s := newStack(t, c, "reader", params)
		role := s.resource("ReaderRole")

		trust := role["AssumeRolePolicyDocument"].(map[string]any)["Statement"].([]any)
		if len(trust) != 1 {
			t.Fatalf("trust policy has %d statements, want 1", len(trust))
		}
		st := trust[0].(map[string]any)
		principal := st["Principal"].(map[string]any)
		if len(principal) != 1 || strs(principal["AWS"]) == nil || !slices.Equal(strs(principal["AWS"]), []string{taskRole}) {
			t.Errorf("trusted principal %v, want only the task role %s", principal, taskRole)
		}
		if st["Action"] != "sts:AssumeRole" {
			t.Errorf("trust action %v, want sts:AssumeRole", st["Action"])
		}
		cond, _ := st["Condition"].(map[string]any)
		eq, _ := cond["StringEquals"].(map[string]any)
		if len(cond) != 1 || eq["sts:ExternalId"] != "my-external-id" {
			t.Errorf("trust condition %v, want StringEquals sts:ExternalId = the external id", cond)
		}

		granted := map[string]bool{}
		for _, sts := range statements(t, s, "ReaderRole") {
			for _, st := range sts {
				if st["Effect"] != "Allow" {
					t.Errorf("statement %v: only Allow statements are expected", st["Sid"])
				}
				for _, a := range strs(st["Action"]) {
					granted[a] = true
				}
				for _, r := range strs(st["Resource"]) {
					if r != "*" && !strings.Contains(r, ":"+s.ref("AWS::AccountId").(string)+":") {
						t.Errorf("statement %v: resource %s is not in the role's own account", st["Sid"], r)
					}
				}
			}
		}
		if got, want := slices.Sorted(maps.Keys(granted)), sourceActions(t, withECS); !slices.Equal(got, want) {
			t.Errorf("EcsApiDiscovery=%v: the reader role grants %v, the sources call %v", withECS, got, want)
		}
	}
}

// TestMemberAccountsInTheStack: with MemberAccountRoleArns the task role may assume exactly those
// roles, and ecs-sd is given each with the external id; without, neither.
func TestMemberAccountsInTheStack(t *testing.T) {
	t.Parallel()
	c := loadTemplate(t)
	roles := []string{"arn:aws:iam::111111111111:role/ecs-sd-reader", "arn:aws:iam::333333333333:role/team/ecs-sd-reader"}
	on := newStack(t, c, "ecs-sd", map[string]string{"MemberAccountRoleArns": strings.Join(roles, ","), "MemberAccountExternalId": "my-external-id"})
	policy := statements(t, on, "PrometheusTaskRole")["member-account-discovery"]
	if len(policy) != 1 || policy[0]["Action"] != "sts:AssumeRole" || !slices.Equal(strs(policy[0]["Resource"]), roles) {
		t.Errorf("member-account-discovery %v, want sts:AssumeRole on exactly %v", policy, roles)
	}
	cmd := ecsSdCommand(t, on)
	want := []string{"--aws.account-external-id=my-external-id", "--aws.account-role-arn=" + roles[0], "--aws.account-role-arn=" + roles[1]}
	if !slices.Equal(cmd[len(cmd)-3:], want) {
		t.Errorf("ecs-sd command %v, want it to end with %v", cmd, want)
	}

	off := newStack(t, c, "ecs-sd", nil)
	if policy := statements(t, off, "PrometheusTaskRole")["member-account-discovery"]; policy != nil {
		t.Errorf("without member accounts: member-account-discovery %v", policy)
	}
	if slices.ContainsFunc(ecsSdCommand(t, off), func(a string) bool { return strings.HasPrefix(a, "--aws.account") }) {
		t.Errorf("without member accounts: ecs-sd command %v", ecsSdCommand(t, off))
	}
}
