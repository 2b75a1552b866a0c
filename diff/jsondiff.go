package diff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/manifest"
)

// JSONChange is one difference between the two sides' versions of a JSON
// file, at one key path.
type JSONChange struct {
	File string `json:"file"`
	// Key is the path of the value: object keys joined by "." and array
	// indexes in brackets, e.g. "task_specific_params.text-generation.max_length"
	// or "architectures[0]". A key that is empty or holds ".", "[", "]", a
	// quote or white space is written as a JSON string in brackets:
	// `rope_scaling["a.b"]`. "" is the whole document.
	Key  string `json:"key"`
	Kind Kind   `json:"kind"` // Added, Removed or Changed
	// Old and New are the compact JSON of the values; Old is empty for
	// Added and New for Removed. Numbers keep their text; numbers of equal
	// value (1.0 and 1) are not a change.
	Old json.RawMessage `json:"old,omitempty"`
	New json.RawMessage `json:"new,omitempty"`
}

// keyDiffed reports whether a file is compared key by key: *.json files of
// role config, generation-config or tokenizer, except tokenizer.json and
// vocab.json, which the tokenizer comparison reads.
func keyDiffed(f *manifest.File) bool {
	switch layout.Role(f.Role) {
	case layout.RoleConfig, layout.RoleGenerationConfig, layout.RoleTokenizer:
	default:
		return false
	}
	base := path.Base(f.Path)
	return path.Ext(base) == ".json" && base != "tokenizer.json" && base != "vocab.json"
}

// diffJSONFiles compares, key by key, every JSON file both sides have with
// different digests. A file that is not valid JSON on a side is left to
// the file comparison, with a note.
func diffJSONFiles(ctx context.Context, a, b *Side, files []FileChange) ([]JSONChange, []string, error) {
	var changes []JSONChange
	var notes []string
	for _, fc := range files {
		fa, fb := a.Manifest.File(fc.Path), b.Manifest.File(fc.Path)
		if fc.Kind != Changed || !keyDiffed(fa) || !keyDiffed(fb) {
			continue
		}
		da, err := a.readWhole(ctx, fa)
		if errors.Is(err, errTooLarge) {
			notes = append(notes, err.Error())
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		db, err := b.readWhole(ctx, fb)
		if errors.Is(err, errTooLarge) {
			notes = append(notes, err.Error())
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		cs, err := diffJSON(fc.Path, da, db)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %v; compared as a file only", textsafe.Name(fc.Path), err))
			continue
		}
		changes = append(changes, cs...)
	}
	return changes, notes, nil
}

// diffJSON compares two JSON documents and lists their differences by key
// path, in document order with object keys sorted.
func diffJSON(file string, a, b []byte) ([]JSONChange, error) {
	va, err := decodeJSON(a)
	if err != nil {
		return nil, fmt.Errorf("side A is not valid JSON: %w", err)
	}
	vb, err := decodeJSON(b)
	if err != nil {
		return nil, fmt.Errorf("side B is not valid JSON: %w", err)
	}
	w := jsonWalker{file: file}
	w.walk("", va, vb)
	return w.changes, nil
}

// decodeJSON decodes one JSON value, numbers as json.Number, refusing
// trailing data.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

type jsonWalker struct {
	file    string
	changes []JSONChange
}

func (w *jsonWalker) add(key string, kind Kind, old, new any, hasOld, hasNew bool) {
	c := JSONChange{File: w.file, Key: key, Kind: kind}
	if hasOld {
		c.Old = compactJSON(old)
	}
	if hasNew {
		c.New = compactJSON(new)
	}
	w.changes = append(w.changes, c)
}

func (w *jsonWalker) walk(key string, a, b any) {
	switch av := a.(type) {
	case map[string]any:
		if bv, ok := b.(map[string]any); ok {
			w.walkObjects(key, av, bv)
			return
		}
	case []any:
		if bv, ok := b.([]any); ok {
			w.walkArrays(key, av, bv)
			return
		}
	}
	if !equalJSON(a, b) {
		w.add(key, Changed, a, b, true, true)
	}
}

func (w *jsonWalker) walkObjects(key string, a, b map[string]any) {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		child := joinKey(key, k)
		av, inA := a[k]
		bv, inB := b[k]
		switch {
		case !inB:
			w.add(child, Removed, av, nil, true, false)
		case !inA:
			w.add(child, Added, nil, bv, false, true)
		default:
			w.walk(child, av, bv)
		}
	}
}

func (w *jsonWalker) walkArrays(key string, a, b []any) {
	for i := range max(len(a), len(b)) {
		child := key + "[" + strconv.Itoa(i) + "]"
		switch {
		case i >= len(b):
			w.add(child, Removed, a[i], nil, true, false)
		case i >= len(a):
			w.add(child, Added, nil, b[i], false, true)
		default:
			w.walk(child, a[i], b[i])
		}
	}
}

// joinKey appends object key k to the key path parent.
func joinKey(parent, k string) string {
	if k == "" || strings.ContainsAny(k, ".[]\"' \t\r\n") {
		return parent + "[" + string(compactJSON(k)) + "]"
	}
	if parent == "" {
		return k
	}
	return parent + "." + k
}

// equalJSON compares two decoded scalars (or mismatched kinds); numbers by
// exact value.
func equalJSON(a, b any) bool {
	if na, ok := a.(json.Number); ok {
		nb, ok := b.(json.Number)
		if !ok {
			return false
		}
		return equalNumbers(string(na), string(nb))
	}
	switch a.(type) {
	case map[string]any, []any:
		return false // b has another kind, or walk would have descended
	}
	return a == b
}

// equalNumbers compares two JSON number literals by value: exactly, unless
// an exponent is so large that exact arithmetic would be costly, in which
// case as float64.
func equalNumbers(a, b string) bool {
	if a == b {
		return true
	}
	fa, errA := strconv.ParseFloat(a, 64)
	fb, errB := strconv.ParseFloat(b, 64)
	if errA == nil && errB == nil && fa != fb {
		return false // rounding is monotonic: different floats, different values
	}
	if hugeExponent(a) || hugeExponent(b) {
		return errA == nil && errB == nil
	}
	ra, okA := new(big.Rat).SetString(a)
	rb, okB := new(big.Rat).SetString(b)
	return okA && okB && ra.Cmp(rb) == 0
}

// hugeExponent reports whether a number literal's exponent exceeds 1000 in
// magnitude (or cannot be read).
func hugeExponent(n string) bool {
	i := strings.IndexAny(n, "eE")
	if i < 0 {
		return false
	}
	e, err := strconv.Atoi(n[i+1:])
	return err != nil || e > 1000 || e < -1000
}

// compactJSON encodes a decoded value back to compact JSON, without
// escaping <, > and & (tokens such as <|endoftext|> stay readable).
func compactJSON(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return json.RawMessage(strconv.Quote(fmt.Sprint(v)))
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}
