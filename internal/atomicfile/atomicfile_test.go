package atomicfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "out.json")

	changed, err := Write(path, []byte("one"), 0o644)
	require.NoError(t, err)
	require.True(t, changed)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "one", string(got))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm())

	before := st.ModTime()
	changed, err = Write(path, []byte("one"), 0o644)
	require.NoError(t, err)
	require.False(t, changed, "identical content must not be rewritten")
	st, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, before, st.ModTime())

	changed, err = Write(path, []byte("two"), 0o644)
	require.NoError(t, err)
	require.True(t, changed)
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "two", string(got))

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary files may be left behind")
}

func TestWriteMissingDirectory(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing", "out.json")
	_, err := Write(path, []byte("x"), 0o644)
	require.ErrorContains(t, err, "missing")
}

func TestWriteSetsTheModeOfUnchangedContent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "prometheus.yaml")
	require.NoError(t, os.WriteFile(path, []byte("secret"), 0o644))
	require.NoError(t, os.Chmod(path, 0o644))
	changed, err := Write(path, []byte("secret"), 0o640)
	require.NoError(t, err)
	require.False(t, changed, "the content is the same")
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), st.Mode().Perm())
}

// TestRemoveStale: the temporary files a killed Write leaves are removed, and nothing else: not
// the files of another name, not the ones another pattern would match.
func TestRemoveStale(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "ecs-services.json")
	// What a killed Write leaves: its own temporary file, created as Write creates it.
	tmp, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	require.NoError(t, err)
	require.NoError(t, tmp.Close())
	stale := []string{tmp.Name(), filepath.Join(dir, ".ecs-services.json.tmp-123")}
	kept := []string{
		"ecs-services.json",
		".ecs-services.json.tmp-",         // no digits
		".ecs-services.json.tmp-12a",      // not only digits
		".ecs-services.json.tmp-1.bak",    // not only digits
		".prometheus.yaml.tmp-123",        // another file's
		"ecs-services.json.tmp-123",       // no leading dot
		".other-ecs-services.json.tmp-12", // another file's
	}
	for _, name := range append(kept, filepath.Base(stale[1])) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, ".ecs-services.json.tmp-77"), 0o755), "a directory is not a temporary file")
	kept = append(kept, ".ecs-services.json.tmp-77")

	removed, err := RemoveStale(path)
	require.NoError(t, err)
	require.ElementsMatch(t, stale, removed)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	require.ElementsMatch(t, kept, left)

	removed, err = RemoveStale(path)
	require.NoError(t, err)
	require.Empty(t, removed, "nothing left to remove")
	_, err = RemoveStale(filepath.Join(dir, "missing", "f.json"))
	require.ErrorContains(t, err, "missing")
}

// TestWriteFromComparesWithoutHoldingTheFile: content written in pieces is compared with the file
// piece by piece; a difference anywhere (or a size that differs) rewrites it.
func TestWriteFromComparesWithoutHoldingTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "out.json")
	content := bytes.Repeat([]byte("0123456789abcdef"), 20_000) // several comparison buffers
	pieces := func(data []byte) func(io.Writer) error {
		return func(w io.Writer) error {
			for chunk := range slices.Chunk(data, 1000) {
				if _, err := w.Write(chunk); err != nil {
					return err
				}
			}
			return nil
		}
	}
	changed, err := WriteFrom(path, int64(len(content)), 0o644, pieces(content))
	require.NoError(t, err)
	require.True(t, changed)
	changed, err = WriteFrom(path, int64(len(content)), 0o644, pieces(content))
	require.NoError(t, err)
	require.False(t, changed)

	for _, at := range []int{0, 65535, 65536, len(content) - 1} {
		other := slices.Clone(content)
		other[at] = 'x'
		changed, err = WriteFrom(path, int64(len(other)), 0o644, pieces(other))
		require.NoError(t, err)
		require.True(t, changed, "a difference at %d", at)
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, other, got)
		content = other
	}
	shorter := content[:len(content)-1]
	changed, err = WriteFrom(path, int64(len(shorter)), 0o644, pieces(shorter))
	require.NoError(t, err)
	require.True(t, changed)

	// A writer that fails: the error is returned, the file is left as it was.
	boom := errors.New("boom")
	_, err = WriteFrom(path, 10, 0o644, func(io.Writer) error { return boom })
	require.ErrorIs(t, err, boom)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, shorter, got)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary files may be left behind")
}
