//go:build integration

package test

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/events"
	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// benchEnv returns the value of an environment variable that tunes a benchmark, parsed by parse,
// or def when unset.
func benchEnv[T any](b *testing.B, name string, def T, parse func(string) (T, error)) T {
	b.Helper()
	v, ok := os.LookupEnv(name)
	if !ok {
		return def
	}
	out, err := parse(v)
	require.NoError(b, err, "%s=%q", name, v)
	return out
}

// BenchmarkEventLatency measures, for the events of new targets, the time from the message's
// arrival in the queue (the return of the PutEvents call that a real EventBridge rule on moto
// delivers to the queue) until the file_sd file holds the new target, and until the http_sd
// answer does: ECS task state changes (ECS source, each a new RUNNING task on moto) and Cloud Map
// registrations (Cloud Map source, each RegisterInstance announced by its CloudTrail event).
// Events are sent one after the other, each once the last one is in both outputs;
// ECS_SD_BENCH_EVENTS sets how many (default 200). The outputs are read every 2 ms. ecs-sd runs
// with its default coalescing window (150 ms) and an hour between resyncs. docs/benchmarks.md records the result.
func BenchmarkEventLatency(b *testing.B) {
	n := benchEnv(b, "ECS_SD_BENCH_EVENTS", 200, strconv.Atoi)
	b.Run("source=ecs", func(b *testing.B) {
		r := newEventRig(b)
		r.cluster(b, "shop", "cart")
		first := r.run(b, "shop", "cart", r.def)
		q := r.sqsMoto.CreateEventQueue(b, "events", nil, testenv.ECSTaskEventPattern)
		d := startEventDaemon(b, r, q, r.sqsMoto.URL, "shop", "1h", []string{first.target})
		for b.Loop() {
			measureLatency(b, d.daemon, n, func(i int) (string, func()) {
				task := r.run(b, "shop", "cart", r.def)
				ev := task.event(b, 2, "RUNNING", "RUNNING")
				return task.target, func() { q.Put(b, ev) }
			})
		}
		require.Equal(b, 1, d.ecs.Calls()["DescribeTasks"], "one DescribeTasks, of the start-up discovery")
	})
	b.Run("source=cloudmap", func(b *testing.B) {
		m := testenv.StartMoto(b)
		ns := m.CreateHTTPNamespace(b, "apps")
		service, _ := m.CreateService(b, ns, "web", nil)
		m.RegisterTask(b, service, testenv.Task{ID: "task-0", IPv4: "10.1.0.1", Port: 8080, Cluster: "apps", Service: "web", Family: "web"})
		q := m.CreateEventQueue(b, "events", nil, testenv.CloudMapEventPattern)
		d := startDaemon(b, testenv.AWSEnv(m.URL), "--refresh.interval=1h", "--events.queue-url="+q.URL,
			"--cloudmap.namespace=apps", "--no-prometheus.config-sync")
		waitOutputs(b, d, []string{"10.1.0.1:8080"}, 30*time.Second)
		for b.Loop() {
			measureLatency(b, d, n, func(i int) (string, func()) {
				id, ip := fmt.Sprintf("task-%d", i+1), fmt.Sprintf("10.1.%d.%d", (i+1)/250, (i+1)%250+1)
				m.RegisterTask(b, service, testenv.Task{ID: id, IPv4: ip, Port: 8080, Cluster: "apps", Service: "web", Family: "web"})
				ev := testenv.CloudMapCall(b, events.OpRegisterInstance, service, id)
				return ip + ":8080", func() { q.Put(b, ev) }
			})
		}
	})
}

// measureLatency makes n changes one after the other: next(i) prepares the i-th (untimed) and
// returns its new target and the call that announces it; the time from that call's return to
// the target's arrival in the file and in the http_sd answer is measured. It reports the p50
// and p99 of both.
func measureLatency(b *testing.B, d *daemon, n int, next func(i int) (target string, announce func())) {
	b.Helper()
	var toFile, toHTTPSD []time.Duration
	for i := range n {
		target, announce := next(i)
		quoted := `"` + target + `"`
		announce()
		sent := time.Now()
		var inFile, inHTTPSD time.Duration
		for inFile == 0 || inHTTPSD == 0 {
			if time.Since(sent) > 10*time.Second {
				b.Fatalf("%s not in both outputs 10 s after its event (file after %v, http_sd after %v)", target, inFile, inHTTPSD)
			}
			if inFile == 0 {
				if data, err := os.ReadFile(filepath.Join(d.Dir, "ecs-services.json")); err == nil && strings.Contains(string(data), quoted) {
					inFile = time.Since(sent)
				}
			}
			if inHTTPSD == 0 && strings.Contains(httpSDAnswer(b, d), quoted) {
				inHTTPSD = time.Since(sent)
			}
			time.Sleep(2 * time.Millisecond)
		}
		toFile, toHTTPSD = append(toFile, inFile), append(toHTTPSD, inHTTPSD)
	}
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"file", toFile}, {"http_sd", toHTTPSD}} {
		slices.Sort(m.d)
		p50, p99 := percentile(m.d, 50), percentile(m.d, 99)
		b.Logf("%d events, to the %s: p50 %v, p99 %v, max %v", n, m.name, p50.Round(time.Millisecond), p99.Round(time.Millisecond), m.d[len(m.d)-1].Round(time.Millisecond))
		b.ReportMetric(p50.Seconds(), "s-p50-"+m.name)
		b.ReportMetric(p99.Seconds(), "s-p99-"+m.name)
	}
}

// httpSDAnswer returns the body of the daemon's http_sd answer ("" on an error).
func httpSDAnswer(b *testing.B, d *daemon) string {
	b.Helper()
	resp, err := http.Get(d.URL + "/prometheus-targets")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(body)
}

// percentile returns the p-th percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 · n)
	return sorted[max(rank, 1)-1]
}

// BenchmarkIdleCalls1000Tasks counts the AWS calls of ecs-sd over an idle fleet of 1 000 tasks
// (10 ECS services of 100 awsvpc tasks, on moto) over the same window after every daemon finished
// its first discovery (ECS_SD_BENCH_WINDOW, default 60s): in event mode with 5 min between
// resyncs, as the documentation suggests; and in poll mode (the default 30 s interval). Every
// call goes through a counting proxy, ReceiveMessage too. After the window one new task is
// announced by its event, and the time until each daemon's file holds it is measured: how fresh
// the first change after a quiet spell is. It logs the calls per operation and per minute;
// docs/benchmarks.md records the result.
func BenchmarkIdleCalls1000Tasks(b *testing.B) {
	window := benchEnv(b, "ECS_SD_BENCH_WINDOW", time.Minute, time.ParseDuration)
	r := newEventRig(b)
	const cluster, services, perService = "fleet", 10, 100
	r.f.CreateCluster(b, cluster, nil)
	for i := range services {
		service := fmt.Sprintf("svc-%d", i)
		r.f.CreateService(b, cluster, service, r.def, nil)
		for range perService / 10 { // RunTask starts at most 10 tasks
			r.f.RunTask(b, &awsecs.RunTaskInput{Cluster: aws.String(cluster), TaskDefinition: &r.def, Count: aws.Int32(10),
				LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: r.network.AWSVPC(), Group: aws.String("service:" + service)})
		}
	}
	eventMode := func(name string, args ...string) *eventDaemon {
		q := r.sqsMoto.CreateEventQueue(b, name, nil, testenv.ECSTaskEventPattern)
		sqs := testenv.NewProxy(b, r.sqsMoto.URL)
		d := startECSDaemon(b, r, sqs.URL, append([]string{"--refresh.interval=5m", "--events.queue-url=" + q.URL, "--ecs.cluster=" + cluster}, args...)...)
		d.q, d.sqs = q, sqs
		return d
	}
	modes := []struct {
		name string
		d    *eventDaemon
	}{
		{"event mode, 5m resync", eventMode("events")},
		{"poll mode, 30s interval", startECSDaemon(b, r, "", "--ecs.cluster="+cluster)},
	}
	for _, m := range modes {
		m.d.waitReady(b)
		testenv.Eventually(b, time.Minute, 100*time.Millisecond, func() (bool, string) {
			file, httpSD, _ := m.d.outputs(b)
			return len(file) >= services*perService-10 && len(file) == len(httpSD), fmt.Sprintf("%s: %d targets in the file, %d in http_sd", m.name, len(file), len(httpSD))
		})
	}
	perMinute := func(n int) float64 { return float64(n) * time.Minute.Seconds() / window.Seconds() }
	for b.Loop() {
		for _, m := range modes {
			m.d.ecs.ResetCalls()
			if m.d.sqs != nil {
				m.d.sqs.ResetCalls()
			}
		}
		failures := make([]float64, len(modes))
		for i, m := range modes {
			failures[i] = max(m.d.metric(b, "ecs_sd_events_receive_errors_total"), 0)
		}
		time.Sleep(window)
		for i, m := range modes {
			ecs := m.d.ecs.Calls()
			calls := maps.Clone(ecs)
			if m.d.sqs != nil {
				maps.Copy(calls, m.d.sqs.Calls())
			}
			var parts []string
			for _, op := range slices.Sorted(maps.Keys(calls)) {
				parts = append(parts, fmt.Sprintf("%d %s", calls[op], op))
			}
			failed := max(m.d.metric(b, "ecs_sd_events_receive_errors_total"), 0) - failures[i]
			b.Logf("%s, %v window: ECS %.1f calls/min, ReceiveMessage %.1f/min, %v failed receives: %s", m.name, window,
				perMinute(sum(ecs)), perMinute(calls["ReceiveMessage"]), failed, strings.Join(parts, ", "))
			b.ReportMetric(perMinute(sum(ecs)), fmt.Sprintf("ecs-calls/min-mode%d", i+1))
			b.ReportMetric(perMinute(calls["ReceiveMessage"]), fmt.Sprintf("receives/min-mode%d", i+1))
		}
		// The first change after the quiet spell.
		task := r.run(b, cluster, "svc-0", r.def)
		ev := task.event(b, 2, "RUNNING", "RUNNING")
		modes[0].d.q.Put(b, ev) // every queue's rule delivers it
		sent := time.Now()
		arrived := make([]time.Duration, len(modes))
		for pending := len(modes); pending > 0 && time.Since(sent) < quietWait; time.Sleep(10 * time.Millisecond) {
			for i, m := range modes {
				if arrived[i] == 0 && strings.Contains(m.d.file(b), `"`+task.target+`"`) {
					arrived[i] = time.Since(sent)
					pending--
				}
			}
		}
		for i, m := range modes {
			if arrived[i] == 0 {
				b.Logf("%s: the task announced after the quiet spell was not in the file %v later", m.name, quietWait)
				continue
			}
			b.Logf("%s: the task announced after the quiet spell was in the file after %v", m.name, arrived[i].Round(10*time.Millisecond))
		}
	}
}

// quietWait is how long BenchmarkIdleCalls1000Tasks waits for the task announced after the quiet
// spell: beyond two of SQS's default visibility timeouts (30 s) and one poll interval.
const quietWait = 90 * time.Second

// sum returns the total of calls.
func sum(calls map[string]int) (n int) {
	for _, c := range calls {
		n += c
	}
	return n
}
