package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBinaryHoldsOnlyProductCode checks, with the go tool, which packages bin/ecs-sd is built
// from: its own and the product's under internal/, never the demo and test support under
// internal/harness, the commands of the demo and the web app, or a module only tests use.
func TestBinaryHoldsOnlyProductCode(t *testing.T) {
	t.Parallel()
	const module = "github.com/ecs-sd/ecs-sd/"
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps",
		"-f", "{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}", ".").Output()
	require.NoError(t, err, "go list -deps ./cmd/ecs-sd")

	var product []string
	for line := range strings.Lines(strings.TrimSpace(string(out))) {
		pkg, mod, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch {
		case strings.HasPrefix(pkg, module):
			rel := strings.TrimPrefix(pkg, module)
			require.True(t, rel == "cmd/ecs-sd" || strings.HasPrefix(rel, "internal/"),
				"bin/ecs-sd imports %s, which is not product code", pkg)
			require.False(t, strings.HasPrefix(rel, "internal/harness/"),
				"bin/ecs-sd imports %s: support code of the demo and the tests", pkg)
			product = append(product, rel)
		case mod != "":
			for _, testOnly := range []string{"github.com/stretchr/testify", "go.uber.org/goleak", "github.com/moby/"} {
				require.False(t, strings.HasPrefix(mod, testOnly), "bin/ecs-sd imports %s of the test-only module %s", pkg, mod)
			}
		}
	}
	// The list is the real one: it holds the packages main wires.
	require.Contains(t, product, "cmd/ecs-sd")
	require.Contains(t, product, "internal/refresh")
	require.Contains(t, product, "internal/cloudmap")
}
