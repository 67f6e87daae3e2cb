package atomicfile

import (
	"os"
	"path/filepath"
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
