//go:build integration

package test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// The accounts of the multi-account tests: moto's default account (ecs-sd's own) and two member
// accounts whose roles ecs-sd assumes, each with its external id.
var (
	memberA = member{"111111111111", "arn:aws:iam::111111111111:role/ecs-sd-reader", "ext-a"}
	memberB = member{"222222222222", "arn:aws:iam::222222222222:role/ecs-sd-reader", "ext-b"}
	regions = []string{"us-east-1", "eu-west-1"}
)

type member struct{ account, role, externalID string }

// accountsConfig is the YAML configuration of ecs-sd for the own account and both members, in
// both regions.
const accountsConfig = `aws:
  regions: [us-east-1, eu-west-1]
  accounts:
    - role_arn: arn:aws:iam::111111111111:role/ecs-sd-reader
      external_id: ext-a
    - role_arn: arn:aws:iam::222222222222:role/ecs-sd-reader
      external_id: ext-b
prometheus_config:
  enabled: false
`

// pairFixture is one (account, region) of the fixture: a view of moto there and its Cloud Map
// service "web" (empty when the pair has no namespaces parameter).
type pairFixture struct {
	account, region string
	moto            *testenv.Moto
	service         string
}

// seedPairs makes, in every (account, region) pair, an HTTP namespace "apps" with a service "web"
// and one task of address 10.A.R.1:9100 (A the account's index, R the region's), and the
// namespaces parameter naming "apps" — except in skip, which has the namespace and its task but
// no parameter: ecs-sd finds no namespaces there.
func seedPairs(t *testing.T, m *testenv.Moto, skip string) []*pairFixture {
	t.Helper()
	var out []*pairFixture
	accounts := []member{{account: testenv.DefaultAccount}, memberA, memberB}
	for ai, acc := range accounts {
		for ri, region := range regions {
			p := &pairFixture{account: acc.account, region: region, moto: m.In(t, acc.role, region)}
			ns := p.moto.CreateHTTPNamespace(t, "apps")
			p.service, _ = p.moto.CreateService(t, ns, "web", map[string]string{"METRICS_PORT": "9100"})
			p.moto.RegisterTask(t, p.service, testenv.Task{ID: fmt.Sprintf("t-%d-%d", ai, ri), IPv4: pairIP(ai, ri, 1), Cluster: "c", Service: "web", Family: "web"})
			if acc.account+"/"+region != skip {
				p.moto.PutParameter(t, "ECS-ServiceDiscovery-Namespaces", "apps", ssmtypes.ParameterTypeString)
			}
			out = append(out, p)
		}
	}
	return out
}

func pairIP(account, region, n int) string { return fmt.Sprintf("10.%d.%d.%d", account+1, region+1, n) }

// startAccountsDaemon starts ecs-sd through proxy with accountsConfig and a 1 s interval.
func startAccountsDaemon(t *testing.T, proxy *testenv.Proxy) *daemon {
	t.Helper()
	cfgFile := filepath.Join(t.TempDir(), "ecs-sd.yml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(accountsConfig), 0o600))
	return startDaemon(t, testenv.AWSEnv(proxy.URL), "--config.file", cfgFile, "--refresh.interval=1s",
		"--aws.attempt-timeout=500ms", "--aws.call-timeout=2s")
}

// pairOfTargets returns each target's "account/region" labels, by address.
func pairOfTargets(t *testing.T, doc string) map[string]string {
	t.Helper()
	groups, err := targets.Unmarshal([]byte(doc))
	require.NoError(t, err)
	out := map[string]string{}
	for _, g := range groups {
		out[g.Address()] = string(g.Labels[targets.LabelAccountID]) + "/" + string(g.Labels[targets.LabelRegion])
	}
	return out
}

// TestAccountsAndRegions: three accounts (ecs-sd's own and two whose roles it assumes, each with
// its external id) in two regions; every pair's targets are found and labelled with their
// account and region, a pair without the namespaces parameter has none (a warning, not a
// failure), and the pair metrics are labelled. Then every call signed for eu-west-1 fails: its
// targets are all kept while a new task in us-east-1 appears.
func TestAccountsAndRegions(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	pairs := seedPairs(t, m, memberB.account+"/eu-west-1")
	proxy := testenv.NewProxy(t, m.URL)
	var mu sync.Mutex
	var assumed []url.Values // the AssumeRole requests ecs-sd sends
	proxy.Inject(func(r testenv.Request) bool {
		if r.Op == "AssumeRole" {
			form, err := url.ParseQuery(string(r.Body))
			require.NoError(t, err)
			mu.Lock()
			assumed = append(assumed, form)
			mu.Unlock()
		}
		return false // recorded, not answered
	}, testenv.AWSError("unused"))

	d := startAccountsDaemon(t, proxy)
	d.waitReady(t)
	want := map[string]string{}
	for i, p := range pairs {
		if p.account == memberB.account && p.region == "eu-west-1" {
			continue // no namespaces parameter
		}
		want[pairIP(i/2, i%2, 1)+":9100"] = p.account + "/" + p.region
	}
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		got := pairOfTargets(t, d.file(t))
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("targets %v, want %v", got, want)
	})
	_, body, err := d.get("/prometheus-targets")
	require.NoError(t, err)
	require.Equal(t, want, pairOfTargets(t, body), "http_sd and file_sd agree")

	// The external id of each role, and the session name, on every AssumeRole.
	mu.Lock()
	byRole := map[string][]string{}
	for _, f := range assumed {
		byRole[f.Get("RoleArn")] = append(byRole[f.Get("RoleArn")], f.Get("ExternalId"))
		require.Equal(t, "ecs-sd", f.Get("RoleSessionName"))
	}
	mu.Unlock()
	require.Len(t, byRole, 2, "both roles assumed: %v", byRole)
	for _, acc := range []member{memberA, memberB} {
		require.NotEmpty(t, byRole[acc.role], acc.role)
		for _, id := range byRole[acc.role] {
			require.Equal(t, acc.externalID, id, acc.role)
		}
	}

	// Metrics by pair; the pair without the parameter succeeded, with no target, and said so once.
	require.Equal(t, 1.0, d.metric(t, `ecs_sd_targets{account="111111111111",region="eu-west-1",source="cloudmap"}`))
	require.Equal(t, 0.0, d.metric(t, `ecs_sd_targets{account="222222222222",region="eu-west-1",source="cloudmap"}`))
	require.Equal(t, 0.0, d.metric(t, `ecs_sd_refresh_failures_total{account="222222222222",region="eu-west-1",source="cloudmap"}`))
	require.Equal(t, 1, strings.Count(d.logs.String(), "No Cloud Map namespaces parameter in this account and region"), d.logs.String())
	require.Positive(t, d.metric(t, `ecs_sd_aws_api_calls_total{account="111111111111",operation="DiscoverInstances",outcome="success",region="eu-west-1",service="ServiceDiscovery"}`))

	// eu-west-1 goes away: every call signed for it is reset. Its targets stay; a new task in
	// us-east-1 appears meanwhile.
	proxy.Inject(func(r testenv.Request) bool { return r.Region == "eu-west-1" }, testenv.ResetConnection())
	failures := d.metric(t, `ecs_sd_refresh_failures_total{account="111111111111",region="eu-west-1",source="cloudmap"}`)
	own := pairs[0]
	require.Equal(t, "us-east-1", own.region)
	own.moto.RegisterTask(t, own.service, testenv.Task{ID: "t-new", IPv4: pairIP(0, 0, 2), Cluster: "c", Service: "web", Family: "web"})
	want[pairIP(0, 0, 2)+":9100"] = testenv.DefaultAccount + "/us-east-1"
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		got := pairOfTargets(t, d.file(t))
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("targets %v, want %v", got, want)
	})
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		now := d.metric(t, `ecs_sd_refresh_failures_total{account="111111111111",region="eu-west-1",source="cloudmap"}`)
		return now > failures, fmt.Sprintf("eu-west-1 failures %v, were %v", now, failures)
	})
	require.Equal(t, want, pairOfTargets(t, d.file(t)), "eu-west-1's targets kept")
	require.Contains(t, d.logs.String(), `region=eu-west-1`, "the failing pair is named in the logs")
}

// TestDeniedAccount: a role that cannot be assumed fails its own pairs only: the other pairs'
// targets are published, readiness names the pairs that have not succeeded, and once the role
// can be assumed its targets arrive and ecs-sd is ready.
func TestDeniedAccount(t *testing.T) {
	t.Parallel()
	m := testenv.StartMoto(t)
	seedPairs(t, m, "")
	proxy := testenv.NewProxy(t, m.URL)
	proxy.FailWhen(func(op string, body []byte) bool {
		return op == "AssumeRole" && strings.Contains(string(body), memberB.account)
	}, "AccessDenied")

	d := startAccountsDaemon(t, proxy)
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		got := pairOfTargets(t, d.file(t))
		return len(got) == 4, fmt.Sprintf("targets %v, want the 4 of the own account and %s", got, memberA.account)
	})
	for _, pair := range pairOfTargets(t, d.file(t)) {
		require.False(t, strings.HasPrefix(pair, memberB.account), pair)
	}
	code, body, err := d.get("/-/ready")
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, code)
	for _, region := range regions {
		require.Contains(t, body, "cloudmap in "+memberB.account+"/"+region)
	}
	require.NotContains(t, body, memberA.account)
	require.Positive(t, d.metric(t, `ecs_sd_refresh_failures_total{account="222222222222",region="us-east-1",source="cloudmap"}`))
	require.True(t, slices.ContainsFunc(strings.Split(d.logs.String(), "\n"), func(l string) bool {
		return strings.Contains(l, "account=222222222222") && strings.Contains(l, "AccessDenied")
	}), "the denied pair's failure is logged with its account:\n%s", d.logs.String())

	proxy.ClearFaults()
	d.waitReady(t)
	testenv.Eventually(t, 20*time.Second, 100*time.Millisecond, func() (bool, string) {
		got := pairOfTargets(t, d.file(t))
		return len(got) == 6, fmt.Sprintf("targets %v, want 6", got)
	})
}
