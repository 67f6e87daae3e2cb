package targets

import (
	"io"
	"iter"
	"slices"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// render writes groups to w as the file_sd JSON list: the bytes encoding/json's Encoder gives with
// SetIndent("", "  ") and SetEscapeHTML(false), ending in a newline. It writes in pieces of about
// 64 KiB, labels in name order, without the reflection and the per-map key lists of
// encoding/json: at 10 000 targets the list is about 15 MB, and is never held whole. It returns
// the number of bytes written.
func render(w io.Writer, groups []*Group) (int64, error) {
	jw := jsonWriter{out: w, buf: make([]byte, 0, flushSize+4096)}
	jw.groups(groups)
	jw.flush()
	return jw.n, jw.err
}

// renderSeq is render of the groups of seq (a list, never null).
func renderSeq(w io.Writer, seq iter.Seq[*Group]) (int64, error) {
	jw := jsonWriter{out: w, buf: make([]byte, 0, flushSize+4096)}
	jw.list(seq)
	jw.flush()
	return jw.n, jw.err
}

// flushSize is the size from which jsonWriter hands its buffer on.
const flushSize = 64 << 10

// jsonWriter writes the JSON list to out through buf.
type jsonWriter struct {
	out   io.Writer
	buf   []byte
	n     int64
	err   error
	names []model.LabelName // scratch: one group's label names, sorted
}

func (w *jsonWriter) flush() {
	if w.err == nil && len(w.buf) > 0 {
		var n int
		n, w.err = w.out.Write(w.buf)
		w.n += int64(n)
	}
	w.buf = w.buf[:0]
}

func (w *jsonWriter) raw(s string) { w.buf = append(w.buf, s...) }

func (w *jsonWriter) str(s string) { w.buf = appendQuoted(w.buf, s) }

const (
	indent1 = "\n  "
	indent2 = "\n    "
	indent3 = "\n      "
)

func (w *jsonWriter) groups(groups []*Group) {
	if groups == nil {
		w.raw("null\n")
		return
	}
	w.list(slices.Values(groups))
}

// list writes the groups of seq as a JSON list.
func (w *jsonWriter) list(seq iter.Seq[*Group]) {
	n := 0
	for g := range seq {
		if n == 0 {
			w.raw("[")
		} else {
			w.raw(",")
		}
		n++
		w.raw(indent1)
		w.group(g)
		if len(w.buf) >= flushSize {
			w.flush()
		}
	}
	if n == 0 {
		w.raw("[]\n")
		return
	}
	w.raw("\n]\n")
}

func (w *jsonWriter) group(g *Group) {
	if g == nil {
		w.raw("null")
		return
	}
	w.raw("{" + indent2 + `"targets": `)
	switch {
	case g.Targets == nil:
		w.raw("null")
	case len(g.Targets) == 0:
		w.raw("[]")
	default:
		w.raw("[")
		for i, t := range g.Targets {
			if i > 0 {
				w.raw(",")
			}
			w.raw(indent3)
			w.str(t)
		}
		w.raw(indent2 + "]")
	}
	w.raw("," + indent2 + `"labels": `)
	switch {
	case g.Labels == nil:
		w.raw("null")
	case len(g.Labels) == 0:
		w.raw("{}")
	default:
		w.raw("{")
		for i, name := range w.labelNames(g.Labels) {
			if i > 0 {
				w.raw(",")
			}
			w.raw(indent3)
			w.str(string(name))
			w.raw(": ")
			w.str(string(g.Labels[name]))
		}
		w.raw(indent2 + "}")
	}
	w.raw(indent1 + "}")
}

// labelNames returns the names of labels, sorted, in w's scratch slice.
func (w *jsonWriter) labelNames(labels model.LabelSet) []model.LabelName {
	w.names = w.names[:0]
	for name := range labels {
		w.names = append(w.names, name)
	}
	slices.Sort(w.names)
	return w.names
}

// needsEscape marks the ASCII bytes that encoding/json escapes when HTML escaping is off.
var needsEscape = func() (t [utf8.RuneSelf]bool) {
	for b := range 0x20 {
		t[b] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

const hexDigits = "0123456789abcdef"

// appendQuoted appends s as encoding/json writes a string with HTML escaping off: quotes and
// backslashes escaped, control characters as \b \f \n \r \t or \u00XX, invalid UTF-8 as \ufffd,
// and U+2028 and U+2029 as \u2028 and \u2029.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if !needsEscape[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
