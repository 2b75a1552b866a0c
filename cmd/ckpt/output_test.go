package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/diff"
)

// A tensor's shape is null on the side that lacks it and [] for a scalar;
// a JSON change's missing side is null.
func TestDiffOutputNullsAndEmpties(t *testing.T) {
	rep := &diff.Report{
		A: "x@1", B: "x@2",
		Tensors: []diff.TensorChange{
			{Name: "added", Kind: diff.Added, ShapeB: []int64{2, 3}},
			{Name: "removed", Kind: diff.Removed, ShapeA: []int64{4}},
			{Name: "scalar", Kind: diff.Changed},
		},
		JSON: []diff.JSONChange{{File: "config.json", Key: "k", Kind: diff.Added, New: json.RawMessage(`1`)}},
	}
	data, err := json.Marshal(newDiffOutput(rep))
	require.NoError(t, err)
	var got struct {
		Tensors []struct {
			ShapeA json.RawMessage `json:"shape_a"`
			ShapeB json.RawMessage `json:"shape_b"`
		} `json:"tensors"`
		JSON []struct {
			Old json.RawMessage `json:"old"`
			New json.RawMessage `json:"new"`
		} `json:"json"`
		Files     json.RawMessage `json:"files"`
		Tokenizer json.RawMessage `json:"tokenizer"`
		Notes     json.RawMessage `json:"notes"`
	}
	require.NoError(t, json.Unmarshal(data, &got))
	require.Len(t, got.Tensors, 3)
	cases := []struct{ a, b string }{{"null", "[2,3]"}, {"[4]", "null"}, {"[]", "[]"}}
	for i, want := range cases {
		assert.JSONEq(t, want.a, string(got.Tensors[i].ShapeA), "tensor %d shape_a", i)
		assert.JSONEq(t, want.b, string(got.Tensors[i].ShapeB), "tensor %d shape_b", i)
	}
	require.Len(t, got.JSON, 1)
	assert.Equal(t, "null", string(got.JSON[0].Old))
	assert.Equal(t, "1", string(got.JSON[0].New))
	assert.Equal(t, "[]", string(got.Files))
	assert.Equal(t, "null", string(got.Tokenizer))
	assert.Equal(t, "[]", string(got.Notes))
}
