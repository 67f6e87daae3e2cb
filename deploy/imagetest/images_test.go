package imagetest_test

import (
	"debug/elf"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// imageOut is where the build stages write their binaries (go build -o /out/NAME); the test maps
// it to a directory of its own.
const imageOut = "/out/"

// TestImages checks the two Dockerfiles without a Docker engine (this machine has none): each is
// parsed by BuildKit's own Dockerfile parser, its build stage's RUN commands are run as BuildKit
// would run them (the build arguments set, in a copy of the build context that honours
// .dockerignore) for linux/amd64 and linux/arm64, and the final stage is checked against what it
// copies and runs: a static binary for the target architecture that reports the version it was
// given, on a distroless base, as a non-root user.
func TestImages(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	context := buildContext(t, root)

	for _, img := range []struct {
		dockerfile, binary, port string
	}{
		{"Dockerfile", "ecs-sd", "9001"},
		{"cmd/webapp/Dockerfile", "webapp", "3000"},
	} {
		// One image after the other: their builds share most compiled packages.
		t.Run(img.binary, func(t *testing.T) {
			build, final := dockerStages(t, filepath.Join(root, img.dockerfile))
			assert.Equal(t, "$BUILDPLATFORM", build.Platform,
				"the build stage runs on the build machine's platform and cross-compiles")
			for _, c := range build.Commands {
				if cp, ok := c.(*instructions.CopyCommand); ok && cp.From == "" {
					for _, src := range cp.SourcePaths {
						_, err := os.Stat(filepath.Join(context, src))
						assert.NoError(t, err, "%s copies %s from the build context", img.dockerfile, src)
					}
				}
			}

			assert.True(t, strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") &&
				strings.HasSuffix(final.BaseName, ":nonroot"), "final base %s: distroless static, nonroot", final.BaseName)
			var (
				copied, entrypoint, user string
				exposed                  []string
			)
			for _, c := range final.Commands {
				switch c := c.(type) {
				case *instructions.CopyCommand:
					require.Equal(t, build.Name, c.From, "the final stage copies from the build stage only")
					require.Equal(t, []string{imageOut + img.binary}, c.SourcePaths)
					copied = c.DestPath
				case *instructions.EntrypointCommand:
					entrypoint = c.CmdLine[0]
				case *instructions.UserCommand:
					user = c.User
				case *instructions.ExposeCommand:
					exposed = append(exposed, c.Ports...)
				}
			}
			assert.Equal(t, copied, entrypoint, "the entrypoint is the copied binary")
			assert.NotContains(t, []string{"", "root", "0", "0:0"}, user, "the image runs as a non-root user")
			assert.Equal(t, []string{img.port}, exposed)

			for _, arch := range []string{"amd64", "arm64"} {
				out := runBuildStage(t, build, context, map[string]string{
					"TARGETOS": "linux", "TARGETARCH": arch, "VERSION": "9.8.7-image-test",
				})
				bin := filepath.Join(out, img.binary)
				assertStaticELF(t, bin, map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch])
				if arch == "amd64" {
					version, err := exec.Command(bin, "--version").CombinedOutput()
					require.NoError(t, err, "%s --version: %s", img.binary, version)
					assert.Contains(t, string(version), "version 9.8.7-image-test", "the VERSION build argument reaches the binary")
				}
			}
		})
	}
}

// dockerStages parses a Dockerfile of two stages, a build stage and the final image.
func dockerStages(t *testing.T, path string) (build, final instructions.Stage) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	ast, err := parser.Parse(f)
	require.NoError(t, err, "parse %s", path)
	stages, _, err := instructions.Parse(ast.AST, nil)
	require.NoError(t, err, "parse %s", path)
	require.Len(t, stages, 2, "%s: a build stage and the final image", path)
	return stages[0], stages[1]
}

// buildContext copies root into a new directory leaving out what .dockerignore excludes, as the
// Docker client sends it to the builder, and returns that directory.
func buildContext(t *testing.T, root string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	require.NoError(t, err)
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	require.NoError(t, err)
	ignore, err := patternmatcher.New(patterns)
	require.NoError(t, err)

	dst := t.TempDir()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		skip, err := ignore.MatchesOrParentMatches(filepath.ToSlash(rel))
		switch {
		case err != nil:
			return err
		case skip && d.IsDir() && !ignore.Exclusions():
			return filepath.SkipDir
		case skip, !d.IsDir() && !d.Type().IsRegular():
			return nil
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		return copyFile(path, filepath.Join(dst, rel))
	})
	require.NoError(t, err)
	return dst
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// runBuildStage runs the RUN commands of a build stage in the build context with the stage's
// ARG defaults overridden by args, and returns the directory that stands for imageOut.
func runBuildStage(t *testing.T, stage instructions.Stage, context string, args map[string]string) string {
	t.Helper()
	out := t.TempDir()
	env := os.Environ()
	for _, c := range stage.Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				value := ""
				if kv.Value != nil {
					value = *kv.Value
				}
				if v, ok := args[kv.Key]; ok {
					value = v
				}
				env = append(env, kv.Key+"="+value)
			}
		case *instructions.WorkdirCommand:
			require.Equal(t, "/src", c.Path, "the build context is copied to the working directory")
		case *instructions.RunCommand:
			require.True(t, c.PrependShell, "RUN in shell form")
			script := strings.ReplaceAll(strings.Join(c.CmdLine, " "), imageOut, out+"/")
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir, cmd.Env = context, env
			output, err := cmd.CombinedOutput()
			require.NoError(t, err, "RUN %s\n%s", script, output)
		}
	}
	return out
}

// assertStaticELF checks that path is a statically linked executable for machine.
func assertStaticELF(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, machine, f.Machine, "%s architecture", path)
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "%s is statically linked (no program interpreter)", path)
	}
}
