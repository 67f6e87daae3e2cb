// Package test holds ecs-sd's end-to-end tests: the built binary against moto (a real AWS API
// emulator) and a real Prometheus, in the files built with the tag integration, and the binary's
// command line alone, which needs neither (cli_test.go).
package test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// run runs ecs-sd to completion and returns its exit code and output.
func run(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(testenv.BuildBinary(t, "cmd/ecs-sd"), args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	go func() {
		<-ctx.Done()
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	}()
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run ecs-sd: %v", err)
	}
	return code, out.String(), errOut.String()
}

// withEnv returns env with the given KEY=VALUE entries added (replacing the same keys).
func withEnv(env []string, kv ...string) []string {
	out := append([]string(nil), env...)
	for _, e := range kv {
		key := e[:strings.IndexByte(e, '=')+1]
		out = slices.DeleteFunc(out, func(x string) bool { return strings.HasPrefix(x, key) })
		out = append(out, e)
	}
	return out
}
