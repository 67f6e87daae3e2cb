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
