package diff

import (
	"encoding/json"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDiffJSON(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	cases := []struct {
		name string
		a, b string
		want []JSONChange
	}{
		{"equal", `{"a": 1, "b": [1, 2]}`, `{"b": [1, 2], "a": 1}`, nil},
		{"numbers compare by value", `{"a": 1.0, "b": 1e2, "c": 0.1}`, `{"a": 1, "b": 100, "c": 0.10}`, nil},
		{"nested change", `{"a": {"b": {"c": 1}}}`, `{"a": {"b": {"c": 2}}}`,
			[]JSONChange{{Key: "a.b.c", Kind: Changed, Old: raw(`1`), New: raw(`2`)}}},
		{"array grows and shrinks", `{"x": [1, 2, 3], "y": [1]}`, `{"x": [1, 2], "y": [1, {"k": null}]}`,
			[]JSONChange{
				{Key: "x[2]", Kind: Removed, Old: raw(`3`)},
				{Key: "y[1]", Kind: Added, New: raw(`{"k":null}`)},
			}},
		{"arrays of objects", `{"l": [{"a": 1}]}`, `{"l": [{"a": 1, "b": "<s>"}]}`,
			[]JSONChange{{Key: "l[0].b", Kind: Added, New: raw(`"<s>"`)}}},
		{"kind changes", `{"a": {"b": 1}, "c": null}`, `{"a": [1], "c": 0}`,
			[]JSONChange{
				{Key: "a", Kind: Changed, Old: raw(`{"b":1}`), New: raw(`[1]`)},
				{Key: "c", Kind: Changed, Old: raw(`null`), New: raw(`0`)},
			}},
		{"awkward keys", `{"a.b": 1, "": 2, "x y": {"q\"": 3}}`, `{"a.b": 2, "": 3, "x y": {"q\"": 4}}`,
			[]JSONChange{
				{Key: `[""]`, Kind: Changed, Old: raw(`2`), New: raw(`3`)},
				{Key: `["a.b"]`, Kind: Changed, Old: raw(`1`), New: raw(`2`)},
				{Key: `["x y"]["q\""]`, Kind: Changed, Old: raw(`3`), New: raw(`4`)},
			}},
		{"root not an object", `[1]`, `"x"`, []JSONChange{{Key: "", Kind: Changed, Old: raw(`[1]`), New: raw(`"x"`)}}},
		{"huge exponents do not hang", `{"a": 1e999999999}`, `{"a": 1e999999998}`,
			[]JSONChange{{Key: "a", Kind: Changed, Old: raw(`1e999999999`), New: raw(`1e999999998`)}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := diffJSON("f.json", []byte(tc.a), []byte(tc.b))
			require.NoError(t, err)
			for i := range tc.want {
				tc.want[i].File = "f.json"
			}
			assert.Equal(t, tc.want, got)
		})
	}
	_, err := diffJSON("f.json", []byte(`{"a": 1} x`), []byte(`{}`))
	assert.ErrorContains(t, err, "side A")
	_, err = diffJSON("f.json", []byte(`{}`), []byte(`{`))
	assert.ErrorContains(t, err, "side B")
}

func TestParseModelMergesBothForms(t *testing.T) {
	want := []merge{{"Ġ", "t"}, {"h", "e"}, {"a b", "c"}}
	got, err := parseModelMerges(json.RawMessage(`["Ġ t", "h e", ["a b", "c"]]`))
	require.NoError(t, err)
	assert.Equal(t, want, got)

	for _, bad := range []string{`["nospace"]`, `[["one"]]`, `[1]`, `{"a": 1}`} {
		_, err := parseModelMerges(json.RawMessage(bad))
		assert.Error(t, err, bad)
	}
	got, err = parseModelMerges(json.RawMessage(`null`))
	require.NoError(t, err)
	assert.Nil(t, got)
}

func TestParseMergesTxt(t *testing.T) {
	got, err := parseMergesTxt([]byte("#version: 0.2\nĠ t\r\nh e\n\n# #\n"))
	require.NoError(t, err)
	assert.Equal(t, []merge{{"Ġ", "t"}, {"h", "e"}, {"#", "#"}}, got, "only the first line is a header")
	_, err = parseMergesTxt([]byte("#version: 0.2\nbad\n"))
	assert.ErrorContains(t, err, "line 2")
}

func TestParseTokenizerJSON(t *testing.T) {
	tj, err := parseTokenizerJSON([]byte(`{"added_tokens": [{"id": 3, "content": "<pad>", "special": true}],
		"model": {"type": "Unigram", "vocab": [["<unk>", 0], ["▁a", -1.5], ["<unk>", -3]]}}`))
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"<unk>": 0, "▁a": 1}, tj.vocab)
	assert.Nil(t, tj.merges)
	assert.Equal(t, []addedToken{{ID: 3, Content: "<pad>", Special: true}}, tj.added)

	_, err = parseTokenizerJSON([]byte(`{"added_tokens": [{"content": "x"}]}`))
	assert.ErrorContains(t, err, "added_tokens[0]")
}

func TestParseSpecialTokens(t *testing.T) {
	st, err := parseSpecialTokensMap([]byte(`{"bos_token": "<s>", "eos_token": {"content": "</s>", "lstrip": false},
		"pad_token": null, "additional_special_tokens": ["<a>", {"content": "<b>"}]}`))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"bos_token": "<s>", "eos_token": "</s>"}, st.roles)
	sort.Strings(st.tokens)
	assert.Equal(t, []string{"</s>", "<a>", "<b>", "<s>"}, st.tokens)

	cfg, err := parseTokenizerConfig([]byte(`{"add_bos_token": false, "unk_token": "<unk>", "model_max_length": 5,
		"added_tokens_decoder": {"7": {"content": "<x>", "special": true}, "8": {"content": "y", "special": false}}}`))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"unk_token": "<unk>"}, cfg.roles)
	sort.Slice(cfg.added, func(i, j int) bool { return cfg.added[i].ID < cfg.added[j].ID })
	assert.Equal(t, []addedToken{{7, "<x>", true}, {8, "y", false}}, cfg.added)

	_, err = parseTokenizerConfig([]byte(`{"added_tokens_decoder": {"x": {"content": "a"}}}`))
	assert.Error(t, err)
}

func TestDiffMerges(t *testing.T) {
	a := []merge{{"a", "b"}, {"c", "d"}, {"e", "f"}}
	b := []merge{{"c", "d"}, {"a", "b"}, {"g", "h"}}
	assert.Equal(t, &MergesDiff{CountA: 3, CountB: 3, Added: 1, Removed: 1,
		FirstAdded: []string{"g h"}, FirstRemoved: []string{"e f"}, Reordered: true}, diffMerges(a, b))
}

func TestNaturalLess(t *testing.T) {
	names := []string{"h.10.mlp", "h.2.mlp", "h.1.mlp", "wte", "h.02.attn", "h.2", "ln_f", "h.2.attn"}
	sort.Slice(names, func(i, j int) bool { return naturalLess(names[i], names[j]) })
	assert.Equal(t, []string{"h.1.mlp", "h.2", "h.02.attn", "h.2.attn", "h.2.mlp", "h.10.mlp", "ln_f", "wte"}, names)
}

func TestHalfToFloat(t *testing.T) {
	cases := map[uint16]float64{
		0x0000: 0, 0x3c00: 1, 0xc000: -2, 0x7bff: 65504, 0x0001: math.Ldexp(1, -24), 0x0400: math.Ldexp(1, -14),
		0x7c00: math.Inf(1), 0xfc00: math.Inf(-1),
	}
	for bits, want := range cases {
		assert.Equal(t, want, halfToFloat(bits), "%#04x", bits)
	}
	assert.True(t, math.IsNaN(halfToFloat(0x7e00)))
}

func TestSummaryWording(t *testing.T) {
	assert.Equal(t, "<1%", percent(1, 1000))
	assert.Equal(t, ">99%", percent(999, 1000))
	assert.Equal(t, "50%", percent(1, 2))
	assert.Equal(t, "100%", percent(3, 3))
	assert.Equal(t, "0%", percent(0, 0))
	assert.Equal(t, []string{"1 key changed", "2 added"}, countParts("key", "keys", 1, 2, 0))
	assert.Equal(t, []string{"3 keys added"}, countParts("key", "keys", 0, 3, 0))

	rep := &Report{Tokenizer: &TokenizerDiff{}}
	assert.Equal(t, "config: none; tokenizer: none; weights: none", rep.Summary())
	rep.Files = []FileChange{{Path: "pytorch_model.bin", Role: "weights", Kind: Changed}, {Path: "README.md", Role: "other", Kind: Removed}}
	assert.Equal(t, "config: none; tokenizer: none; weights: 1 of 1 file changed (no tensor information); other files: 1 removed", rep.Summary())
}

// Fuzz targets: every parser of a checkpoint's files must return an error,
// never panic, on any input.

func FuzzTokenizerJSON(f *testing.F) {
	f.Add([]byte(`{"added_tokens": [{"id": 1, "content": "<s>", "special": true}], "model": {"vocab": {"a": 0}, "merges": ["a b", ["c", "d"]]}}`))
	f.Add([]byte(`{"model": {"vocab": [["a", 0.0]], "merges": null}}`))
	f.Add([]byte(`{"model": {"vocab": [[]], "merges": [[1, 2]]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tj, err := parseTokenizerJSON(data)
		if err == nil && tj == nil {
			t.Fatal("nil result without an error")
		}
	})
}

func FuzzMergesTxt(f *testing.F) {
	f.Add([]byte("#version: 0.2\nĠ t\nh e\n"))
	f.Add([]byte("a b\r\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		merges, err := parseMergesTxt(data)
		if err != nil {
			return
		}
		for _, m := range merges {
			if strings.Contains(m.left, " ") {
				t.Fatalf("left token %q holds the separator", m.left)
			}
		}
	})
}

func FuzzSpecialTokens(f *testing.F) {
	f.Add([]byte(`{"bos_token": "<s>", "additional_special_tokens": ["<a>", {"content": "<b>"}]}`))
	f.Add([]byte(`{"added_tokens_decoder": {"5": {"content": "<x>", "special": true}}, "pad_token": null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if st, err := parseSpecialTokensMap(data); err == nil && st == nil {
			t.Fatal("nil result without an error")
		}
		if st, err := parseTokenizerConfig(data); err == nil && st == nil {
			t.Fatal("nil result without an error")
		}
		_, _ = parseVocabJSON("vocab.json", data)
		_ = parseVocabTxt(data)
	})
}

func FuzzDiffJSON(f *testing.F) {
	f.Add([]byte(`{"a": 1, "b": [1, {"c": null}]}`), []byte(`{"a": 1.0, "b": [2], "d": "x"}`))
	f.Add([]byte(`[1e5]`), []byte(`[100000]`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		changes, err := diffJSON("f.json", a, b)
		if err != nil {
			return
		}
		for _, c := range changes {
			for _, v := range []json.RawMessage{c.Old, c.New} {
				if len(v) > 0 && !json.Valid(v) {
					t.Fatalf("%s: value %q is not JSON", c.Key, v)
				}
			}
		}
		// A document never differs from itself.
		if self, err := diffJSON("f.json", a, a); err == nil && len(self) > 0 {
			t.Fatalf("a document differs from itself: %+v", self)
		}
	})
}
