package synth

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/layout"
)

func TestPyFloat(t *testing.T) {
	// Expected strings are Python 3's repr / json.dumps output.
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0.1, "0.1"},
		{1e-05, "1e-05"},
		{5e-05, "5e-05"},
		{0.0001, "0.0001"},
		{0.00012345, "0.00012345"},
		{100.0, "100.0"},
		{3.0, "3.0"},
		{123.456, "123.456"},
		{1234567.0, "1234567.0"},
		{9999999999999998.0, "9999999999999998.0"},
		{1e16, "1e+16"},
		{1.5e16, "1.5e+16"},
		{1.2345678901234568e17, "1.2345678901234568e+17"},
		{1.7976931348623157e308, "1.7976931348623157e+308"},
		{1e-300, "1e-300"},
		{1.6666666666666667e-05, "1.6666666666666667e-05"},
		{-2.5e-7, "-2.5e-07"},
		{0.0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "Infinity"},
		{math.Inf(-1), "-Infinity"},
	} {
		assert.Equal(t, tc.want, pyFloat(tc.in), "pyFloat(%v)", tc.in)
	}
}

func TestPyJSON(t *testing.T) {
	value := pyObject{
		"b": []any{1, pyObject{"z": []any{}}},
		"a": "é\"\\\n\x7f\x01😀",
		"c": pyObject{},
		"d": nil,
		"e": true,
		"f": json.Number("1e-05"),
		"g": json.Number("50256"),
		"h": float32(0.1),
	}
	// What json.dumps(value, indent=2, sort_keys=True) prints.
	want := `{
  "a": "\u00e9\"\\\n\u007f\u0001\ud83d\ude00",
  "b": [
    1,
    {
      "z": []
    }
  ],
  "c": {},
  "d": null,
  "e": true,
  "f": 1e-05,
  "g": 50256,
  "h": 0.10000000149011612
}`
	assert.Equal(t, want, string(pyJSON(value)))
}

func TestPyRound(t *testing.T) {
	for _, tc := range []struct {
		in     float64
		places int
		want   float64
	}{
		// Expected values are Python 3's.
		{2.01725, 4, 2.0173}, // the double is just above ...725
		{2.675, 2, 2.67},     // the double is just below ...675
		{0.125, 2, 0.12},     // an exact tie rounds to even
		{1.0005, 3, 1.0},
		{1.23456789, 4, 1.2346},
		{288.90638, 3, 288.906},
		{2.5, 0, 2},
	} {
		assert.Equal(t, tc.want, pyRound(tc.in, tc.places), "round(%v, %d)", tc.in, tc.places)
	}
}

func TestBF16Conversion(t *testing.T) {
	for _, tc := range []struct {
		name string
		bits uint32
		want uint16
	}{
		{"one", 0x3f800000, 0x3f80},
		{"tie to even down", 0x3f808000, 0x3f80},
		{"tie to even up", 0x3f818000, 0x3f82},
		{"above tie", 0x3f808001, 0x3f81},
		{"negative", 0xc0490fdb, 0xc049}, // -pi
		{"overflow to inf", 0x7f7fffff, 0x7f80},
		{"inf", 0x7f800000, 0x7f80},
		{"nan stays nan", 0x7f800001, 0x7fc0},
	} {
		assert.Equal(t, tc.want, bf16FromFloat32(math.Float32frombits(tc.bits)), tc.name)
	}
	for h := range 1 << 16 {
		f := math.Float32frombits(uint32(h) << 16)
		if !math.IsNaN(float64(f)) {
			require.Equal(t, uint16(h), bf16FromFloat32(f), "bf16 %#04x round trip", h)
		}
	}
}

func TestF16Conversion(t *testing.T) {
	for _, tc := range []struct {
		in   float32
		want uint16
	}{
		{1, 0x3c00},
		{-2, 0xc000},
		{0.1, 0x2e66},
		{65504, 0x7bff},
		{65520, 0x7c00},                           // halfway to the next power: rounds to even, infinity
		{float32(math.Ldexp(1, -14)), 0x0400},     // smallest normal
		{float32(math.Ldexp(1, -24)), 0x0001},     // smallest subnormal
		{float32(math.Ldexp(1, -25)), 0x0000},     // tie to even: zero
		{float32(math.Ldexp(3, -26)), 0x0001},     // above the tie
		{float32(math.Ldexp(1, -30)), 0x0000},     // underflow
		{float32(math.Inf(-1)), 0xfc00},           // -inf
		{float32(math.Ldexp(1023, -24)), 0x03ff},  // largest subnormal
		{float32(math.Ldexp(2047, -25)), 0x0400},  // rounds up into the normals
		{float32(1 + math.Ldexp(1, -11)), 0x3c00}, // tie to even down
	} {
		assert.Equal(t, tc.want, f16FromFloat32(tc.in), "f16(%v)", tc.in)
	}
	for h := range 1 << 16 {
		f := float32FromF16(uint16(h))
		if !math.IsNaN(float64(f)) {
			require.Equal(t, uint16(h), f16FromFloat32(f), "f16 %#04x round trip", h)
		}
	}
}

func TestEncodedTableMatchesGenericPath(t *testing.T) {
	for _, dtype := range []layout.Dtype{layout.DtypeBF16, layout.DtypeF16} {
		t.Run(string(dtype), func(t *testing.T) {
			const n = 1001 // not a multiple of 4: exercises the tail
			const mean, std = 1, 0.05
			values := make([]float32, n)
			newNormalStream(1, domainBase, "x", 0).fill(values, mean, std)
			generic := encodeValues(make([]byte, 2*n), values, dtype)

			var table encodedTable16
			table.build(mean, std, dtype)
			fast := make([]byte, 2*n)
			newNormalStream(1, domainBase, "x", 0).fillEncoded16(fast, &table)
			assert.Equal(t, generic, fast)
		})
	}
}

func TestPerturbEncodedMatchesGenericPath(t *testing.T) {
	for _, dtype := range []layout.Dtype{layout.DtypeBF16, layout.DtypeF16, layout.DtypeF32} {
		t.Run(string(dtype), func(t *testing.T) {
			const n = 1003
			values := make([]float32, n)
			newNormalStream(1, domainBase, "x", 0).fill(values, 0, 0.02)
			data := encodeValues(make([]byte, 4*n), values, dtype)

			// The generic path: decode, add, encode.
			decodeValues(values, data, dtype)
			newNormalStream(2, domainDelta, "x", 0).add(values, 0.005)
			want := encodeValues(make([]byte, 4*n), values, dtype)

			newNormalStream(2, domainDelta, "x", 0).perturbEncoded(data, 0.005, dtype, make([]float32, n))
			assert.Equal(t, want, data)
		})
	}
}

func TestPickleProtocol2(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   any
		want string // pickle body between PROTO 2 and STOP
	}{
		{"small int", 5, "K\x05"},
		{"two bytes", 300, "M\x2c\x01"},
		{"four bytes", 70000, "J\x70\x11\x01\x00"},
		{"negative", -1, "J\xff\xff\xff\xff"},
		{"2**31", uint32(1 << 31), "\x8a\x05\x00\x00\x00\x80\x00"},
		{"2**32-1", uint32(math.MaxUint32), "\x8a\x05\xff\xff\xff\xff\x00"},
		{"uint64", uint64(math.MaxUint64), "\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\x00"},
		{"float", 0.5, "G\x3f\xe0\x00\x00\x00\x00\x00\x00"},
		{"string", "ab", "X\x02\x00\x00\x00ab"},
		{"bools and none", pyTuple{true, false, nil}, "\x88\x89N\x87"},
		{"long tuple", pyTuple{1, 2, 3, 4}, "(K\x01K\x02K\x03K\x04t"},
		{"empty tuple", pyTuple{}, ")"},
		// Python writes this with memo (BINPUT) opcodes in between.
		{"dict of list", pyDict{{"a", pyList{1, 2}}}, "}X\x01\x00\x00\x00a](K\x01K\x02es"},
		{"one-item list", pyList{1}, "]K\x01a"},
		{"bytes", pyBytes{0x62, 0xe9}, "c_codecs\nencode\nX\x03\x00\x00\x00b\xc3\xa9X\x06\x00\x00\x00latin1\x86R"},
		{"persistent id", pyPersistentID{pyTuple{"storage"}}, "X\x07\x00\x00\x00storage\x85Q"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, "\x80\x02"+tc.want+".", string(pickleProtocol2(tc.in)))
		})
	}
}

func TestTorchSaveZip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.pt")
	pickled := pickleProtocol2(pyDict{{"x", 1}})
	storages := []torchStorage{
		bytesStorage("2", []byte("two")),
		bytesStorage("10", bytes.Repeat([]byte{7}, 1000)),
	}
	require.NoError(t, writeTorchSave(path, pickled, storages))

	archive, err := zip.OpenReader(path)
	require.NoError(t, err)
	defer archive.Close()
	want := []struct {
		name string
		data []byte
	}{
		{"archive/data.pkl", pickled},
		{"archive/byteorder", []byte("little")},
		{"archive/data/10", bytes.Repeat([]byte{7}, 1000)},
		{"archive/data/2", []byte("two")},
		{"archive/version", []byte("3\n")},
	}
	require.Len(t, archive.File, len(want)+1)
	for i, file := range archive.File {
		assert.Equal(t, zip.Store, file.Method, file.Name)
		offset, err := file.DataOffset()
		require.NoError(t, err)
		assert.Zero(t, offset%64, "%s data at %d is 64-byte aligned", file.Name, offset)
		reader, err := file.Open()
		require.NoError(t, err)
		data, err := io.ReadAll(reader) // checks the CRC
		require.NoError(t, err)
		if i < len(want) {
			assert.Equal(t, want[i].name, file.Name)
			assert.Equal(t, want[i].data, data, file.Name)
		} else {
			assert.Equal(t, "archive/.data/serialization_id", file.Name)
			assert.Regexp(t, regexp.MustCompile(`^[0-9]{40}$`), string(data))
		}
	}
}

func TestResumeStateFiles(t *testing.T) {
	m := TinyModel()
	trainable := m.params()
	embeddings := int64(m.Vocab+m.Positions) * int64(m.Hidden)
	for _, tc := range []struct {
		name      string
		scale     float64
		frozen    bool
		momentsFP int64 // float32 elements of exp_avg + exp_avg_sq
	}{
		{"default scale", 0, false, 2 * trainable},
		{"small scale", 0.25, false, trainable / 4},
		{"frozen embeddings have no state", 0, true, 2 * (trainable - embeddings)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tinySpec()
			spec.OptimizerScale, spec.FrozenEmbedding = tc.scale, tc.frozen
			dir, err := WriteCheckpoint(t.TempDir(), spec, 0, nil)
			require.NoError(t, err)

			archive, err := zip.OpenReader(filepath.Join(dir, "optimizer.pt"))
			require.NoError(t, err)
			defer archive.Close()
			var storageBytes int64
			for _, file := range archive.File {
				if matched, _ := filepath.Match("archive/data/*", file.Name); matched {
					storageBytes += int64(file.UncompressedSize64)
				}
			}
			params := len(m.Tensors())
			if tc.frozen {
				params -= 2
			}
			// One 4-byte step tensor per parameter, plus the moments (each
			// rounded separately when scaled).
			assert.InDelta(t, 4*tc.momentsFP+4*int64(params), storageBytes, float64(8*params))

			for _, name := range []string{"scheduler.pt", "rng_state.pth", "training_args.bin"} {
				archive, err := zip.OpenReader(filepath.Join(dir, name))
				require.NoError(t, err, name)
				assert.Equal(t, "archive/data.pkl", archive.File[0].Name, name)
				archive.Close()
			}
		})
	}
}

func TestTrainerStateJSON(t *testing.T) {
	spec := tinySpec()
	spec.EvalLoss = []float64{2.5, math.NaN(), 2.25}

	type entry map[string]any
	decode := func(t *testing.T, data []byte) map[string]any {
		t.Helper()
		var state map[string]any
		require.NoError(t, json.Unmarshal(data, &state))
		return state
	}
	t.Run("file matches", func(t *testing.T) {
		dir, err := WriteCheckpoint(t.TempDir(), spec, 1, nil)
		require.NoError(t, err)
		data, err := os.ReadFile(filepath.Join(dir, "trainer_state.json"))
		require.NoError(t, err)
		assert.Equal(t, string(TrainerStateJSON(spec, 1)), string(data))
		assert.Regexp(t, `^\{\n  "best_global_step": 20,\n  "best_metric": 2\.5,\n`, string(data))
		assert.Regexp(t, `\n\}\n$`, string(data))
	})
	for _, tc := range []struct {
		name           string
		i              int
		bestStep       any
		bestCheckpoint any
		evalSteps      []float64
		trainingStop   bool
	}{
		{"first", 0, 20.0, "out/checkpoint-20", []float64{20}, false},
		{"no eval at 40", 1, 20.0, "out/checkpoint-20", []float64{20}, false},
		{"last", 2, 60.0, "out/checkpoint-60", []float64{20, 60}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := decode(t, TrainerStateJSON(spec, tc.i))
			step := float64(spec.Steps[tc.i])
			assert.Equal(t, step, state["global_step"])
			assert.Equal(t, tc.bestStep, state["best_global_step"])
			assert.Equal(t, tc.bestCheckpoint, state["best_model_checkpoint"])
			assert.Equal(t, 60.0, state["max_steps"])
			assert.Equal(t, 20.0, state["save_steps"])
			assert.Equal(t, 20.0, state["eval_steps"])
			assert.Equal(t, 10.0, state["logging_steps"])
			control := state["stateful_callbacks"].(map[string]any)["TrainerControl"].(map[string]any)["args"].(map[string]any)
			assert.Equal(t, tc.trainingStop, control["should_training_stop"])

			var trainingSteps, evalSteps []float64
			for _, raw := range state["log_history"].([]any) {
				e := entry(raw.(map[string]any))
				if _, ok := e["eval_loss"]; ok {
					assert.ElementsMatch(t, []string{"epoch", "eval_loss", "eval_runtime",
						"eval_samples_per_second", "eval_steps_per_second", "step"}, keys(e))
					evalSteps = append(evalSteps, e["step"].(float64))
					continue
				}
				assert.ElementsMatch(t, []string{"epoch", "grad_norm", "learning_rate", "loss", "step"}, keys(e))
				trainingSteps = append(trainingSteps, e["step"].(float64))
			}
			assert.Equal(t, tc.evalSteps, evalSteps)
			var wantTraining []float64
			for s := 10.0; s <= step; s += 10 {
				wantTraining = append(wantTraining, s)
			}
			assert.Equal(t, wantTraining, trainingSteps)
		})
	}
	t.Run("default curve", func(t *testing.T) {
		spec := tinySpec()
		spec.Steps = []int64{100, 200, 300, 400, 500, 600}
		state := decode(t, TrainerStateJSON(spec, len(spec.Steps)-1))
		assert.Less(t, state["best_global_step"], 600.0, "the best checkpoint is not the last")
		assert.Greater(t, state["best_global_step"], 100.0, "nor the first")
	})
	t.Run("out of range", func(t *testing.T) {
		assert.Nil(t, TrainerStateJSON(spec, 3))
	})
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
