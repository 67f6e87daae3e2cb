//go:build integration

package test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// Fixture of the memory benchmark: 100 Cloud Map services of 100 tasks each, registered with the
// attributes ECS gives a task on EC2, in one private DNS namespace, every service tagged with
// METRICS_PATH and METRICS_PORT as in the seed's deployment.
const (
	memServices        = 100
	memTasksPerService = 100
	memNamespace       = "ecs-services"
)

// BenchmarkMemory10000CloudMapTargets measures the resident memory of the real ecs-sd binary, built
// as make build builds it, over 10 000 Cloud Map targets served by moto: the peak of one --once
// run into an empty directory, the peak of one --once run over the file of an earlier run, and
// the daemon's resident set once it has run several cycles (and served http_sd), started into an
// empty directory and over the file of an earlier run (a restart: the earlier list is served
// from the first answer). GOGC,
// GOMEMLIMIT and GODEBUG are removed from the environment, so ecs-sd's own defaults count.
// Loading the fixture takes about 30 s (moto registers about 350 instances per second). Results
// are recorded in docs/benchmarks.md; ECS_SD_BINARY measures another build (an earlier version).
//
//	go test -tags integration ./test -run '^$' -bench Memory10000 -benchtime 1x -v
func BenchmarkMemory10000CloudMapTargets(b *testing.B) {
	m := testenv.StartMoto(b)
	loadMemoryFixture(b, m)
	bin := os.Getenv("ECS_SD_BINARY")
	if bin == "" {
		bin = buildRelease(b)
	}
	env := slices.DeleteFunc(m.Env(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return name == "GOGC" || name == "GOMEMLIMIT" || name == "GODEBUG"
	})
	args := []string{"--cloudmap.namespace", memNamespace, "--no-prometheus.config-sync"}
	want := memServices * memTasksPerService

	once := func(b *testing.B, dir string) {
		b.ReportMetric(mib(peakOnce(b, bin, env, append([]string{"--once", "--output.dir", dir}, args...))), "peak-RSS-MiB")
		if n := countTargets(b, filepath.Join(dir, "ecs-services.json")); n != want {
			b.Fatalf("%d targets in the file, want %d", n, want)
		}
	}
	b.Run("once", func(b *testing.B) {
		for b.Loop() {
			once(b, b.TempDir())
		}
	})
	b.Run("once-over-earlier-file", func(b *testing.B) {
		dir := b.TempDir()
		once(b, dir)
		for b.Loop() {
			once(b, dir)
		}
	})
	daemon := func(b *testing.B, dir string) {
		rss, hwm := daemonRSS(b, bin, env, args, want, dir)
		b.ReportMetric(mib(rss), "steady-RSS-MiB")
		b.ReportMetric(mib(hwm), "peak-RSS-MiB")
	}
	b.Run("daemon", func(b *testing.B) {
		for b.Loop() {
			daemon(b, b.TempDir())
		}
	})
	b.Run("daemon-over-earlier-file", func(b *testing.B) {
		dir := b.TempDir()
		once(b, dir)
		for b.Loop() {
			daemon(b, dir)
		}
	})
}

// buildRelease builds bin/ecs-sd as make build does (static, -trimpath) into a temporary
// directory, and returns its path.
func buildRelease(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "ecs-sd")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/ecs-sd/ecs-sd/cmd/ecs-sd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// loadMemoryFixture creates the benchmark's namespace, services and tasks in m.
func loadMemoryFixture(b *testing.B, m *testenv.Moto) {
	b.Helper()
	start := time.Now()
	ns := m.CreatePrivateDNSNamespace(b, memNamespace, "")
	for s := range memServices {
		svc, _ := m.CreateService(b, ns, fmt.Sprintf("service-%03d-svc", s),
			map[string]string{"METRICS_PATH": "/metrics", "METRICS_PORT": strconv.Itoa(9000 + s%10)})
		tasks := make([]testenv.Task, memTasksPerService)
		for i := range tasks {
			n := s*memTasksPerService + i
			tasks[i] = testenv.Task{
				ID:            fmt.Sprintf("%032x", 0x5eed0000+n),
				IPv4:          fmt.Sprintf("10.%d.%d.%d", 1+n/62500, n/250%250, n%250+1),
				Port:          8080,
				Cluster:       "ecs-prometheus-cluster",
				Service:       fmt.Sprintf("Service%03d", s),
				Family:        fmt.Sprintf("Task%03d", s),
				AZ:            fmt.Sprintf("us-east-1%c", 'a'+rune(n%3)),
				EC2InstanceID: fmt.Sprintf("i-%017x", n/10),
			}
		}
		m.RegisterTasks(b, svc, tasks)
	}
	b.Logf("fixture: %d services of %d tasks loaded into moto in %v", memServices, memTasksPerService, time.Since(start).Round(time.Second))
}

// daemonRSS runs the daemon over the fixture, writing into dir, until it has finished 10 cycles
// after the first one that wrote every target, fetching the http_sd list after each (plain, as
// Prometheus asks for it, and gzip-compressed), and returns the largest resident set seen after
// a cycle from the third on, and the peak (VmHWM) of the whole run.
func daemonRSS(b *testing.B, bin string, env, args []string, want int, dir string) (rss, hwm int64) {
	b.Helper()
	d, stop := startBinary(b, bin, env, dir, append([]string{"--refresh.interval", "2s"}, args...)...)
	defer stop()
	cmd, url := d.cmd, d.URL
	const cycles = `ecs_sd_refresh_duration_seconds_count{source="cloudmap"}`
	var first float64
	testenv.Eventually(b, 2*time.Minute, 200*time.Millisecond, func() (bool, string) {
		first = metricValue(d, cycles)
		n := countTargets(b, filepath.Join(dir, "ecs-services.json"))
		return n == want && first >= 1, fmt.Sprintf("%d targets in the file, want %d; %v cycles", n, want, first)
	})
	for c := first + 1; c <= first+10; c++ {
		testenv.Eventually(b, time.Minute, 50*time.Millisecond, func() (bool, string) {
			v := metricValue(d, cycles)
			return v >= c, fmt.Sprintf("%v cycles, want %v", v, c)
		})
		for _, gzipped := range []bool{false, true} {
			if n := httpSDTargets(b, url, gzipped); n != want {
				b.Fatalf("http_sd (gzip %v): %d targets, want %d", gzipped, n, want)
			}
		}
		if c >= first+3 {
			st := procStatus(cmd.Process.Pid)
			rss = max(rss, st["VmRSS"])
		}
	}
	return rss, procStatus(cmd.Process.Pid)["VmHWM"]
}

// startBinary starts the ecs-sd binary bin with env, writing into dir and listening on a port of
// its own, with args; stop ends it (SIGTERM) and logs its output if b failed.
func startBinary(b *testing.B, bin string, env []string, dir string, args ...string) (d *daemon, stop func()) {
	b.Helper()
	port := testenv.FreePort(b)
	cmd := exec.Command(bin, append([]string{"--web.listen-address", fmt.Sprintf("127.0.0.1:%d", port), "--output.dir", dir}, args...)...)
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return &daemon{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: dir, cmd: cmd}, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if b.Failed() {
			b.Logf("ecs-sd log:\n%s", logs.String())
		}
	}
}

// httpSDTargets fetches the http_sd list, gzip-compressed or plain (as Prometheus, whose client
// asks for no compression), and returns the number of its targets, read line by line.
func httpSDTargets(b *testing.B, url string, gzipped bool) int {
	b.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/prometheus-targets", http.NoBody)
	if err != nil {
		b.Fatal(err)
	}
	if gzipped {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	transport := &http.Transport{DisableCompression: true}
	defer transport.CloseIdleConnections()
	resp, err := transport.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("http_sd: %s", resp.Status)
	}
	if got := resp.Header.Get("Content-Encoding"); (got == "gzip") != gzipped {
		b.Fatalf("http_sd: content encoding %q (gzip asked for: %v)", got, gzipped)
	}
	body := io.Reader(resp.Body)
	if gzipped {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			b.Fatal(err)
		}
		body = zr
	}
	return countLines(b, body, `      "`, `"targets": [`)
}

// metricValue returns one sample of the daemon's /metrics, or -1 when it cannot be read.
func metricValue(d *daemon, series string) float64 {
	_, body, err := d.get("/metrics")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// watchHWM polls the VmHWM of pid every millisecond until the process is gone, then sends the largest
// value read (bytes).
func watchHWM(pid int) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		for {
			st := procStatus(pid)
			if st == nil || st["VmHWM"] == 0 && peak > 0 {
				out <- peak
				return
			}
			peak = max(peak, st["VmHWM"])
			time.Sleep(time.Millisecond)
		}
	}()
	return out
}

// procStatus returns the memory fields (Vm*, in bytes) of /proc/PID/status; nil when the process
// is gone.
func procStatus(pid int) map[string]int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasPrefix(name, "Vm") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 2 && fields[1] == "kB" {
			kb, _ := strconv.ParseInt(fields[0], 10, 64)
			out[name] = kb * 1024
		}
	}
	return out
}

// peakOnce runs ecs-sd with args to completion and returns its peak resident set (bytes): the
// kernel's high-water mark, ru_maxrss, read when it exits. Go starts a child with vfork, and Linux
// counts the parent's high-water mark at the exec into the child's ru_maxrss: the measure holds
// only while the benchmark process itself stays below it, which is checked (it reads the files
// it checks line by line, never whole). VmHWM polled every millisecond from /proc/PID/status
// must agree.
func peakOnce(b *testing.B, bin string, env, args []string) int64 {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	parent := procStatus(os.Getpid())["VmHWM"]
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	hwm := watchHWM(cmd.Process.Pid)
	err := cmd.Wait()
	polled := <-hwm
	if err != nil {
		b.Fatalf("ecs-sd %v: %v\n%s", args, err, logs.String())
	}
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024
	if peak <= parent {
		b.Fatalf("ru_maxrss %.1f MiB is the benchmark process's own peak (%.1f MiB), not ecs-sd's (polled VmHWM %.1f MiB)", mib(peak), mib(parent), mib(polled))
	}
	if peak-polled > 4<<20 {
		b.Logf("ru_maxrss %.1f MiB, VmHWM polled %.1f MiB: the polling missed the end", mib(peak), mib(polled))
	}
	return max(peak, polled)
}

// countTargets returns the number of targets in the file_sd file at path, as ecs-sd writes it
// (one "targets" list per group, one target per line), read line by line; 0 when there is no
// file.
func countTargets(b *testing.B, path string) int {
	b.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	return countLines(b, f, `      "`, `"targets": [`)
}

// countLines returns the number of lines of r that start with prefix and follow a line that ends
// with after (trimmed).
func countLines(b *testing.B, r io.Reader, prefix, after string) int {
	b.Helper()
	n, in := 0, false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if in && strings.HasPrefix(line, prefix) {
			n++
		}
		in = strings.HasSuffix(strings.TrimSpace(line), after)
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
