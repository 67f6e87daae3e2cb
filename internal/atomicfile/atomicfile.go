// Package atomicfile replaces files so that a reader never sees a partial one: Prometheus re-reads
// file_sd files on every change, and a half-written file would drop every target.
package atomicfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Write replaces path with data: a temporary file in the same directory (named after path, see
// RemoveStale) is written, synced, given mode perm and renamed over path, so the replacement is
// atomic on POSIX file systems. It reports whether the content changed: when path already holds
// exactly data, nothing is written, and only its mode is set to perm if it differs.
func Write(path string, data []byte, perm os.FileMode) (changed bool, err error) {
	return WriteFrom(path, int64(len(data)), perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFrom is Write for the size bytes that write writes to the writer it is given: it may be
// called twice, once to compare the content with the file (read as write goes, so that neither
// is held whole in memory) and once to write the temporary file.
func WriteFrom(path string, size int64, perm os.FileMode, write func(io.Writer) error) (changed bool, err error) {
	same, err := holds(path, size, write)
	switch {
	case err != nil:
		return false, err
	case same:
		return false, fixMode(path, perm)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return false, fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmpName)
		}
	}()
	bw := bufio.NewWriterSize(tmp, bufSize)
	if err = write(bw); err == nil {
		err = bw.Flush()
	}
	if err != nil {
		_ = tmp.Close()
		return false, fmt.Errorf("write %s: %w", tmpName, err)
	}
	if err = tmp.Sync(); err != nil {
		_ = tmp.Close()
		return false, fmt.Errorf("sync %s: %w", tmpName, err)
	}
	if err = tmp.Close(); err != nil {
		return false, fmt.Errorf("close %s: %w", tmpName, err)
	}
	if err = os.Chmod(tmpName, perm); err != nil {
		return false, fmt.Errorf("chmod %s: %w", tmpName, err)
	}
	if err = os.Rename(tmpName, path); err != nil {
		return false, fmt.Errorf("rename %s to %s: %w", tmpName, path, err)
	}
	// Make the rename itself durable; a failure here does not undo the replacement.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return true, nil
}

// fixMode gives path the mode perm, unless it has it already (a file written by an earlier
// version, or before its source became secret).
func fixMode(path string, perm os.FileMode) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode().Perm() == perm {
		return nil
	}
	if err := os.Chmod(path, perm); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	return nil
}

// tempPrefix is the name of Write's temporary files for path, before the random digits that
// os.CreateTemp appends: ".ecs-services.json.tmp-" for ecs-services.json.
func tempPrefix(path string) string {
	return "." + filepath.Base(path) + ".tmp-"
}

// RemoveStale removes the temporary files that Write left for path when the process was killed
// during a write: the files of path's directory named as Write names them (the prefix of
// tempPrefix followed by digits only), and no other. It returns the paths it removed. Only one
// process may write path: a write in flight of another process would lose its temporary file.
func RemoveStale(path string) ([]string, error) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	prefix := tempPrefix(path)
	var removed []string
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" || !e.Type().IsRegular() {
			continue
		}
		stale := filepath.Join(dir, e.Name())
		if err := os.Remove(stale); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove stale temporary file: %w", err))
			continue
		}
		removed = append(removed, stale)
	}
	return removed, errors.Join(errs...)
}

const bufSize = 64 << 10

// errDiffers stops a comparison at the first difference.
var errDiffers = errors.New("content differs")

// holds reports whether path holds exactly the size bytes that write writes. A file that cannot
// be read does not hold them (it is replaced); an error of write is returned.
func holds(path string, size int64, write func(io.Writer) error) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() != size {
		return false, nil
	}
	c := &comparer{r: bufio.NewReaderSize(f, bufSize)}
	switch err := write(c); {
	case errors.Is(err, errDiffers) || c.failed:
		return false, nil
	case err != nil:
		return false, err
	}
	_, err = c.r.ReadByte()
	return errors.Is(err, io.EOF), nil
}

// comparer is a writer that compares what it is given with what r reads.
type comparer struct {
	r      *bufio.Reader
	failed bool // reading failed: the file is replaced
}

func (c *comparer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		want, err := c.r.Peek(min(len(p), bufSize))
		if len(want) == 0 || !bytes.Equal(want, p[:len(want)]) {
			c.failed = c.failed || err != nil && err != io.EOF
			return n, errDiffers
		}
		_, _ = c.r.Discard(len(want))
		n += len(want)
		p = p[len(want):]
	}
	return n, nil
}
