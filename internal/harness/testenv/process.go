package testenv

import (
	"testing"
	"time"

	"github.com/ecs-sd/ecs-sd/internal/harness/supervise"
)

// The harness's servers are supervise processes (started with supervise.StartServer from the
// specs of package rig); process adds what the harness needs around them.

// process is a child process running in its own process group, with its output in a file.
type process struct{ *supervise.Process }

// stop stops the process group: SIGTERM, SIGKILL after grace.
func (p *process) stop(grace time.Duration) { p.Stop(grace) }

// logTail returns the last n lines of the process's output.
func (p *process) logTail(n int) string { return p.LogTail(n) }

// lookPath finds a required tool on PATH, with a hint for installing it in the error.
func lookPath(name, hint string) (string, error) {
	return supervise.LookPath(name, hint+"; integration tests need it")
}

// stopAtCleanup stops p when tb ends, printing the tail of its log first if tb failed.
func (p *process) stopAtCleanup(tb testing.TB, grace time.Duration) {
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("last lines of %s output (%s):\n%s", p.Name(), p.LogPath(), p.logTail(supervise.LogTailLines))
		}
		p.stop(grace)
	})
}
