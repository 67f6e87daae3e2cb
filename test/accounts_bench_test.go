//go:build integration

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// Fixture of the accounts benchmark: 10 000 Cloud Map targets spread over ecs-sd's own account
// and two member accounts, each in two regions: in each of the 6 pairs an HTTP namespace "apps"
// of 10 services, 1 667 or 1 666 tasks in all, and the namespaces parameter.
const (
	benchTargets         = 10000
	benchServicesPerPair = 10
)

// BenchmarkAccounts10000Targets measures the real ecs-sd binary discovering in 3 accounts × 2
// regions on moto (the two member accounts' roles assumed with their external ids): the time from
// its start to the first complete list (all 10 000 targets in the file_sd file, /-/ready 200),
// the AWS calls each pair makes per steady-state cycle, and the peak resident set. Loading the
// fixture takes about 30 s. Results are recorded in docs/benchmarks.md.
//
//	go test -tags integration ./test -run '^$' -bench Accounts10000 -benchtime 1x -v
func BenchmarkAccounts10000Targets(b *testing.B) {
	m := testenv.StartMoto(b)
	loadAccountsFixture(b, m)
	bin := buildRelease(b)
	env := slices.DeleteFunc(m.Env(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return name == "GOGC" || name == "GOMEMLIMIT" || name == "GODEBUG"
	})
	cfgFile := filepath.Join(b.TempDir(), "ecs-sd.yml")
	if err := os.WriteFile(cfgFile, []byte(accountsConfig), 0o600); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		first, calls, hwm := runAccountsDaemon(b, bin, env, cfgFile)
		b.ReportMetric(first.Seconds(), "first-discovery-s")
		b.ReportMetric(mib(hwm), "peak-RSS-MiB")
		var total float64
		for pair, perCycle := range calls {
			b.Logf("steady-state calls per cycle in %s: %.1f", pair, perCycle)
			total += perCycle
		}
		b.ReportMetric(total/float64(len(calls)), "calls/pair/cycle")
	}
}

// loadAccountsFixture creates the benchmark's namespaces, services, tasks and parameters.
func loadAccountsFixture(b *testing.B, m *testenv.Moto) {
	b.Helper()
	start := time.Now()
	accounts := []member{{account: testenv.DefaultAccount}, memberA, memberB}
	pairs := len(accounts) * len(regions)
	n := 0
	for ai, acc := range accounts {
		for ri, region := range regions {
			v := m.In(b, acc.role, region)
			ns := v.CreateHTTPNamespace(b, "apps")
			p := ai*len(regions) + ri
			inPair := benchTargets / pairs
			if p < benchTargets%pairs {
				inPair++
			}
			for s := range benchServicesPerPair {
				svc, _ := v.CreateService(b, ns, fmt.Sprintf("service-%02d", s), map[string]string{"METRICS_PORT": "9100"})
				count := inPair / benchServicesPerPair
				if s < inPair%benchServicesPerPair {
					count++
				}
				tasks := make([]testenv.Task, count)
				for i := range tasks {
					tasks[i] = testenv.Task{ID: fmt.Sprintf("%032x", n), IPv4: fmt.Sprintf("10.%d.%d.%d", 1+n/62500, n/250%250, n%250+1),
						Cluster: "c", Service: fmt.Sprintf("Service%02d", s), Family: "f", AZ: region + "a"}
					n++
				}
				v.RegisterTasks(b, svc, tasks)
			}
			v.PutParameter(b, "ECS-ServiceDiscovery-Namespaces", "apps", ssmtypes.ParameterTypeString)
		}
	}
	if n != benchTargets {
		b.Fatalf("fixture of %d targets, want %d", n, benchTargets)
	}
	b.Logf("fixture: %d targets in %d pairs loaded into moto in %v", n, pairs, time.Since(start).Round(time.Second))
}

// pairCalls matches the AWS call counters of one pair: account, then region among the labels.
var pairCalls = regexp.MustCompile(`^ecs_sd_aws_api_calls_total\{account="(\d+)",operation="\w+",outcome="\w+",region="([a-z0-9-]+)",service="\w+"\} (\S+)$`)

// ownEastCalls matches the AWS call counters of the own account in us-east-1, by operation.
var ownEastCalls = regexp.MustCompile(`^ecs_sd_aws_api_calls_total\{account="(` + testenv.DefaultAccount + `)",operation="(\w+)",outcome="\w+",region="us-east-1",service="\w+"\} (\S+)$`)

// pairCycles matches the Cloud Map discovery counts of one pair.
var pairCycles = regexp.MustCompile(`^ecs_sd_refresh_duration_seconds_count\{account="(\d+)",region="([a-z0-9-]+)",source="cloudmap"\} (\S+)$`)

// pairSums returns the sums of the samples re matches on the daemon's /metrics, by
// "account/region".
func pairSums(b *testing.B, d *daemon, re *regexp.Regexp) map[string]float64 {
	b.Helper()
	_, body, err := d.get("/metrics")
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				b.Fatal(err)
			}
			out[m[1]+"/"+m[2]] += v
		}
	}
	return out
}

// runAccountsDaemon runs the daemon with cfgFile (refresh every 5 s) and returns the time to the
// first complete list, each pair's AWS calls per cycle over 4 cycles after it, and the peak
// resident set.
func runAccountsDaemon(b *testing.B, bin string, env []string, cfgFile string) (first time.Duration, perCycle map[string]float64, hwm int64) {
	b.Helper()
	dir := b.TempDir()
	start := time.Now()
	d, stop := startBinary(b, bin, env, dir, "--config.file", cfgFile, "--refresh.interval", "5s")
	defer stop()
	testenv.Eventually(b, 3*time.Minute, 20*time.Millisecond, func() (bool, string) {
		n := countTargets(b, filepath.Join(dir, "ecs-services.json"))
		code, _, _ := d.get("/-/ready")
		return n == benchTargets && code == 200, fmt.Sprintf("%d targets in the file, want %d; ready %d", n, benchTargets, code)
	})
	first = time.Since(start)

	// Steady state: from the end of a cycle of every pair to the end of 4 more. Every pair's
	// discovery begins at the same tick; each snapshot is taken once all have ended.
	waitCycles := func(least map[string]float64) map[string]float64 {
		var now map[string]float64
		testenv.Eventually(b, 2*time.Minute, 50*time.Millisecond, func() (bool, string) {
			now = pairSums(b, d, pairCycles)
			for pair, c := range least {
				if now[pair] < c {
					return false, fmt.Sprintf("%s: %v cycles, want %v", pair, now[pair], c)
				}
			}
			return len(now) == 6, fmt.Sprintf("cycles %v", now)
		})
		return now
	}
	c0 := waitCycles(map[string]float64{})
	next := map[string]float64{}
	for pair, c := range c0 {
		next[pair] = c + 1
	}
	c1 := waitCycles(next)
	calls1, ops1 := pairSums(b, d, pairCalls), pairSums(b, d, ownEastCalls)
	for pair, c := range c1 {
		next[pair] = c + 4
	}
	c2 := waitCycles(next)
	calls2, ops2 := pairSums(b, d, pairCalls), pairSums(b, d, ownEastCalls)
	cycles := c2[testenv.DefaultAccount+"/us-east-1"] - c1[testenv.DefaultAccount+"/us-east-1"]
	for op, n := range ops2 {
		if delta := n - ops1[op]; delta > 0 {
			b.Logf("steady-state %s per cycle in %s/us-east-1: %.1f", op[strings.Index(op, "/")+1:], testenv.DefaultAccount, delta/cycles)
		}
	}
	perCycle = map[string]float64{}
	for pair := range c1 {
		perCycle[pair] = (calls2[pair] - calls1[pair]) / (c2[pair] - c1[pair])
	}
	return first, perCycle, procStatus(d.cmd.Process.Pid)["VmHWM"]
}
