package synth

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/layout"
)

func TestWriteBaseIsRunnable(t *testing.T) {
	for _, tc := range []struct {
		name       string
		model      Model
		torchDtype string
	}{
		{"bf16", TinyModel(), "bfloat16"},
		{"f16", Model{Layers: 1, Hidden: 32, Vocab: 300, Positions: 16, Dtype: layout.DtypeF16}, "float16"},
		{"f32", Model{Layers: 3, Hidden: 128, Vocab: 1000, Positions: 64, Dtype: layout.DtypeF32}, "float32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, WriteBase(dir, tc.model, 1, gpt2Dir))

			require.NoError(t, layout.CheckRunnable(os.DirFS(dir)))
			header, err := layout.ReadSafetensorsHeader(filepath.Join(dir, "model.safetensors"))
			require.NoError(t, err)
			assert.Equal(t, map[string]string{"format": "pt"}, header.Metadata)
			assert.Equal(t, tc.model.Tensors(), header.Tensors, "header lists Tensors() in order")
			assert.Equal(t, tc.model.WeightBytes(), header.DataSize())

			var config map[string]any
			data, err := os.ReadFile(filepath.Join(dir, "config.json"))
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(data, &config))
			assert.EqualValues(t, tc.model.Layers, config["n_layer"])
			assert.EqualValues(t, tc.model.Hidden, config["n_embd"])
			assert.EqualValues(t, tc.model.Vocab, config["vocab_size"])
			assert.EqualValues(t, tc.model.Positions, config["n_positions"])
			assert.Equal(t, tc.torchDtype, config["torch_dtype"])
			assert.Less(t, config["eos_token_id"], float64(tc.model.Vocab))

			for _, name := range []string{"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"} {
				want, err := os.ReadFile(filepath.Join(gpt2Dir, name))
				require.NoError(t, err)
				got, err := os.ReadFile(filepath.Join(dir, name))
				require.NoError(t, err)
				assert.Equal(t, want, got, "%s is copied byte for byte", name)
			}
		})
	}
}

func TestBaseWeightValues(t *testing.T) {
	m := TinyModel()
	dir := t.TempDir()
	require.NoError(t, WriteBase(dir, m, 3, gpt2Dir))
	tensors := readTensors(t, dir)

	for _, tc := range []struct {
		tensor         string
		mean, std, tol float64
	}{
		{"wte.weight", 0, 0.02, 0.002},
		{"h.1.mlp.c_fc.weight", 0, 0.02, 0.002},
		{"h.0.ln_1.weight", 1, 0.05, 0.03},
		{"h.0.mlp.c_fc.bias", 0, 0.01, 0.003},
	} {
		t.Run(tc.tensor, func(t *testing.T) {
			values := make([]float32, len(tensors[tc.tensor])/2)
			decodeValues(values, tensors[tc.tensor], m.Dtype)
			var sum, sumSq float64
			for _, v := range values {
				sum += float64(v)
			}
			mean := sum / float64(len(values))
			for _, v := range values {
				sumSq += (float64(v) - mean) * (float64(v) - mean)
			}
			assert.InDelta(t, tc.mean, mean, tc.tol)
			assert.InDelta(t, tc.std, math.Sqrt(sumSq/float64(len(values))), tc.tol)
		})
	}
}

func TestWriteRunCheckpoints(t *testing.T) {
	tokenizerFiles := []string{"merges.txt", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"}
	resumeFiles := []string{"optimizer.pt", "rng_state.pth", "scheduler.pt", "training_args.bin"}
	configFiles := []string{"config.json", "generation_config.json"}
	for _, tc := range []struct {
		name  string
		spec  func(RunSpec) RunSpec
		files []string
	}{
		{
			name:  "full",
			spec:  func(s RunSpec) RunSpec { return s },
			files: concat(configFiles, tokenizerFiles, resumeFiles, []string{"model.safetensors", "trainer_state.json"}),
		},
		{
			name: "sharded",
			spec: func(s RunSpec) RunSpec { s.Shards = 3; return s },
			files: concat(configFiles, tokenizerFiles, resumeFiles, []string{
				"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
				"model-00003-of-00003.safetensors", "model.safetensors.index.json", "trainer_state.json"}),
		},
		{
			name: "weights only",
			spec: func(s RunSpec) RunSpec {
				s.WeightsOnly, s.ResumeState, s.FrozenEmbedding, s.TokenizerDir = true, false, true, ""
				return s
			},
			files: []string{"model.safetensors", "trainer_state.json"},
		},
		{
			name: "f16 with scaler",
			spec: func(s RunSpec) RunSpec { s.Model.Dtype = layout.DtypeF16; return s },
			files: concat(configFiles, tokenizerFiles, resumeFiles,
				[]string{"model.safetensors", "scaler.pt", "trainer_state.json"}),
		},
		{
			name:  "explicit eval losses",
			spec:  func(s RunSpec) RunSpec { s.EvalLoss = []float64{2.5, math.NaN(), 2.25}; return s },
			files: concat(configFiles, tokenizerFiles, resumeFiles, []string{"model.safetensors", "trainer_state.json"}),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec(tinySpec())
			out := t.TempDir()
			dirs, err := WriteRun(out, spec)
			require.NoError(t, err)
			require.Len(t, dirs, len(spec.Steps))
			slices.Sort(tc.files)

			for i, dir := range dirs {
				step := spec.Steps[i]
				assert.Equal(t, filepath.Join(out, "checkpoint-"+itoa(step)), dir)
				assert.Equal(t, tc.files, fileNames(t, dir))
				require.NoError(t, layout.CheckComplete(os.DirFS(dir)))
				if !spec.WeightsOnly {
					require.NoError(t, layout.CheckRunnable(os.DirFS(dir)))
				}
				tensors := readTensors(t, dir)
				assert.Len(t, tensors, len(spec.Model.Tensors()))

				state, err := layout.ReadTrainerState(filepath.Join(dir, "trainer_state.json"))
				require.NoError(t, err)
				require.NotNil(t, state.GlobalStep)
				assert.Equal(t, step, *state.GlobalStep)
				wantLoss, evaluated := evalLoss(spec, i)
				if evaluated {
					assert.Equal(t, map[string]float64{"eval_loss": wantLoss}, state.EvalMetrics(step))
				} else {
					assert.Nil(t, state.EvalMetrics(step), "no eval at step %d", step)
				}
			}
		})
	}
}

func concat(lists ...[]string) []string {
	var all []string
	for _, list := range lists {
		all = append(all, list...)
	}
	return all
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestFrozenEmbedding(t *testing.T) {
	m := TinyModel()
	for _, tc := range []struct {
		name string
		// base writes the base model and returns its folder and the
		// BaseDir to put in the spec.
		base func(t *testing.T, spec RunSpec) (dir, baseDir string)
	}{
		{"from base folder", func(t *testing.T, spec RunSpec) (string, string) {
			dir := t.TempDir()
			require.NoError(t, WriteBase(dir, m, 99, gpt2Dir)) // a seed unrelated to the run's
			return dir, dir
		}},
		{"from seed", func(t *testing.T, spec RunSpec) (string, string) {
			dir := t.TempDir()
			require.NoError(t, WriteBase(dir, m, spec.Seed, gpt2Dir))
			return dir, ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tinySpec()
			spec.FrozenEmbedding = true
			baseDir, specBase := tc.base(t, spec)
			spec.BaseDir = specBase
			base := readTensors(t, baseDir)

			dirs, err := WriteRun(t.TempDir(), spec)
			require.NoError(t, err)
			previous := base
			for _, dir := range dirs {
				tensors := readTensors(t, dir)
				for _, info := range m.Tensors() {
					name := info.Name
					if name == "wte.weight" || name == "wpe.weight" {
						assert.Equal(t, base[name], tensors[name], "%s of %s is the base's", name, dir)
						continue
					}
					assert.NotEqual(t, base[name], tensors[name], "%s of %s differs from the base", name, dir)
					assert.NotEqual(t, previous[name], tensors[name], "%s of %s differs from the previous checkpoint", name, dir)
				}
				previous = tensors
			}
		})
	}
}

func TestBaseDirOfSameSeedChangesNothing(t *testing.T) {
	spec := tinySpec()
	spec.ResumeState = false
	baseDir := t.TempDir()
	require.NoError(t, WriteBase(baseDir, spec.Model, spec.Seed, gpt2Dir))

	withoutBase, err := WriteCheckpoint(t.TempDir(), spec, 1, nil)
	require.NoError(t, err)
	spec.BaseDir = baseDir
	withBase, err := WriteCheckpoint(t.TempDir(), spec, 1, nil)
	require.NoError(t, err)
	assert.Equal(t, readFiles(t, withoutBase), readFiles(t, withBase))
}

func TestPerturbationIsSmall(t *testing.T) {
	for _, tc := range []struct {
		name        string
		drift       float64
		want        float64 // RMS change over the weights' spread
		changedOver float64 // fraction of the elements that change, at least
	}{
		{"default", 0, perturbFraction, 0.9},
		{"low learning rate", 0.01, 0.01, 0.3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := TinyModel()
			baseDir := t.TempDir()
			require.NoError(t, WriteBase(baseDir, m, 5, gpt2Dir))
			spec := tinySpec()
			spec.BaseDir = baseDir
			spec.Drift = tc.drift
			dir, err := WriteCheckpoint(t.TempDir(), spec, 0, nil)
			require.NoError(t, err)

			base, tuned := readTensors(t, baseDir)["h.0.attn.c_attn.weight"], readTensors(t, dir)["h.0.attn.c_attn.weight"]
			before, after := make([]float32, len(base)/2), make([]float32, len(tuned)/2)
			decodeValues(before, base, m.Dtype)
			decodeValues(after, tuned, m.Dtype)
			changed := 0
			var sumSq float64
			for i := range before {
				if before[i] != after[i] {
					changed++
				}
				sumSq += float64(after[i]-before[i]) * float64(after[i]-before[i])
			}
			assert.Greater(t, float64(changed), float64(len(before))*tc.changedOver, "elements that change")
			assert.InDelta(t, tc.want*0.02, math.Sqrt(sumSq/float64(len(before))), tc.want*0.02*0.2, "the change is a fraction of the weights' spread")
		})
	}
}

func TestRunsOfOneBaseShare(t *testing.T) {
	out := t.TempDir()
	baseDir := filepath.Join(out, "base")
	require.NoError(t, WriteBase(baseDir, TinyModel(), 1, gpt2Dir))
	specA, specB := tinySpec(), tinySpec()
	specA.BaseDir, specB.BaseDir = baseDir, baseDir
	specA.FrozenEmbedding, specB.FrozenEmbedding = true, true
	specA.Seed, specB.Seed = 2, 3
	dirsA, err := WriteRun(filepath.Join(out, "run-a"), specA)
	require.NoError(t, err)
	dirsB, err := WriteRun(filepath.Join(out, "run-b"), specB)
	require.NoError(t, err)

	base := readFiles(t, baseDir)
	for i := range dirsA {
		a, b := readFiles(t, dirsA[i]), readFiles(t, dirsB[i])
		for _, name := range []string{"config.json", "generation_config.json", "tokenizer.json", "vocab.json", "merges.txt"} {
			assert.Equal(t, base[name], a[name], "%s of run-a is the base's", name)
			assert.Equal(t, a[name], b[name], "%s is shared by both runs", name)
		}
		for _, name := range []string{"model.safetensors", "optimizer.pt", "rng_state.pth", "trainer_state.json"} {
			assert.NotEqual(t, a[name], b[name], "%s differs between runs", name)
		}
		tensorsA, tensorsB := readTensors(t, dirsA[i]), readTensors(t, dirsB[i])
		assert.Equal(t, tensorsA["wte.weight"], tensorsB["wte.weight"])
		assert.NotEqual(t, tensorsA["ln_f.weight"], tensorsB["ln_f.weight"])
	}
}

func TestShardedIndex(t *testing.T) {
	for _, shards := range []int{2, 3, 7} {
		t.Run(itoa(int64(shards)), func(t *testing.T) {
			spec := tinySpec()
			spec.Shards = shards
			dir, err := WriteCheckpoint(t.TempDir(), spec, 0, nil)
			require.NoError(t, err)

			data, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
			require.NoError(t, err)
			index, err := layout.ParseShardIndex(data)
			require.NoError(t, err)
			var wantShards []string
			for k := 1; k <= shards; k++ {
				wantShards = append(wantShards, fmt.Sprintf("model-%05d-of-%05d.safetensors", k, shards))
			}
			assert.Equal(t, wantShards, index.Shards())
			assert.EqualValues(t, spec.Model.WeightBytes(), index.Metadata["total_size"])

			// Every tensor is in the shard the index names, and only there.
			assert.Len(t, index.WeightMap, len(spec.Model.Tensors()))
			var order []string
			for _, shard := range index.Shards() {
				header, err := layout.ReadSafetensorsHeader(filepath.Join(dir, shard))
				require.NoError(t, err)
				require.NotEmpty(t, header.Tensors, "%s holds tensors", shard)
				for _, info := range header.Tensors {
					assert.Equal(t, shard, index.WeightMap[info.Name], info.Name)
					order = append(order, info.Name)
				}
			}
			var want []string
			for _, info := range spec.Model.Tensors() {
				want = append(want, info.Name)
			}
			assert.Equal(t, want, order, "shards split the tensors in order")
		})
	}
}

func TestDeterminism(t *testing.T) {
	write := func(seed uint64) map[string][]byte {
		out := t.TempDir()
		spec := tinySpec()
		spec.Seed = seed
		spec.Shards = 2
		spec.Model.Dtype = layout.DtypeF16 // scaler.pt too
		require.NoError(t, WriteBase(filepath.Join(out, "base"), spec.Model, seed, gpt2Dir))
		_, err := WriteRun(filepath.Join(out, "run"), spec)
		require.NoError(t, err)
		return readFiles(t, out)
	}
	first, second, other := write(11), write(11), write(12)
	require.NotEmpty(t, first)
	assert.Equal(t, len(first), len(second))
	for name, data := range first {
		assert.Equal(t, data, second[name], "%s is identical for the same seed", name)
	}
	for _, name := range []string{"base/model.safetensors", "run/checkpoint-20/model-00001-of-00002.safetensors",
		"run/checkpoint-40/optimizer.pt", "run/checkpoint-60/rng_state.pth", "run/checkpoint-60/trainer_state.json"} {
		require.Contains(t, first, name)
		assert.NotEqual(t, first[name], other[name], "%s depends on the seed", name)
	}
}

func TestWriteCheckpointPauseHook(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spec   func(RunSpec) RunSpec
		stages []string
	}{
		{
			name: "full",
			spec: func(s RunSpec) RunSpec { return s },
			stages: []string{StageWeights, StageConfig, StageTokenizer, StageTrainingArgs,
				StageOptimizer, StageScheduler, StageRNGState},
		},
		{
			name:   "weights only",
			spec:   func(s RunSpec) RunSpec { s.WeightsOnly, s.ResumeState = true, false; return s },
			stages: []string{StageWeights},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			spec := tc.spec(tinySpec())
			checkpoint := filepath.Join(out, "checkpoint-40")
			var stages []string
			dir, err := WriteCheckpoint(out, spec, 1, func(stage string) {
				stages = append(stages, stage)
				_, err := os.Stat(filepath.Join(checkpoint, "trainer_state.json"))
				assert.ErrorIs(t, err, os.ErrNotExist, "trainer_state.json absent after stage %s", stage)
				var missing *layout.MissingError
				assert.ErrorAs(t, layout.CheckComplete(os.DirFS(checkpoint)), &missing, "incomplete after stage %s", stage)
				if stage == StageWeights {
					assert.FileExists(t, filepath.Join(checkpoint, "model.safetensors"))
				}
			})
			require.NoError(t, err)
			assert.Equal(t, checkpoint, dir)
			assert.Equal(t, tc.stages, stages)
			assert.NoError(t, layout.CheckComplete(os.DirFS(dir)))
		})
	}
}

func TestInvalidSpecs(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec func(RunSpec) RunSpec
		want string
	}{
		{"no steps", func(s RunSpec) RunSpec { s.Steps = nil; return s }, "no checkpoint steps"},
		{"decreasing steps", func(s RunSpec) RunSpec { s.Steps = []int64{20, 10}; return s }, "increasing"},
		{"zero step", func(s RunSpec) RunSpec { s.Steps = []int64{0, 10}; return s }, "positive"},
		{"eval losses", func(s RunSpec) RunSpec { s.EvalLoss = []float64{1}; return s }, "1 eval losses for 3"},
		{"dtype", func(s RunSpec) RunSpec { s.Model.Dtype = layout.DtypeI8; return s }, "want BF16, F16 or F32"},
		{"layers", func(s RunSpec) RunSpec { s.Model.Layers = 0; return s }, "must be positive"},
		{"tokenizer", func(s RunSpec) RunSpec { s.TokenizerDir = ""; return s }, "TokenizerDir is required"},
		{"too many shards", func(s RunSpec) RunSpec { s.Shards = 1000; return s }, "1000 shards for 28 tensors"},
		{"optimizer scale", func(s RunSpec) RunSpec { s.OptimizerScale = -1; return s }, "optimizer scale"},
		{"missing base", func(s RunSpec) RunSpec { s.BaseDir = "/nonexistent/base"; return s }, "/nonexistent/base/model.safetensors"},
		{"missing tokenizer folder", func(s RunSpec) RunSpec { s.TokenizerDir = "/nonexistent/tok"; return s }, "/nonexistent/tok/config.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WriteRun(t.TempDir(), tc.spec(tinySpec()))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestBaseDirMustMatchModel(t *testing.T) {
	baseDir := t.TempDir()
	require.NoError(t, WriteBase(baseDir, Model{Layers: 2, Hidden: 32, Vocab: 2048, Positions: 128, Dtype: layout.DtypeBF16}, 1, gpt2Dir))
	spec := tinySpec()
	spec.BaseDir = baseDir
	_, err := WriteCheckpoint(t.TempDir(), spec, 0, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tensor wte.weight is BF16[2048 32], want BF16[2048 64]")
}
