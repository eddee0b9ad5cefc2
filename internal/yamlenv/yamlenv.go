// Package yamlenv reads a configuration struct from YAML and the environment: strict
// decoding that names the dotted key at fault, ${NAME} references in values, an
// environment variable for every scalar key (a.b.c from PREFIX_A_B_C), and a masked view
// of the result for a start-up log. It knows nothing of what the keys mean.
package yamlenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"
)

// envRef is a reference to an environment variable inside a config value: ${NAME} or
// ${NAME:-default}.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// Expand replaces ${NAME} and ${NAME:-default} in the file's scalar values (never in
// keys, and never as YAML: a value cannot add structure). A reference to an unset
// variable without a default is an error naming the key. Data without references is
// returned as is.
func Expand(data []byte, getenv func(string) string) ([]byte, error) {
	if !envRef.Match(data) {
		return data, nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return data, nil // DecodeStrict reports it
	}
	var errs []string
	changed := false
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], joinKey(path, n.Content[i].Value))
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		case yaml.ScalarNode:
			if !envRef.MatchString(n.Value) {
				return
			}
			n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
				m := envRef.FindStringSubmatch(ref)
				if v := getenv(m[1]); v != "" {
					return v
				}
				if m[2] == "" {
					errs = append(errs, fmt.Sprintf("%s: environment variable %s is unset", path, m[1]))
				}
				return m[3]
			})
			n.Tag, n.Style, changed = "", 0, true // retype: "${N:-8080}" becomes a number
		}
	}
	walk(&root, "")
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	if !changed {
		return data, nil
	}
	return yaml.Marshal(&root)
}

// DecodeStrict decodes YAML into v, refusing keys that v has no field for. Errors name
// the dotted key at fault, not only its line.
func DecodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		var line int
		if _, scanErr := fmt.Sscanf(m, "line %d:", &line); scanErr == nil {
			if key := keyAtLine(&root, "", line); key != "" {
				m = key + ": " + m
			}
		}
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// keyAtLine returns the dotted key of the mapping entry on the given line, if any.
func keyAtLine(n *yaml.Node, path string, line int) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, path, line); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			p := joinKey(path, key.Value)
			if key.Line == line {
				return p
			}
			if k := keyAtLine(val, p, line); k != "" {
				return k
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if k := keyAtLine(c, fmt.Sprintf("%s[%d]", path, i), line); k != "" {
				return k
			}
		}
	}
	return ""
}

// Tree is a section of the effective config; it logs as a nested object.
type Tree map[string]any

// MarshalLogObject writes the section's keys in order.
func (c Tree) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for _, k := range slices.Sorted(maps.Keys(c)) {
		if err := addConfigValue(enc, k, c[k]); err != nil {
			return err
		}
	}
	return nil
}

// List is a list of the effective config (tenants, their keys).
type List []any

// MarshalLogArray writes the list's items.
func (l List) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, v := range l {
		var err error
		switch v := v.(type) {
		case Tree:
			err = enc.AppendObject(v)
		case List:
			err = enc.AppendArray(v)
		case string:
			enc.AppendString(v)
		default:
			err = enc.AppendReflected(v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func addConfigValue(enc zapcore.ObjectEncoder, k string, v any) error {
	switch v := v.(type) {
	case Tree:
		return enc.AddObject(k, v)
	case List:
		return enc.AddArray(k, v)
	case string:
		enc.AddString(k, v)
	case bool:
		enc.AddBool(k, v)
	case int:
		enc.AddInt(k, v)
	case int64:
		enc.AddInt64(k, v)
	case float64:
		enc.AddFloat64(k, v)
	default:
		return enc.AddReflected(k, v)
	}
	return nil
}

// Masker is a value that says itself how it appears in the masked view, e.g. a secret
// reference that shows where the secret comes from but never its value.
type Masker interface {
	MaskedConfig() string
}

var maskerType = reflect.TypeFor[Masker]()

// Masked is v (a struct) as a tree of keys for a start-up log, every secret masked: a
// Masker shows its MaskedConfig; a string whose key ends in url is passed through
// maskURL; one whose key names a secret, password or api_key is masked; a
// system_prompt shows only its length.
func Masked(v any, maskURL func(string) string) Tree {
	m, _ := maskedValue(reflect.ValueOf(v), "", maskURL).(Tree)
	return m
}

func maskedValue(v reflect.Value, key string, maskURL func(string) string) any {
	t := v.Type()
	switch {
	case t.Implements(maskerType):
		return v.Interface().(Masker).MaskedConfig()
	case t == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Struct:
		out := make(Tree)
		for i := range t.NumField() {
			sf := t.Field(i)
			name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if !sf.IsExported() || name == "-" {
				continue
			}
			if opts == "inline" {
				if inner, ok := maskedValue(v.Field(i), key, maskURL).(Tree); ok {
					maps.Copy(out, inner)
				}
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			out[name] = maskedValue(v.Field(i), joinKey(key, name), maskURL)
		}
		return out
	case v.Kind() == reflect.Slice:
		out := make(List, v.Len())
		for i := range out {
			out[i] = maskedValue(v.Index(i), key, maskURL)
		}
		return out
	case v.Kind() == reflect.String:
		s, last := v.String(), key[strings.LastIndex(key, ".")+1:]
		switch {
		case s == "":
			return s
		case strings.HasSuffix(last, "url"):
			return maskURL(s)
		case strings.Contains(last, "secret") || strings.Contains(last, "password") || strings.HasSuffix(last, "api_key"):
			return "(masked)"
		case last == "system_prompt":
			// The tenant's instructions to its model: not for the shared log.
			return fmt.Sprintf("(%d characters)", utf8.RuneCountInString(s))
		}
		return s
	}
	return v.Interface()
}

// ApplyEnv overrides every scalar field of the struct v points to from the environment:
// the key a.b.c is read from PREFIX_A_B_C. Values are parsed as the field's type; a bad
// one is an error naming the variable and the key.
func ApplyEnv(v any, prefix string, getenv func(string) string) error {
	return WalkScalars(reflect.ValueOf(v).Elem(), "", func(key string, f reflect.Value) error {
		name := prefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		raw := getenv(name)
		if raw == "" {
			return nil
		}
		if err := setScalar(f, raw); err != nil {
			return fmt.Errorf("%s (from %s): %w", key, name, err)
		}
		return nil
	})
}

// WalkScalars calls fn for every scalar field below v with its dotted YAML key. Slices
// (the tenant list) are not walked: they have no single key.
func WalkScalars(v reflect.Value, path string, fn func(key string, f reflect.Value) error) error {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		f := v.Field(i)
		key := path
		if opts != "inline" {
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			key = joinKey(path, name)
		}
		switch {
		case f.Kind() == reflect.Struct:
			if err := WalkScalars(f, key, fn); err != nil {
				return err
			}
		case f.Kind() == reflect.Slice || f.Kind() == reflect.Map || f.Kind() == reflect.Func:
		default:
			if err := fn(key, f); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinKey(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

var durationType = reflect.TypeFor[time.Duration]()

func setScalar(f reflect.Value, raw string) error {
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 30s or 168h", raw)
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(raw)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%q is not true or false", raw)
		}
		f.SetBool(b)
	case f.CanInt():
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || f.OverflowInt(n) {
			return fmt.Errorf("%q is not a whole number in range", raw)
		}
		f.SetInt(n)
	case f.Kind() == reflect.Float64 || f.Kind() == reflect.Float32:
		x, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", raw)
		}
		f.SetFloat(x)
	default:
		return fmt.Errorf("cannot be set from the environment (type %s)", f.Type())
	}
	return nil
}
