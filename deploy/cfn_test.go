package deploy_test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// This file reads the CloudFormation template and evaluates it the way CloudFormation does when
// it creates a stack: parameters (defaults and AllowedValues), conditions, mappings and the
// intrinsic functions of resource properties. What only a real stack knows is a placeholder: a
// resource's Ref is "{Resource}", an attribute "{Resource.Attribute}". The checks need no AWS
// and no external tool.

// cfn is a CloudFormation template read from YAML, short-form intrinsics (!Ref, !Sub, ...) turned
// into their long form ({"Ref": ...}, {"Fn::Sub": ...}), as cfn-flip does.
type cfn map[string]any

func loadTemplate(t *testing.T) cfn {
	t.Helper()
	return loadTemplateFile(t, templatePath)
}

// loadTemplateFile is loadTemplate of the template at path.
func loadTemplateFile(t *testing.T, path string) cfn {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	v, err := fromYAML(doc.Content[0])
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return v.(map[string]any)
}

// fromYAML converts a YAML node to plain Go values, intrinsic function tags included.
func fromYAML(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i < len(n.Content); i += 2 {
			val, err := fromYAML(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = val
		}
		v = m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := fromYAML(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		v = s
	case yaml.ScalarNode:
		if strings.HasPrefix(n.Tag, "!!") || n.Tag == "" {
			if err := n.Decode(&v); err != nil {
				return nil, err
			}
		} else {
			v = n.Value
		}
	case yaml.AliasNode:
		return fromYAML(n.Alias)
	default:
		return nil, fmt.Errorf("line %d: unexpected YAML node kind %v", n.Line, n.Kind)
	}
	if !strings.HasPrefix(n.Tag, "!") || strings.HasPrefix(n.Tag, "!!") {
		return v, nil
	}
	fn := strings.TrimPrefix(n.Tag, "!")
	switch fn {
	case "Ref", "Condition":
		return map[string]any{fn: v}, nil
	case "GetAtt":
		if s, ok := v.(string); ok {
			resource, attribute, _ := strings.Cut(s, ".")
			v = []any{resource, attribute}
		}
	}
	return map[string]any{"Fn::" + fn: v}, nil
}

// resource returns the Properties of a resource of the template, failing when it is missing.
func (c cfn) resource(t *testing.T, name string) map[string]any {
	t.Helper()
	r, ok := c.section("Resources")[name].(map[string]any)
	if !ok {
		t.Fatalf("template has no resource %s", name)
	}
	return r["Properties"].(map[string]any)
}

func (c cfn) section(name string) map[string]any {
	m, _ := c[name].(map[string]any)
	return m
}

// stack is the template evaluated for one stack name and set of parameter values.
type stack struct {
	t      *testing.T
	tmpl   cfn
	name   string
	params map[string]any // a string, or []any of strings for list types
	conds  map[string]bool
}

// noValue is what AWS::NoValue evaluates to: the property or list item disappears.
type noValue struct{}

// newStack evaluates the parameters of the template for a stack called name: each takes its
// value from values, else its Default. A value outside AllowedValues or AllowedPattern fails
// the test, as CloudFormation refuses it.
func newStack(t *testing.T, c cfn, name string, values map[string]string) *stack {
	t.Helper()
	s := &stack{t: t, tmpl: c, name: name, params: map[string]any{}, conds: map[string]bool{}}
	for k := range values {
		if _, ok := c.section("Parameters")[k]; !ok {
			t.Fatalf("template has no parameter %s", k)
		}
	}
	for pname, def := range c.section("Parameters") {
		p := def.(map[string]any)
		value, ok := values[pname]
		if !ok {
			d, has := p["Default"]
			if !has {
				value = "set-by-test"
			} else {
				value = fmt.Sprint(d)
			}
		}
		if allowed, ok := p["AllowedValues"].([]any); ok && !slices.ContainsFunc(allowed, func(a any) bool { return fmt.Sprint(a) == value }) {
			t.Fatalf("parameter %s = %q is not among its AllowedValues %v", pname, value, allowed)
		}
		if pattern, ok := p["AllowedPattern"].(string); ok && !regexp.MustCompile(pattern).MatchString(value) {
			t.Fatalf("parameter %s = %q does not match its AllowedPattern %s", pname, value, pattern)
		}
		typ, _ := p["Type"].(string)
		if typ == "CommaDelimitedList" || strings.HasPrefix(typ, "List<") {
			var list []any
			for _, item := range strings.Split(value, ",") {
				list = append(list, strings.TrimSpace(item))
			}
			s.params[pname] = list
		} else {
			s.params[pname] = value
		}
	}
	return s
}

// condition evaluates a condition of the Conditions section.
func (s *stack) condition(name string) bool {
	s.t.Helper()
	if v, ok := s.conds[name]; ok {
		return v
	}
	def, ok := s.tmpl.section("Conditions")[name]
	if !ok {
		s.t.Fatalf("template has no condition %s", name)
	}
	v, ok := s.eval(def).(bool)
	if !ok {
		s.t.Fatalf("condition %s does not evaluate to a boolean", name)
	}
	s.conds[name] = v
	return v
}

// resource returns a resource's evaluated Properties, or nil when its Condition is false.
func (s *stack) resource(name string) map[string]any {
	s.t.Helper()
	r, ok := s.tmpl.section("Resources")[name].(map[string]any)
	if !ok {
		s.t.Fatalf("template has no resource %s", name)
	}
	if cond, ok := r["Condition"].(string); ok && !s.condition(cond) {
		return nil
	}
	props, _ := s.eval(r["Properties"]).(map[string]any)
	return props
}

// pseudo holds the pseudo parameters but the stack name.
var pseudo = map[string]string{
	"AWS::Region": region, "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
	"AWS::URLSuffix": "amazonaws.com", "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/test/1",
}

// ref evaluates Ref name.
func (s *stack) ref(name string) any {
	if v, ok := s.params[name]; ok {
		return v
	}
	if v, ok := pseudo[name]; ok {
		return v
	}
	switch name {
	case "AWS::StackName":
		return s.name
	case "AWS::NoValue":
		return noValue{}
	}
	if _, ok := s.tmpl.section("Resources")[name]; !ok {
		s.t.Fatalf("Ref to %s, neither a parameter nor a resource", name)
	}
	return "{" + name + "}"
}

var subVariable = regexp.MustCompile(`\$\{([^}]+)\}`)

// sub evaluates Fn::Sub of text with the extra variables vars.
func (s *stack) sub(text string, vars map[string]any) string {
	return subVariable.ReplaceAllStringFunc(text, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		if v, ok := vars[name]; ok {
			return s.str(s.eval(v))
		}
		if resource, attribute, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
			return "{" + resource + "." + attribute + "}"
		}
		return s.str(s.ref(name))
	})
}

func (s *stack) str(v any) string {
	s.t.Helper()
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	}
	s.t.Fatalf("expected a string, got %#v", v)
	return ""
}

func (s *stack) list(v any) []any {
	s.t.Helper()
	l, ok := v.([]any)
	if !ok {
		s.t.Fatalf("expected a list, got %#v", v)
	}
	return l
}

// eval evaluates v: intrinsic functions are applied, AWS::NoValue removes what it stands for.
func (s *stack) eval(v any) any {
	s.t.Helper()
	if x, ok := v.(map[string]any); ok && len(x) == 1 {
		for k, arg := range x {
			if isFunction(k, arg) {
				return s.call(k, arg)
			}
		}
	}
	return children(v, s.eval)
}

// children returns v, a map or list, with f applied to each of its values and those f turns
// into AWS::NoValue left out; any other v as it is.
func children(v any, f func(any) any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if e := f(val); e != (noValue{}) {
				out[k] = e
			}
		}
		return out
	case []any:
		out := make([]any, 0, len(x))
		for _, val := range x {
			if e := f(val); e != (noValue{}) {
				out = append(out, e)
			}
		}
		return out
	}
	return v
}

func (s *stack) call(fn string, arg any) any {
	s.t.Helper()
	args, _ := arg.([]any)
	switch fn {
	case "Ref":
		return s.ref(arg.(string))
	case "Condition":
		return s.condition(arg.(string))
	case "Fn::If":
		if s.condition(args[0].(string)) {
			return s.eval(args[1])
		}
		return s.eval(args[2])
	case "Fn::Equals":
		return fmt.Sprint(s.eval(args[0])) == fmt.Sprint(s.eval(args[1]))
	case "Fn::Not":
		return !s.eval(args[0]).(bool)
	case "Fn::And", "Fn::Or":
		and := fn == "Fn::And"
		for _, a := range args {
			if s.eval(a).(bool) != and {
				return !and
			}
		}
		return and
	case "Fn::Sub":
		if text, ok := arg.(string); ok {
			return s.sub(text, nil)
		}
		return s.sub(args[0].(string), args[1].(map[string]any))
	case "Fn::Join":
		var parts []string
		for _, p := range s.list(s.eval(args[1])) {
			parts = append(parts, s.str(p))
		}
		return strings.Join(parts, args[0].(string))
	case "Fn::Split":
		var out []any
		for _, p := range strings.Split(s.str(s.eval(args[1])), args[0].(string)) {
			out = append(out, p)
		}
		return out
	case "Fn::Select":
		i, err := strconv.Atoi(fmt.Sprint(s.eval(args[0])))
		if err != nil {
			s.t.Fatalf("Fn::Select index %v: %v", args[0], err)
		}
		return s.list(s.eval(args[1]))[i]
	case "Fn::FindInMap":
		m, _ := s.tmpl.section("Mappings")[s.str(s.eval(args[0]))].(map[string]any)
		top, _ := m[s.str(s.eval(args[1]))].(map[string]any)
		v, ok := top[s.str(s.eval(args[2]))]
		if !ok {
			s.t.Fatalf("Fn::FindInMap %v finds nothing", args)
		}
		return v
	case "Fn::GetAtt":
		return "{" + s.str(args[0]) + "." + s.str(args[1]) + "}"
	case "Fn::GetAZs":
		return []any{region + "a", region + "b"}
	case "Fn::Cidr":
		n, _ := strconv.Atoi(fmt.Sprint(s.eval(args[1])))
		out := make([]any, n)
		for i := range out {
			out[i] = fmt.Sprintf("{cidr %d}", i)
		}
		return out
	case "Fn::Base64":
		return s.eval(arg)
	}
	s.t.Fatalf("intrinsic function %s is not known to the test's evaluator", fn)
	return nil
}

// conditional resolves only Fn::If (with the stack's conditions) and AWS::NoValue in v, leaving
// every other intrinsic function as written.
func (s *stack) conditional(v any) any {
	s.t.Helper()
	if x, ok := v.(map[string]any); ok && len(x) == 1 {
		if args, ok := x["Fn::If"].([]any); ok {
			if s.condition(args[0].(string)) {
				return s.conditional(args[1])
			}
			return s.conditional(args[2])
		}
		if x["Ref"] == "AWS::NoValue" {
			return noValue{}
		}
	}
	return children(v, s.conditional)
}

// functionsIn returns the intrinsic (and rule or condition) functions v calls, nested ones
// included: "Ref", "Condition" and the "Fn::" names.
func functionsIn(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if isFunction(k, val) {
					out = append(out, k)
				}
				walk(val)
			}
		case []any:
			for _, val := range x {
				walk(val)
			}
		}
	}
	walk(v)
	slices.Sort(out)
	return slices.Compact(out)
}

// isFunction tells whether key k with value v calls a function: Ref, Fn::..., or Condition with
// a condition's name (an IAM statement's Condition block is a map).
func isFunction(k string, v any) bool {
	_, name := v.(string)
	return k == "Ref" || strings.HasPrefix(k, "Fn::") || (k == "Condition" && name)
}
