package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// keyPath is a key of the YAML document, with where it is and its value.
type keyPath struct {
	path  string // "cloudmap.concurrency", "aws.accounts[0].role_arn"
	name  string // the key itself: "concurrency"
	line  int
	value *yaml.Node
}

// keyPaths returns every key of the document under node, in document order.
func keyPaths(node *yaml.Node, prefix string, out []keyPath) []keyPath {
	switch node.Kind {
	case yaml.DocumentNode:
		for _, n := range node.Content {
			out = keyPaths(n, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			out = append(out, keyPath{path: path, name: k.Value, line: k.Line, value: v})
			out = keyPaths(v, path, out)
		}
	case yaml.SequenceNode:
		for i, n := range node.Content {
			out = keyPaths(n, fmt.Sprintf("%s[%d]", prefix, i), out)
		}
	}
	return out
}

var (
	// lineError is one error of a *yaml.TypeError: "line 3: field foo not found in type config.X",
	// "line 3: cannot unmarshal !!str `abc` into int".
	lineError    = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	badValue     = regexp.MustCompile("^cannot unmarshal !!\\w+ `(.*)` into (\\S+)$")
)

// nameKeys rewrites err, an error of decoding data, to name the keys it is about by their path
// in the document: "line 3: unknown key cloudmap.concurency", "line 4: cloudmap.concurrency:
// "abc" is not a valid int". An error of a value's own parser (a duration) names the key
// whose value it quotes. Errors it cannot place are returned as they are.
func nameKeys(data []byte, err error) error {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return err
	}
	keys := keyPaths(&doc, "", nil)
	var typeErr *yaml.TypeError
	if !errors.As(err, &typeErr) {
		for _, k := range keys {
			if k.value.Kind == yaml.ScalarNode && strings.Contains(err.Error(), strconv.Quote(k.value.Value)) {
				return fmt.Errorf("line %d: %s: %w", k.value.Line, k.path, err)
			}
		}
		return err
	}
	msgs := make([]string, len(typeErr.Errors))
	for i, e := range typeErr.Errors {
		msgs[i] = e
		m := lineError.FindStringSubmatch(e)
		if m == nil {
			continue
		}
		line, _ := strconv.Atoi(m[1])
		if f := unknownField.FindStringSubmatch(m[2]); f != nil {
			if k, ok := keyAt(keys, line, func(k keyPath) bool { return k.name == f[1] }); ok {
				msgs[i] = fmt.Sprintf("line %d: unknown key %s", line, k.path)
			}
			continue
		}
		if v := badValue.FindStringSubmatch(m[2]); v != nil {
			if k, ok := keyAt(keys, line, func(k keyPath) bool { return k.value.Line == line && k.value.Value == v[1] }); ok {
				msgs[i] = fmt.Sprintf("line %d: %s: %q is not a valid %s", line, k.path, v[1], v[2])
			}
			continue
		}
		if k, ok := keyAt(keys, line, func(k keyPath) bool { return k.value.Line == line }); ok {
			msgs[i] = fmt.Sprintf("line %d: %s: %s", line, k.path, m[2])
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

// keyAt returns the first key on line (or whose value is on line) that match accepts.
func keyAt(keys []keyPath, line int, match func(keyPath) bool) (keyPath, bool) {
	for _, k := range keys {
		if (k.line == line || k.value.Line == line) && match(k) {
			return k, true
		}
	}
	return keyPath{}, false
}
