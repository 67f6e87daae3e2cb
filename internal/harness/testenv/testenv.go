// Package testenv is the shared integration-test harness of ecs-sd: it starts a real AWS emulator
// (moto_server) and a real Prometheus on loopback, builds Cloud Map / SSM / EC2 fixtures the way ECS
// and the AWS CLI would, puts a call-counting, fault-injecting proxy in front of moto, builds the
// project's binaries once per test binary, and polls for eventual conditions.
//
// Every helper takes a testing.TB, fails the test (never skips it) when a tool is missing, binds to
// 127.0.0.1 on free ports, and registers its cleanup with tb.Cleanup. Child processes run in their
// own process group and are stopped by process-group id.
package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/ecs-sd/ecs-sd/internal/harness/supervise"
)

// callTimeout bounds each AWS or HTTP call the harness makes on behalf of a test.
const callTimeout = 30 * time.Second

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another process may take it
// before the caller binds it; the server starters retry with a new port when that happens.
func FreePort(tb testing.TB) int {
	tb.Helper()
	port, err := supervise.FreePort(supervise.DefaultHost)
	check(tb, err)
	return port
}

// Eventually calls cond every interval until it returns true, and fails the test with cond's last
// message when timeout passes first (or the test's context ends).
func Eventually(tb testing.TB, timeout, interval time.Duration, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %v: %s", timeout, msg)
		}
		select {
		case <-ticker.C:
		case <-tb.Context().Done():
			tb.Fatalf("test ended while waiting for condition: %s", msg)
		}
	}
}

// callContext returns a context for one call made during the test, bounded by callTimeout.
func callContext(tb testing.TB) (context.Context, context.CancelFunc) {
	return context.WithTimeout(tb.Context(), callTimeout)
}

// check fails the test with err when it is not nil.
func check(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
