package testutil

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

// PEFTFixtureBase is the base model the PEFT fixture's
// base_model_name_or_path names.
const PEFTFixtureBase = "meta-llama/Llama-3.2-1B"

// PEFTFixture is the path of testdata/peft/adapter_config.json: a LoRA
// adapter's configuration exactly as PEFT writes it (r=16, lora_alpha=32
// on q_proj and v_proj of PEFTFixtureBase; testdata/peft/README.md).
func PEFTFixture(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(tb, ok)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "peft", "adapter_config.json")
}

// WriteSafetensors writes F32 tensors (name -> shape; values derived from
// seed) as a safetensors file.
func WriteSafetensors(tb testing.TB, path string, shapes map[string][]int64, seed float32) {
	tb.Helper()
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var data []byte
	for i, n := range names {
		numel := int64(1)
		for _, d := range shapes[n] {
			numel *= d
		}
		begin := len(data)
		for k := int64(0); k < numel; k++ {
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(seed+float32(i)+float32(k)/1000))
		}
		header[n] = map[string]any{"dtype": "F32", "shape": shapes[n], "data_offsets": []int{begin, len(data)}}
	}
	h, err := json.Marshal(header)
	require.NoError(tb, err)
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(append(out, h...), data...)
	require.NoError(tb, os.WriteFile(path, out, 0o644))
}

// LoRATensors are the tensors of a rank-r LoRA adapter on the given
// modules (q_proj, v_proj, ...) of two layers, named as PEFT saves them.
func LoRATensors(r int64, modules ...string) map[string][]int64 {
	out := map[string][]int64{}
	for _, layer := range []string{"0", "1"} {
		for _, m := range modules {
			prefix := "base_model.model.model.layers." + layer + ".self_attn." + m
			out[prefix+".lora_A.weight"] = []int64{r, 64}
			out[prefix+".lora_B.weight"] = []int64{64, r}
		}
	}
	return out
}

// WriteAdapter writes a PEFT adapter folder under a new temporary folder:
// the fixture's adapter_config.json (edited by edit, if given: then
// rewritten as PEFT would, indented with sorted keys), weights for its r
// and target_modules (seed varies their values), and a model card.
func WriteAdapter(tb testing.TB, edit func(map[string]any), seed float32) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "adapter")
	require.NoError(tb, os.MkdirAll(dir, 0o755))
	data, err := os.ReadFile(PEFTFixture(tb))
	require.NoError(tb, err)
	var m map[string]any
	require.NoError(tb, json.Unmarshal(data, &m))
	if edit != nil {
		edit(m)
		data, err = json.MarshalIndent(m, "", "  ")
		require.NoError(tb, err)
		m = nil
		require.NoError(tb, json.Unmarshal(data, &m)) // as read back: numbers float64, lists []any
	}
	var modules []string
	for _, v := range m["target_modules"].([]any) {
		modules = append(modules, v.(string))
	}
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "adapter_config.json"), data, 0o644))
	WriteSafetensors(tb, filepath.Join(dir, "adapter_model.safetensors"), LoRATensors(int64(m["r"].(float64)), modules...), seed)
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "README.md"), []byte("---\nlibrary_name: peft\n---\n"), 0o644))
	return dir
}
