package diff_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/diff"
	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/refs"
)

var tinyTensors = len(synth.TinyModel().Tensors())

func TestIdenticalCheckpoints(t *testing.T) {
	r := newRegistry(t)
	_, ckpts := writeRun(t, 10, nil)
	push(t, r, ckpts[0], store.PushOptions{Name: "run"})
	push(t, r, ckpts[0], store.PushOptions{Name: "copy", Version: "1"})

	a, b := fromRegistry(t, r, "run", "100"), fromRegistry(t, r, "copy", "latest")
	ra, rb := count(a), count(b)
	rep := compare(t, a, b, diff.Options{Stats: true})

	assert.Equal(t, "run@100", rep.A)
	assert.Equal(t, "copy@1", rep.B)
	assert.True(t, rep.Identical())
	for _, fc := range rep.Files {
		assert.Equal(t, diff.Same, fc.Kind, fc.Path)
	}
	assert.Empty(t, rep.JSON)
	assert.True(t, rep.Tokenizer.Same)
	require.Len(t, rep.Tensors, tinyTensors)
	for _, tc := range rep.Tensors {
		assert.Equal(t, diff.Same, tc.Kind, tc.Name)
		assert.Nil(t, tc.Stats, tc.Name)
	}
	assert.Equal(t, fmt.Sprintf("config: same; tokenizer: same; weights: same (%d tensors)", tinyTensors), rep.Summary())
	assert.Empty(t, ra.reads, "identical sides need no data")
	assert.Empty(t, rb.reads, "identical sides need no data")
}

func TestCheckpointsOfOneRun(t *testing.T) {
	r := newRegistry(t)
	_, ckpts := writeRun(t, 10, nil)
	for _, ck := range ckpts[:2] {
		push(t, r, ck, store.PushOptions{Name: "run"})
	}
	rep := compare(t, fromRegistry(t, r, "run", "100"), fromRegistry(t, r, "run", "200"), diff.Options{})

	assert.Equal(t, diff.Changed, fileByPath(t, rep, "model.safetensors").Kind)
	assert.Equal(t, diff.Changed, fileByPath(t, rep, "trainer_state.json").Kind)
	assert.Equal(t, diff.Same, fileByPath(t, rep, "config.json").Kind)
	assert.Equal(t, diff.Same, fileByPath(t, rep, "tokenizer.json").Kind)
	assert.Empty(t, rep.JSON)
	for _, tc := range rep.Tensors {
		assert.Equal(t, diff.Changed, tc.Kind, tc.Name)
		assert.Equal(t, "BF16", tc.DtypeA)
		assert.Equal(t, tc.ShapeA, tc.ShapeB)
	}
	assert.Equal(t, fmt.Sprintf("config: same; tokenizer: same; weights: %d of %d tensors changed (100%% of bytes); other files: 1 changed", tinyTensors, tinyTensors), rep.Summary())
}

func TestFrozenEmbeddingIsSame(t *testing.T) {
	_, ckpts := writeRun(t, 10, func(s *synth.RunSpec) { s.FrozenEmbedding = true })
	rep := compare(t, fromFolder(t, ckpts[0]), fromFolder(t, ckpts[2]), diff.Options{})
	kinds := tensorKinds(rep)
	assert.Equal(t, diff.Same, kinds["wte.weight"])
	assert.Equal(t, diff.Same, kinds["wpe.weight"])
	assert.Equal(t, diff.Changed, kinds["h.0.attn.c_attn.weight"])
	assert.Contains(t, rep.Summary(), fmt.Sprintf("weights: %d of %d tensors changed", tinyTensors-2, tinyTensors))
}

func TestConfigKeyChanges(t *testing.T) {
	_, ckpts := writeRun(t, 10, nil)
	a, b := copyDir(t, ckpts[0]), copyDir(t, ckpts[0])
	editJSON(t, filepath.Join(a, "config.json"), func(doc map[string]any) {
		doc["task_specific_params"] = map[string]any{"text-generation": map[string]any{"do_sample": true, "max_length": 50}}
	})
	editJSON(t, filepath.Join(b, "config.json"), func(doc map[string]any) {
		doc["n_layer"] = 3                        // changed
		doc["use_flash"] = true                   // added
		delete(doc, "summary_type")               // removed
		doc["architectures"] = []any{"GPT2Model"} // array element changed
		doc["n_embd"] = json.Number("64.0")       // the same value written differently
		doc["task_specific_params"] = map[string]any{"text-generation": map[string]any{"do_sample": true, "max_length": 100}}
	})
	rep := compare(t, fromFolder(t, a), fromFolder(t, b), diff.Options{})

	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	assert.Equal(t, []diff.JSONChange{
		{File: "config.json", Key: "architectures[0]", Kind: diff.Changed, Old: raw(`"GPT2LMHeadModel"`), New: raw(`"GPT2Model"`)},
		{File: "config.json", Key: "n_layer", Kind: diff.Changed, Old: raw(`2`), New: raw(`3`)},
		{File: "config.json", Key: "summary_type", Kind: diff.Removed, Old: raw(`"cls_index"`)},
		{File: "config.json", Key: "task_specific_params.text-generation.max_length", Kind: diff.Changed, Old: raw(`50`), New: raw(`100`)},
		{File: "config.json", Key: "use_flash", Kind: diff.Added, New: raw(`true`)},
	}, rep.JSON)
	assert.Contains(t, rep.Summary(), "config: 3 keys changed, 1 added, 1 removed; tokenizer: same; weights: same")

	var text strings.Builder
	require.NoError(t, rep.WriteText(&text))
	assert.Contains(t, text.String(), `"GPT2LMHeadModel" -> "GPT2Model"`)
	assert.Contains(t, text.String(), "task_specific_params.text-generation.max_length")
}

func TestConfigNotJSON(t *testing.T) {
	_, ckpts := writeRun(t, 10, nil)
	b := copyDir(t, ckpts[0])
	require.NoError(t, os.WriteFile(filepath.Join(b, "generation_config.json"), []byte("{not json"), 0o644))
	rep := compare(t, fromFolder(t, ckpts[0]), fromFolder(t, b), diff.Options{})
	assert.Empty(t, rep.JSON)
	assert.Equal(t, diff.Changed, fileByPath(t, rep, "generation_config.json").Kind)
	require.Len(t, rep.Notes, 1)
	assert.Contains(t, rep.Notes[0], "generation_config.json: side B is not valid JSON")
	assert.Contains(t, rep.Summary(), "config: same values (files differ)")
}

func TestTokenizerAddedAndSpecialTokens(t *testing.T) {
	_, ckpts := writeRun(t, 10, nil)
	b := copyDir(t, ckpts[0])
	editJSON(t, filepath.Join(b, "tokenizer.json"), func(doc map[string]any) {
		doc["added_tokens"] = append(doc["added_tokens"].([]any), map[string]any{
			"id": 50257, "content": "<|pad|>", "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true,
		})
		model := doc["model"].(map[string]any)
		vocab := model["vocab"].(map[string]any)
		vocab["hello_world"] = 50258
		delete(vocab, "Ġthe") // id 262
	})
	editJSON(t, filepath.Join(b, "special_tokens_map.json"), func(doc map[string]any) {
		doc["pad_token"] = "<|pad|>"
	})
	a := fromFolder(t, ckpts[0])
	rep := compare(t, a, fromFolder(t, b), diff.Options{})
	tok := rep.Tokenizer
	require.NotNil(t, tok)
	assert.False(t, tok.Same)
	assert.Equal(t, []diff.Token{{ID: 50257, Content: "<|pad|>"}, {ID: 50258, Content: "hello_world"}}, tok.Added)
	assert.Empty(t, tok.Removed, "vocab.json still defines Ġthe: the vocabulary is the union of the files")
	assert.Equal(t, []diff.Token{{ID: 50257, Content: "<|pad|>"}}, tok.SpecialAdded)
	assert.Empty(t, tok.SpecialRemoved)
	assert.Equal(t, []diff.RoleChange{{Role: "pad_token", Kind: diff.Added, New: "<|pad|>"}}, tok.SpecialRoles)
	require.NotNil(t, tok.Merges)
	assert.Equal(t, diff.MergesDiff{CountA: 50000, CountB: 50000}, *tok.Merges)
	assert.Equal(t, 50257, tok.VocabA)
	assert.Equal(t, 50259, tok.VocabB)
	assert.Equal(t, []diff.JSONChange{{File: "special_tokens_map.json", Key: "pad_token", Kind: diff.Added, New: json.RawMessage(`"<|pad|>"`)}}, rep.JSON)
	assert.Contains(t, rep.Summary(), "config: same; tokenizer: 2 tokens added, 2 special tokens changed, 1 key changed; weights: same")
}

func TestTokenizerMerges(t *testing.T) {
	_, ckpts := writeRun(t, 10, nil)
	cases := []struct {
		name string
		edit func(merges []any) []any
		want diff.MergesDiff
	}{
		{"one replaced", func(m []any) []any {
			return append(m[1:], []any{"hello", "world"})
		}, diff.MergesDiff{CountA: 50000, CountB: 50000, Added: 1, Removed: 1, FirstAdded: []string{"hello world"}, FirstRemoved: []string{"Ġ t"}}},
		{"two swapped", func(m []any) []any {
			m[0], m[1] = m[1], m[0]
			return m
		}, diff.MergesDiff{CountA: 50000, CountB: 50000, Reordered: true}},
		{"string form, same merges", func(m []any) []any {
			for i, pair := range m {
				p := pair.([]any)
				m[i] = p[0].(string) + " " + p[1].(string)
			}
			return m
		}, diff.MergesDiff{CountA: 50000, CountB: 50000}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := copyDir(t, ckpts[0])
			editJSON(t, filepath.Join(b, "tokenizer.json"), func(doc map[string]any) {
				model := doc["model"].(map[string]any)
				model["merges"] = tc.edit(model["merges"].([]any))
			})
			rep := compare(t, fromFolder(t, ckpts[0]), fromFolder(t, b), diff.Options{})
			require.NotNil(t, rep.Tokenizer.Merges)
			assert.Equal(t, tc.want, *rep.Tokenizer.Merges)
			assert.Empty(t, rep.Tokenizer.Added)
			changed := tc.want.Added > 0 || tc.want.Reordered
			assert.Equal(t, !changed, rep.Tokenizer.Same)
		})
	}
}

// Without tokenizer.json the vocabulary and merges come from vocab.json and
// merges.txt.
func TestTokenizerSlowFiles(t *testing.T) {
	_, ckpts := writeRun(t, 10, nil)
	a, b := copyDir(t, ckpts[0]), copyDir(t, ckpts[0])
	for _, dir := range []string{a, b} {
		require.NoError(t, os.Remove(filepath.Join(dir, "tokenizer.json")))
	}
	editJSON(t, filepath.Join(b, "vocab.json"), func(doc map[string]any) {
		doc["brand_new"] = 50257
		delete(doc, "Ġthe")
	})
	merges := filepath.Join(b, "merges.txt")
	data, err := os.ReadFile(merges)
	require.NoError(t, err)
	lines := strings.Split(string(data), "\n")
	require.True(t, strings.HasPrefix(lines[0], "#version"))
	lines = append(lines[:1], lines[2:]...) // drop "Ġ t"
	require.NoError(t, os.WriteFile(merges, []byte(strings.Join(lines, "\n")+"brand new\n"), 0o644))

	rep := compare(t, fromFolder(t, a), fromFolder(t, b), diff.Options{})
	tok := rep.Tokenizer
	assert.Equal(t, []diff.Token{{ID: 50257, Content: "brand_new"}}, tok.Added)
	assert.Equal(t, []diff.Token{{ID: 262, Content: "Ġthe"}}, tok.Removed)
	require.NotNil(t, tok.Merges)
	assert.Equal(t, diff.MergesDiff{CountA: 50000, CountB: 50000, Added: 1, Removed: 1,
		FirstAdded: []string{"brand new"}, FirstRemoved: []string{"Ġ t"}}, *tok.Merges)
	assert.Contains(t, rep.Summary(), "tokenizer: 1 token added, 1 removed, merges +1 -1")
}

func TestTokenizerFilesDifferTokensSame(t *testing.T) {
	_, ckpts := writeRun(t, 10, nil)
	b := copyDir(t, ckpts[0])
	require.NoError(t, os.WriteFile(filepath.Join(b, "chat_template.jinja"), []byte("{{ messages }}"), 0o644))
	rep := compare(t, fromFolder(t, ckpts[0]), fromFolder(t, b), diff.Options{})
	assert.True(t, rep.Tokenizer.Same)
	assert.Contains(t, rep.Summary(), "tokenizer: same tokens (chat_template.jinja differs)")
}

func TestTokenizerMissingOnOneSide(t *testing.T) {
	_, withTok := writeRun(t, 10, nil)
	_, without := writeRun(t, 10, func(s *synth.RunSpec) { s.WeightsOnly = true })
	rep := compare(t, fromFolder(t, without[0]), fromFolder(t, withTok[0]), diff.Options{})
	assert.False(t, rep.Tokenizer.InA)
	assert.True(t, rep.Tokenizer.InB)
	assert.Contains(t, rep.Summary(), "config: none in A; tokenizer: none in A")
	assert.Equal(t, diff.Added, fileByPath(t, rep, "tokenizer.json").Kind)
}

// A weights-only checkpoint pushed with a base has the base's config and
// tokenizer, as pull would write them.
func TestRegistrySideInheritsFromBase(t *testing.T) {
	r := newRegistry(t)
	base, ckpts := writeRun(t, 10, func(s *synth.RunSpec) { s.WeightsOnly = true })
	push(t, r, base, store.PushOptions{Name: "gpt2", Version: "1"})
	push(t, r, ckpts[0], store.PushOptions{Name: "wo", Base: "gpt2@1"})
	push(t, r, ckpts[1], store.PushOptions{Name: "wo", Base: "gpt2@1"})

	s := fromRegistry(t, r, "wo", "100")
	assert.Equal(t, "gpt2@1", s.Inherited["config.json"])
	assert.Equal(t, "gpt2@1", s.Inherited["tokenizer.json"])
	assert.NotContains(t, s.Inherited, "model.safetensors")

	rep := compare(t, fromRegistry(t, r, "gpt2", "1"), s, diff.Options{})
	fc := fileByPath(t, rep, "config.json")
	assert.Equal(t, diff.Same, fc.Kind)
	assert.Equal(t, "gpt2@1", fc.FromB)
	assert.Contains(t, rep.Summary(), "config: same; tokenizer: same")

	rep = compare(t, s, fromRegistry(t, r, "wo", "200"), diff.Options{})
	assert.Contains(t, rep.Summary(), "config: same; tokenizer: same; weights: ")
}

func TestTensorDtypeAndShapeChanges(t *testing.T) {
	f32 := func(vals ...float32) []byte { return f32Bytes(vals) }
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeSafetensors(t, a, "model.safetensors", []layout.TensorInfo{
		{Name: "cast", Dtype: "F32", Shape: []int64{2}},
		{Name: "reshaped", Dtype: "F32", Shape: []int64{4}},
		{Name: "kept", Dtype: "F32", Shape: []int64{1}},
		{Name: "trained", Dtype: "F32", Shape: []int64{1}},
		{Name: "gone", Dtype: "F32", Shape: []int64{1}},
	}, [][]byte{f32(1, 2), f32(1, 2, 3, 4), f32(7), f32(1), f32(0)})
	writeSafetensors(t, b, "model.safetensors", []layout.TensorInfo{
		{Name: "cast", Dtype: "BF16", Shape: []int64{2}},
		{Name: "reshaped", Dtype: "F32", Shape: []int64{2, 2}},
		{Name: "kept", Dtype: "F32", Shape: []int64{1}},
		{Name: "trained", Dtype: "F32", Shape: []int64{1}},
		{Name: "new", Dtype: "I64", Shape: []int64{}},
	}, [][]byte{{0, 0, 0, 0}, f32(1, 2, 3, 4), f32(7), f32(2), make([]byte, 8)})

	rep := compare(t, fromFolder(t, a), fromFolder(t, b), diff.Options{Stats: true})
	assert.Equal(t, map[string]diff.Kind{
		"cast": diff.DtypeChanged, "reshaped": diff.ShapeChanged, "kept": diff.Same,
		"trained": diff.Changed, "gone": diff.Removed, "new": diff.Added,
	}, tensorKinds(rep))
	names := make([]string, len(rep.Tensors))
	for i, tc := range rep.Tensors {
		names[i] = tc.Name
		if tc.Kind != diff.Changed {
			assert.Nil(t, tc.Stats, "stats only for changed tensors: %s", tc.Name)
		}
	}
	assert.Equal(t, []string{"cast", "gone", "kept", "new", "reshaped", "trained"}, names)
	assert.Equal(t, "weights: 5 of 6 tensors changed (90% of bytes): 1 added, 1 removed, 1 dtype changed, 1 shape changed", rep.Summary()[strings.Index(rep.Summary(), "weights:"):])
	cast := rep.Tensors[0]
	assert.Equal(t, "F32", cast.DtypeA)
	assert.Equal(t, "BF16", cast.DtypeB)
	assert.Equal(t, int64(8), cast.BytesA)
	assert.Equal(t, int64(4), cast.BytesB)
}

// Tensors are matched by name whatever shard holds them.
func TestShardedAgainstUnsharded(t *testing.T) {
	_, single := writeRun(t, 10, nil)
	_, sharded := writeRun(t, 10, func(s *synth.RunSpec) { s.Shards = 3 })
	rep := compare(t, fromFolder(t, single[0]), fromFolder(t, sharded[0]), diff.Options{})
	require.Len(t, rep.Tensors, tinyTensors)
	files := map[string]bool{}
	for _, tc := range rep.Tensors {
		assert.Equal(t, diff.Same, tc.Kind, tc.Name)
		assert.Equal(t, "model.safetensors", tc.FileA)
		files[tc.FileB] = true
	}
	assert.Len(t, files, 3, "B's tensors come from its three shards")
	assert.Equal(t, diff.Removed, fileByPath(t, rep, "model.safetensors").Kind)
	assert.Equal(t, diff.Added, fileByPath(t, rep, "model.safetensors.index.json").Kind)
	// trainer_state.json names each run's output folder, so it differs too.
	assert.Contains(t, rep.Summary(), fmt.Sprintf("weights: same (%d tensors); other files: 1 changed, 1 added", tinyTensors))
}

func TestFolderAgainstItsPushedRef(t *testing.T) {
	r := newRegistry(t)
	_, ckpts := writeRun(t, 10, func(s *synth.RunSpec) { s.ResumeState = true; s.OptimizerScale = 0.1 })
	push(t, r, ckpts[1], store.PushOptions{Name: "run"})
	rep := compare(t, fromFolder(t, ckpts[1]), fromRegistry(t, r, "run", "200"), diff.Options{})
	assert.True(t, rep.Identical(), "%+v", rep.Files)
	assert.Equal(t, ckpts[1], rep.A)
	assert.Contains(t, rep.Summary(), "weights: same")
}

// Without --stats no tensor byte is read: only the JSON and tokenizer files
// that differ. With it, the changed tensors are read in bounded pieces.
func TestReadsOnlyWhatIsNeeded(t *testing.T) {
	r := newRegistry(t)
	_, ckpts := writeRun(t, 10, nil)
	b := copyDir(t, ckpts[1])
	editJSON(t, filepath.Join(b, "config.json"), func(doc map[string]any) { doc["n_layer"] = 5 })
	editJSON(t, filepath.Join(b, "special_tokens_map.json"), func(doc map[string]any) { doc["pad_token"] = "<|endoftext|>" })
	push(t, r, ckpts[0], store.PushOptions{Name: "run"})
	push(t, r, b, store.PushOptions{Name: "run", Version: "200"})

	a, bs := fromRegistry(t, r, "run", "100"), fromRegistry(t, r, "run", "200")
	ra, rb := count(a), count(bs)
	rep := compare(t, a, bs, diff.Options{})
	require.Len(t, rep.JSON, 2)
	for _, c := range []*countingReader{ra, rb} {
		read := map[string]bool{}
		for _, rd := range c.reads {
			read[rd.path] = true
			assert.Contains(t, []string{"config", "tokenizer"}, rd.role, "read %s without --stats", rd.path)
		}
		assert.True(t, read["config.json"])
		assert.True(t, read["tokenizer.json"])
		assert.False(t, read["generation_config.json"], "identical JSON files are not read")
		assert.Zero(t, c.bytesOfRole(layout.RoleWeights))
	}

	const maxRead = 4096
	a, bs = fromRegistry(t, r, "run", "100"), fromRegistry(t, r, "run", "200")
	ra, rb = count(a), count(bs)
	rep = compare(t, a, bs, diff.Options{Stats: true, MaxRead: maxRead})
	var changed int64
	for _, tc := range rep.Tensors {
		require.Equal(t, diff.Changed, tc.Kind)
		require.NotNil(t, tc.Stats, tc.Name)
		assert.Positive(t, tc.Stats.MaxAbsDelta, tc.Name)
		changed += tc.BytesA
	}
	for _, c := range []*countingReader{ra, rb} {
		assert.GreaterOrEqual(t, c.bytesOfRole(layout.RoleWeights), changed)
		for _, rd := range c.reads {
			if rd.role == string(layout.RoleWeights) {
				assert.LessOrEqual(t, rd.n, int64(maxRead), "one read of %s", rd.path)
			}
		}
	}
}

// Statistics do not depend on how the data is cut into reads.
func TestStatsIndependentOfReadSize(t *testing.T) {
	_, ckpts := writeRun(t, 10, nil)
	a, b := fromFolder(t, ckpts[0]), fromFolder(t, ckpts[1])
	whole := compare(t, a, b, diff.Options{Stats: true})
	pieces := compare(t, a, b, diff.Options{Stats: true, MaxRead: 1001}) // rounded down to whole elements
	require.Equal(t, len(whole.Tensors), len(pieces.Tensors))
	for i := range whole.Tensors {
		w, p := whole.Tensors[i].Stats, pieces.Tensors[i].Stats
		require.NotNil(t, w)
		require.NotNil(t, p)
		assert.Equal(t, w.Elements, p.Elements)
		assert.Equal(t, w.Differing, p.Differing)
		assert.Equal(t, w.MaxAbsDelta, p.MaxAbsDelta)
		assert.InDelta(t, *w.RelL2, *p.RelL2, 1e-12)
	}
}

func TestFromRegistryErrors(t *testing.T) {
	r := newRegistry(t)
	_, ckpts := writeRun(t, 10, nil)
	push(t, r, ckpts[0], store.PushOptions{Name: "run"})
	_, err := diff.FromRegistry(context.Background(), r, "run", "999")
	require.ErrorIs(t, err, refs.ErrNoCheckpoint)
	assert.Contains(t, err.Error(), "run@999")
	_, err = diff.FromRegistry(context.Background(), r, "nothing", "1")
	require.ErrorIs(t, err, refs.ErrNoCheckpoint)

	_, err = diff.FromFolder(context.Background(), filepath.Join(t.TempDir(), "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = diff.FromFolder(context.Background(), filepath.Join(ckpts[0], "config.json"))
	require.ErrorContains(t, err, "not a folder")
}

func TestReportJSON(t *testing.T) {
	_, ckpts := writeRun(t, 10, nil)
	rep := compare(t, fromFolder(t, ckpts[0]), fromFolder(t, ckpts[1]), diff.Options{Stats: true})
	data, err := json.Marshal(rep)
	require.NoError(t, err)
	var back struct {
		diff.Report
		Summary string `json:"summary"`
	}
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, rep.Summary(), back.Summary)
	assert.Equal(t, rep.Tensors, back.Tensors)
	assert.Equal(t, rep.Files, back.Files)
}

// TestGGUFAndTorchZipTensors: tensors of GGUF files and storages of
// torch.save weights are compared from the manifests' tensor tables
// (version 2), with statistics read from the registry.
func TestGGUFAndTorchZipTensors(t *testing.T) {
	f32 := func(vals ...float32) []byte { return f32Bytes(vals) }
	write := func(dir string, trained float32, shape uint64) {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"llama"}`), 0o644))
		gguf, err := synth.EncodeGGUF(synth.GGUFFile{Tensors: []synth.GGUFTensor{
			{Name: "blk.0.kept", Type: layout.GGMLF32, Dims: []uint64{2}, Data: f32(1, 2)},
			{Name: "blk.0.trained", Type: layout.GGMLF32, Dims: []uint64{2}, Data: f32(1, trained)},
			{Name: "blk.0.reshaped", Type: layout.GGMLF32, Dims: []uint64{shape, 4 / shape}, Data: f32(1, 2, 3, 4)},
		}})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "model.gguf"), gguf, 0o644))
		require.NoError(t, synth.WriteTorchStateDict(filepath.Join(dir, "pytorch_model.bin"), []synth.TorchTensor{
			{Name: "frozen", StorageType: "FloatStorage", Shape: []int64{2}, Data: f32(3, 4)},
			{Name: "trained", StorageType: "FloatStorage", Shape: []int64{2}, Data: f32(5, trained)},
		}))
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(a, 1, 1)
	write(b, 3, 2)
	r := newRegistry(t)
	push(t, r, a, store.PushOptions{Name: "g", Version: "1"})
	push(t, r, b, store.PushOptions{Name: "g", Version: "2"})

	rep := compare(t, fromRegistry(t, r, "g", "1"), fromRegistry(t, r, "g", "2"), diff.Options{Stats: true})
	assert.Equal(t, map[string]diff.Kind{
		"blk.0.kept": diff.Same, "blk.0.trained": diff.Changed, "blk.0.reshaped": diff.ShapeChanged,
		"data/0": diff.Same, "data/1": diff.Changed,
	}, tensorKinds(rep))
	for _, tc := range rep.Tensors {
		switch tc.Name {
		case "blk.0.trained", "data/1":
			require.NotNil(t, tc.Stats, tc.Name)
			assert.Empty(t, tc.Stats.Skipped, tc.Name)
			assert.Equal(t, int64(2), tc.Stats.Elements, tc.Name)
			assert.Equal(t, int64(1), tc.Stats.Differing, tc.Name)
			assert.InDelta(t, 2.0, tc.Stats.MaxAbsDelta, 1e-9, tc.Name)
		}
	}
	for _, n := range rep.Notes {
		assert.NotContains(t, n, "compared as a file only")
	}
	// A local folder is compared the same way (ScanFolder builds the table).
	local := compare(t, fromFolder(t, a), fromRegistry(t, r, "g", "2"), diff.Options{})
	assert.Equal(t, tensorKinds(rep), tensorKinds(local))
}
