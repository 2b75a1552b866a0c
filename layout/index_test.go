package layout

import (
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const threeShardIndex = `{
  "metadata": {"total_size": 497759232},
  "weight_map": {
    "h.0.attn.c_attn.weight": "model-00001-of-00003.safetensors",
    "h.0.mlp.c_fc.weight": "model-00001-of-00003.safetensors",
    "h.1.attn.c_attn.weight": "model-00002-of-00003.safetensors",
    "lm_head.weight": "model-00003-of-00003.safetensors",
    "wte.weight": "model-00003-of-00003.safetensors"
  }
}`

func TestParseShardIndex(t *testing.T) {
	index, err := ParseShardIndex([]byte(threeShardIndex))
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"total_size": 497759232.0}, index.Metadata)
	assert.Len(t, index.WeightMap, 5)
	assert.Equal(t, "model-00002-of-00003.safetensors", index.WeightMap["h.1.attn.c_attn.weight"])
	assert.Equal(t, []string{
		"model-00001-of-00003.safetensors",
		"model-00002-of-00003.safetensors",
		"model-00003-of-00003.safetensors",
	}, index.Shards())

	t.Run("metadata optional, unknown keys ignored", func(t *testing.T) {
		index, err := ParseShardIndex([]byte(`{"weight_map": {"a": "pytorch_model-00001-of-00001.bin"}, "extra": [1]}`))
		require.NoError(t, err)
		assert.Nil(t, index.Metadata)
		assert.Equal(t, []string{"pytorch_model-00001-of-00001.bin"}, index.Shards())
	})
}

func TestParseShardIndexErrors(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string
	}{
		{"empty", ``, "not a JSON object"},
		{"array", `[]`, "not a JSON object"},
		{"malformed", `{"weight_map": {`, "not valid JSON"},
		{"no weight_map", `{"metadata": {}}`, "no weight_map"},
		{"null weight_map", `{"weight_map": null}`, "no weight_map"},
		{"weight_map an array", `{"weight_map": ["a"]}`, `weight_map is ["a"], want an object`},
		{"empty weight_map", `{"weight_map": {}}`, "weight_map is empty"},
		{"shard not a string", `{"weight_map": {"a": 1}}`, "must map tensor names to file names"},
		{"metadata not an object", `{"metadata": 1, "weight_map": {"a": "x"}}`, "metadata is 1, want an object"},
		{"empty shard name", `{"weight_map": {"a": ""}}`, `tensor "a": empty shard file name`},
		{"shard in a subfolder", `{"weight_map": {"a": "sub/x.safetensors"}}`, `"sub/x.safetensors" is a path`},
		{"absolute shard", `{"weight_map": {"a": "/etc/passwd"}}`, "is a path"},
		{"parent shard", `{"weight_map": {"a": ".."}}`, "is not a file name"},
		{"escaping shard", `{"weight_map": {"a": "../x.safetensors"}}`, "is a path"},
		{"dot shard", `{"weight_map": {"a": "."}}`, "is not a file name"},
		{"backslash shard", `{"weight_map": {"a": "..\\x.bin"}}`, "is a path"},
		{"NUL in shard", `{"weight_map": {"a": "x\u0000.bin"}}`, "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			index, err := ParseShardIndex([]byte(tt.json))
			assert.Nil(t, index)
			require.ErrorContains(t, err, tt.wantErr)
			assert.True(t, strings.HasPrefix(err.Error(), "shard index: "), err.Error())
		})
	}
}

func FuzzParseShardIndex(f *testing.F) {
	for _, seed := range []string{
		threeShardIndex, ``, `[]`, `{}`, `{"weight_map": {}}`, `{"weight_map": {"a": "../x"}}`,
		`{"weight_map": {"a": "/x"}}`, `{"weight_map": {"a": 1}}`, `{"metadata": 1, "weight_map": {"a": "x"}}`,
		`{"weight_map": {"a": "x", "a": "y"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var index *ShardIndex
		var err error
		n := allocs(func() { index, err = ParseShardIndex(data) })
		require.LessOrEqual(t, n, jsonExpansion*uint64(len(data))+parseOverhead, "allocated %d bytes", n)
		if err != nil {
			require.Nil(t, index)
			return
		}
		require.NotEmpty(t, index.WeightMap)
		shards := index.Shards()
		require.NotEmpty(t, shards)
		require.True(t, slices.IsSorted(shards))
		require.Equal(t, len(shards), len(slices.Compact(slices.Clone(shards))), "duplicates")
		for _, shard := range shards {
			// A plain name: joining it to a folder stays in that folder.
			require.NotEmpty(t, shard)
			require.Equal(t, "dir", path.Dir(path.Join("dir", shard)), "shard %q escapes its folder", shard)
			require.NotContains(t, shard, "\\")
		}
		for _, shard := range index.WeightMap {
			_, found := slices.BinarySearch(shards, shard)
			require.True(t, found)
		}
	})
}
