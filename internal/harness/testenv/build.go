package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// modulePath is the import path of the project's module.
const modulePath = "github.com/ecs-sd/ecs-sd"

// builds caches one build per package for the life of the test binary: package -> func() (path, error).
var builds sync.Map

// BuildBinary builds the project's package pkg (e.g. "cmd/ecs-sd") once per test binary and
// returns the path of the executable. The binary lives in a temporary directory named after the
// test process, which outlives any single test; directories of test processes that have ended
// are removed by the next build. It fails tb with the compiler's output when the build fails.
func BuildBinary(tb testing.TB, pkg string) string {
	tb.Helper()
	build, _ := builds.LoadOrStore(pkg, sync.OnceValues(func() (string, error) { return buildBinary(pkg) }))
	bin, err := build.(func() (string, error))()
	check(tb, err)
	return bin
}

func buildBinary(pkg string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	goTool, err := lookPath("go", "the Go toolchain")
	if err != nil {
		return "", err
	}
	removeStaleBuilds()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d", buildDirPrefix, os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create build directory: %w", err)
	}
	bin := filepath.Join(dir, path.Base(pkg))
	cmd := exec.Command(goTool, "build", "-o", bin, modulePath+"/"+pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// buildDirPrefix starts the name of every build directory; the test process id follows.
const buildDirPrefix = "ecs-sd-bin-"

// removeStaleBuilds removes the build directories of test processes that no longer run.
func removeStaleBuilds() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), buildDirPrefix+"*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), buildDirPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			_ = os.RemoveAll(dir)
		}
	}
}

// moduleRoot walks up from the working directory to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("find module root: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no go.mod above the working directory")
		}
		dir = parent
	}
}
