package refresh

import "sync"

// Once tells which of the conditions that a source meets cycle after cycle are new: met in this
// cycle and not in the previous one. A lasting condition (two keys that give one label name, say)
// is thus logged once, when it appears, and again only after it went away and came back. The
// zero Once is ready; it is safe for concurrent use.
type Once struct {
	mu         sync.Mutex
	last, this map[string]bool
}

// New records key as met in this cycle and reports whether it is new: met neither in the
// previous cycle nor earlier in this one.
func (o *Once) New(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.this == nil {
		o.this = map[string]bool{}
	}
	if o.this[key] {
		return false
	}
	o.this[key] = true
	return !o.last[key]
}

// Next ends a cycle: what was met in it is what the next one compares with.
func (o *Once) Next() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last, o.this = o.this, nil
}
