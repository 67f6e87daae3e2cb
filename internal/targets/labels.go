package targets

import (
	"slices"
	"strings"
	"unicode/utf8"
	"unique"

	"github.com/prometheus/common/model"
)

// SanitizeLabelName turns any string into a valid Prometheus label-name fragment, replacing every
// character outside [a-zA-Z0-9_] with an underscore (as Prometheus's own discoverers do): one
// underscore per character, and per byte of invalid UTF-8. A string that needs no change is
// returned as it is.
func SanitizeLabelName(s string) string {
	i := 0
	for i < len(s) && isLabelChar(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		if r < utf8.RuneSelf && isLabelChar(byte(r)) {
			b.WriteByte(byte(r))
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func isLabelChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_'
}

// Collision is two keys of one map whose label names are the same once sanitized ("a.b" and
// "a-b" both give "a_b"). Kept gave the label: it sorts first in byte order, or it is "" when
// the label was set before the map's keys were added. Dropped gave none.
type Collision struct {
	Name          model.LabelName
	Kept, Dropped string
}

// LabelBuilder builds the label sets of many targets that share names and values, such as the
// instances of one service or the tasks of one cluster: each distinct name and value is held
// once, however many targets carry it, and the keys of a map become label names in one fixed
// order, whatever the map's own order. A LabelBuilder is used by one goroutine at a time.
type LabelBuilder struct {
	names  map[[2]string]model.LabelName // (prefix, key) -> name
	values map[string]model.LabelValue
	keys   []string // scratch: the keys of one map, sorted
}

// Name returns the label name prefix + SanitizeLabelName(key). Names are interned: every target
// that carries a name shares one copy of it, across builders and cycles.
func (b *LabelBuilder) Name(prefix, key string) model.LabelName {
	k := [2]string{prefix, key}
	if name, ok := b.names[k]; ok {
		return name
	}
	if b.names == nil {
		b.names = map[[2]string]model.LabelName{}
	}
	name := model.LabelName(unique.Make(prefix + SanitizeLabelName(key)).Value())
	b.names[k] = name
	return name
}

// Value returns v, shared with every equal value that b has returned.
func (b *LabelBuilder) Value(v string) model.LabelValue {
	if lv, ok := b.values[v]; ok {
		return lv
	}
	if b.values == nil {
		b.values = map[string]model.LabelValue{}
	}
	b.values[v] = model.LabelValue(v)
	return model.LabelValue(v)
}

// Set sets the label name to value v, unless v is empty (Prometheus treats an empty label as
// absent).
func (b *LabelBuilder) Set(labels model.LabelSet, name model.LabelName, v string) {
	if v != "" {
		labels[name] = b.Value(v)
	}
}

// SetMap sets one label per key of m: Name(prefix, key) = m[key]. Keys with an empty value give
// no label. Keys are taken in byte order and a name, once set, is kept: when several keys give the
// same name, the key that sorts first wins (whatever the order of the map), and so does a label
// that labels already had. SetMap returns the keys that gave no label for that reason (nil when
// there are none).
func (b *LabelBuilder) SetMap(labels model.LabelSet, prefix string, m map[string]string) []Collision {
	b.keys = b.keys[:0]
	for k := range m {
		b.keys = append(b.keys, k)
	}
	slices.Sort(b.keys)
	var out []Collision
	for i, k := range b.keys {
		v := m[k]
		if v == "" {
			continue
		}
		name := b.Name(prefix, k)
		if _, taken := labels[name]; !taken {
			labels[name] = b.Value(v)
			continue
		}
		c := Collision{Name: name, Dropped: k}
		for _, earlier := range b.keys[:i] {
			if m[earlier] != "" && b.Name(prefix, earlier) == name {
				c.Kept = earlier
				break
			}
		}
		out = append(out, c)
	}
	return out
}
