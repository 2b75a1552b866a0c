package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/miniotest"
)

// The docs of the --json output (docs/cli-json.md) and the output types
// (output.go) cannot drift: every documented field is in the types, with
// the documented type, and every field of the types is documented. Each
// schema has a section that starts with a heading and a line "Schema
// `ckpt.<command>/v1`.", and each shared object a section headed "The
// <name> object"; the section's table lists its fields, one per row:
//
//	| `files[].path` | string | ... |
//
// Nested fields are written with dots, the elements of a list with [];
// a field holding a shared object (record, policy, decision) is one row
// of type "record object" (its fields are in the record section), and an
// object that has every field of a shared one has the row `*` ("record
// object") for them.

// sharedName is the name under which sharedTypes documents t, if any.
func sharedName(t reflect.Type) (string, bool) {
	for name, v := range sharedTypes {
		if reflect.TypeOf(v) == t {
			return name, true
		}
	}
	return "", false
}

var rawMessageType = reflect.TypeOf(json.RawMessage(nil))

// docType is how docs/cli-json.md writes the type of a field.
func docType(t reflect.Type) string {
	if t == rawMessageType {
		return "any"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.Pointer:
		return docType(t.Elem()) + " or null"
	case reflect.Slice:
		return "array of " + docType(t.Elem())
	case reflect.Map:
		return "object of " + docType(t.Elem())
	case reflect.Struct:
		if name, ok := sharedName(t); ok {
			return name + " object"
		}
		return "object"
	}
	return "unsupported " + t.String()
}

// structOf is the struct a field's value holds (through pointers and
// lists), if any.
func structOf(t reflect.Type) (reflect.Type, string, bool) {
	suffix := ""
	for {
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
			continue
		case reflect.Slice:
			if t == rawMessageType {
				return nil, "", false
			}
			t, suffix = t.Elem(), suffix+"[]"
			continue
		case reflect.Struct:
			return t, suffix, true
		}
		return nil, "", false
	}
}

// typeFields adds to out every documented row of struct t under prefix
// (key → type), and reports fields that break the conventions.
func typeFields(t reflect.Type, prefix string, out map[string]string, problems *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		if f.Anonymous && !hasTag {
			if name, ok := sharedName(f.Type); ok {
				out[prefix+"*"] = name + " object"
				continue
			}
			typeFields(f.Type, prefix, out, problems)
			continue
		}
		where := t.Name() + "." + f.Name
		if !hasTag {
			*problems = append(*problems, where+": no json tag")
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts != "" {
			*problems = append(*problems, fmt.Sprintf("%s: tag option %q (every key is always present)", where, opts))
		}
		if !regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`).MatchString(name) {
			*problems = append(*problems, fmt.Sprintf("%s: key %q is not snake_case", where, name))
		}
		key := prefix + name
		out[key] = docType(f.Type)
		if st, suffix, ok := structOf(f.Type); ok {
			if _, shared := sharedName(st); !shared {
				typeFields(st, key+suffix+".", out, problems)
			}
		}
	}
}

// docSection is one section of docs/cli-json.md: its table and its first
// JSON example.
type docSection struct {
	fields  map[string]string
	example string
}

var (
	schemaLine    = regexp.MustCompile("^Schema `(ckpt\\.[a-z.-]+/v[0-9]+)`")
	sharedHeading = regexp.MustCompile("^#{2,3} The ([a-z]+) object")
)

// readDocs parses docs/cli-json.md into sections by schema or shared
// object name.
func readDocs(t *testing.T) map[string]*docSection {
	t.Helper()
	root, err := miniotest.ModuleRoot()
	require.NoError(t, err)
	f, err := os.Open(filepath.Join(root, "docs", "cli-json.md"))
	require.NoError(t, err)
	defer f.Close()
	sections := map[string]*docSection{}
	var cur *docSection
	inExample, exampleDone := false, false
	var example strings.Builder
	start := func(name string) {
		require.NotContains(t, sections, name, "two sections for %s", name)
		cur = &docSection{fields: map[string]string{}}
		sections[name] = cur
	}
	afterHeading := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			cur, inExample, exampleDone, afterHeading = nil, false, false, true
			if m := sharedHeading.FindStringSubmatch(line); m != nil {
				start(m[1])
			}
			continue
		}
		if m := schemaLine.FindStringSubmatch(line); m != nil && afterHeading && cur == nil {
			start(m[1])
		}
		if strings.TrimSpace(line) != "" {
			afterHeading = false
		}
		if cur == nil {
			continue
		}
		switch {
		case inExample && line == "```":
			inExample, exampleDone = false, true
			cur.example = example.String()
		case inExample:
			example.WriteString(line + "\n")
		case line == "```json" && !exampleDone:
			inExample = true
			example.Reset()
		case strings.HasPrefix(line, "| `"):
			cells := strings.Split(line, "|")
			require.GreaterOrEqual(t, len(cells), 5, "table row %q", line)
			key := strings.Trim(strings.TrimSpace(cells[1]), "`")
			require.NotContains(t, cur.fields, key, "%q documented twice", key)
			cur.fields[key] = strings.TrimSpace(cells[2])
		}
	}
	require.NoError(t, sc.Err())
	return sections
}

func TestJSONDocsMatchTypes(t *testing.T) {
	sections := readDocs(t)
	want := map[string]any{}
	for schema, v := range outputTypes {
		want[schema] = v
	}
	for name, v := range sharedTypes {
		want[name] = v
	}
	var names []string
	for name := range sections {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		assert.Contains(t, want, name, "docs/cli-json.md documents %s, which no output type has", name)
	}
	for name, v := range want {
		t.Run(name, func(t *testing.T) {
			sec := sections[name]
			require.NotNil(t, sec, "docs/cli-json.md has no section for %s", name)
			fields := map[string]string{}
			var problems []string
			typeFields(reflect.TypeOf(v), "", fields, &problems)
			assert.Empty(t, problems)
			for key, typ := range fields {
				doc, ok := sec.fields[key]
				if assert.True(t, ok, "%s: field %q (%s) is not documented", name, key, typ) {
					assert.Equal(t, typ, doc, "%s: type of %q", name, key)
				}
			}
			for key := range sec.fields {
				assert.Contains(t, fields, key, "%s: documented field %q is in no output type", name, key)
			}
			if _, shared := sharedTypes[name]; shared {
				return
			}
			assert.Equal(t, "string", fields["schema"])
			require.NotEmpty(t, sec.example, "%s: no ```json example", name)
			var doc map[string]any
			require.NoError(t, json.Unmarshal([]byte(sec.example), &doc), "%s: example", name)
			assert.Equal(t, name, doc["schema"], "the example's schema")
			assert.True(t, strings.HasPrefix(sec.example, "{\n  \"schema\": "), "%s: the example starts with its schema", name)
			var decoded any
			require.NoError(t, json.Unmarshal([]byte(sec.example), &decoded))
			assert.Empty(t, checkExample(reflect.TypeOf(v), decoded, ""), "%s: the example does not fit the type", name)
		})
	}
}

// checkExample lists where a decoded JSON value v does not fit type t:
// an object must have every key of its struct and no other, and each value
// the JSON type of its field.
func checkExample(t reflect.Type, v any, path string) []string {
	if t == rawMessageType {
		return nil
	}
	if t.Kind() == reflect.Pointer {
		if v == nil {
			return nil
		}
		return checkExample(t.Elem(), v, path)
	}
	bad := func() []string { return []string{fmt.Sprintf("%s: %v is not %s", path, v, docType(t))} }
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			return bad()
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return bad()
		}
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint32, reflect.Uint64:
		if n, ok := v.(float64); !ok || n != float64(int64(n)) {
			return bad()
		}
	case reflect.Float64:
		if _, ok := v.(float64); !ok {
			return bad()
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			return bad()
		}
		var out []string
		for i, e := range list {
			out = append(out, checkExample(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		var out []string
		for k, e := range obj {
			out = append(out, checkExample(t.Elem(), e, path+"."+k)...)
		}
		return out
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		fields := map[string]reflect.Type{}
		structKeys(t, fields)
		var out []string
		for k, ft := range fields {
			e, ok := obj[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s: no key %q", path, k))
				continue
			}
			out = append(out, checkExample(ft, e, path+"."+k)...)
		}
		for k := range obj {
			if _, ok := fields[k]; !ok {
				out = append(out, fmt.Sprintf("%s: unknown key %q", path, k))
			}
		}
		return out
	}
	return nil
}

// structKeys maps each JSON key of struct t (embedded structs flattened)
// to its type.
func structKeys(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		if f.Anonymous && !hasTag {
			structKeys(f.Type, out)
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		out[name] = f.Type
	}
}

// TestReadmeJSONExamples: every JSON example of the README that names a
// schema fits that schema's type, every key present.
func TestReadmeJSONExamples(t *testing.T) {
	root, err := miniotest.ModuleRoot()
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	checked := 0
	for _, b := range blocks {
		var doc map[string]any
		if json.Unmarshal([]byte(b[1]), &doc) != nil {
			continue
		}
		schema, ok := doc["schema"].(string)
		if !ok {
			continue
		}
		typ, ok := outputTypes[schema]
		if assert.True(t, ok, "README shows an unknown schema %q", schema) {
			var decoded any
			require.NoError(t, json.Unmarshal([]byte(b[1]), &decoded))
			assert.Empty(t, checkExample(reflect.TypeOf(typ), decoded, ""), "README example of %s", schema)
			checked++
		}
	}
	assert.Positive(t, checked, "the README shows no --json example")
}

// TestPrintJSONOnlyOutputTypes: nothing but a registered output type with
// its own schema is printed as JSON.
func TestPrintJSONOnlyOutputTypes(t *testing.T) {
	cases := []struct {
		name string
		v    any
		ok   bool
	}{
		{"output type", duOutput{Schema: schemaName("du")}, true},
		{"output type, other schema", duOutput{Schema: schemaName("gc")}, false},
		{"output type, no schema", duOutput{}, false},
		{"pointer", &duOutput{Schema: schemaName("du")}, false},
		{"map", map[string]any{"schema": schemaName("du")}, false},
		{"shared object", recordOutput{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			a := &app{stdout: &out}
			err := a.printJSON(tc.v)
			if tc.ok {
				require.NoError(t, err)
				assert.True(t, strings.HasPrefix(out.String(), "{\n  \"schema\": "))
			} else {
				require.Error(t, err)
				assert.Empty(t, out.String())
			}
		})
	}
}
