package diff_test

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/diff"
	"github.com/ckptdev/ckpt/layout"
)

func f32Bytes(vals []float32) []byte {
	out := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

func f64Bytes(vals []float32) []byte {
	out := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(float64(v)))
	}
	return out
}

// bf16Bytes truncates float32 values exactly representable in bfloat16.
func bf16Bytes(vals []float32) []byte {
	out := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(out[2*i:], uint16(math.Float32bits(v)>>16))
	}
	return out
}

// f16Bytes encodes the values the tests use as IEEE binary16.
func f16Bytes(vals []float32) []byte {
	bits := map[float32]uint16{0: 0x0000, 1: 0x3c00, 2: 0x4000, 3: 0x4200, 5: 0x4500, -2: 0xc000, 0.5: 0x3800}
	out := make([]byte, 2*len(vals))
	for i, v := range vals {
		b, ok := bits[v]
		if math.IsNaN(float64(v)) {
			b, ok = 0x7e00, true
		}
		if !ok {
			panic("f16Bytes: add the value to the table")
		}
		binary.LittleEndian.PutUint16(out[2*i:], b)
	}
	return out
}

// statsOf writes tensor "t" with values a and b in two folders and returns
// its comparison with statistics.
func statsOf(t *testing.T, dtype layout.Dtype, a, b []float32) diff.TensorChange {
	t.Helper()
	encode := map[layout.Dtype]func([]float32) []byte{
		layout.DtypeF32: f32Bytes, layout.DtypeF64: f64Bytes, layout.DtypeBF16: bf16Bytes, layout.DtypeF16: f16Bytes,
	}[dtype]
	dir := t.TempDir()
	for side, vals := range map[string][]float32{"a": a, "b": b} {
		writeSafetensors(t, filepath.Join(dir, side), "model.safetensors",
			[]layout.TensorInfo{{Name: "t", Dtype: dtype, Shape: []int64{int64(len(vals))}}}, [][]byte{encode(vals)})
	}
	rep := compare(t, fromFolder(t, filepath.Join(dir, "a")), fromFolder(t, filepath.Join(dir, "b")), diff.Options{Stats: true})
	require.Len(t, rep.Tensors, 1)
	return rep.Tensors[0]
}

func TestStatsAgainstHandComputation(t *testing.T) {
	for _, dtype := range []layout.Dtype{layout.DtypeF32, layout.DtypeF64, layout.DtypeBF16, layout.DtypeF16} {
		t.Run(string(dtype), func(t *testing.T) {
			tc := statsOf(t, dtype, []float32{1, 2, 3}, []float32{1, 2, 5})
			require.Equal(t, diff.Changed, tc.Kind)
			require.NotNil(t, tc.Stats)
			st := tc.Stats
			assert.Equal(t, int64(3), st.Elements)
			assert.Equal(t, int64(1), st.Differing)
			assert.Zero(t, st.NonFinite)
			assert.Equal(t, 2.0, st.MaxAbsDelta)
			assert.InDelta(t, math.Sqrt(14), st.NormA, 1e-12)
			assert.InDelta(t, 2.0, st.NormDelta, 1e-12)
			require.NotNil(t, st.RelL2)
			assert.InDelta(t, 2/math.Sqrt(14), *st.RelL2, 1e-12)
			assert.Empty(t, st.Note)
		})
	}
}

func TestStatsEdgeCases(t *testing.T) {
	nan := float32(math.NaN())
	cases := []struct {
		name    string
		dtype   layout.Dtype
		a, b    []float32
		maxAbs  float64
		rel     *float64 // nil: undefined
		nonFin  int64
		differ  int64
		hasNote bool
	}{
		{"A all zeros", layout.DtypeF32, []float32{0, 0}, []float32{0, 0.5}, 0.5, nil, 0, 1, true},
		{"negative zero equals zero", layout.DtypeF32, []float32{0, 0}, []float32{float32(math.Copysign(0, -1)), 0}, 0, ptr(0), 0, 0, false},
		{"NaN left out", layout.DtypeF32, []float32{nan, 1}, []float32{1, 2}, 1, ptr(1), 1, 1, false},
		{"NaN in F16", layout.DtypeF16, []float32{1, 2}, []float32{nan, -2}, 4, ptr(2), 1, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := statsOf(t, tc.dtype, tc.a, tc.b)
			require.Equal(t, diff.Changed, ch.Kind)
			st := ch.Stats
			require.NotNil(t, st)
			assert.Equal(t, tc.maxAbs, st.MaxAbsDelta)
			assert.Equal(t, tc.nonFin, st.NonFinite)
			assert.Equal(t, tc.differ, st.Differing)
			if tc.rel == nil {
				assert.Nil(t, st.RelL2)
			} else if assert.NotNil(t, st.RelL2) {
				assert.InDelta(t, *tc.rel, *st.RelL2, 1e-12)
			}
			assert.Equal(t, tc.hasNote, st.Note != "", st.Note)
		})
	}
}

func ptr(v float64) *float64 { return &v }

func TestStatsSkipsOtherDtypes(t *testing.T) {
	dir := t.TempDir()
	for side, v := range map[string]byte{"a": 1, "b": 2} {
		writeSafetensors(t, filepath.Join(dir, side), "model.safetensors",
			[]layout.TensorInfo{{Name: "steps", Dtype: layout.DtypeI32, Shape: []int64{1}}}, [][]byte{{v, 0, 0, 0}})
	}
	rep := compare(t, fromFolder(t, filepath.Join(dir, "a")), fromFolder(t, filepath.Join(dir, "b")), diff.Options{Stats: true})
	require.Len(t, rep.Tensors, 1)
	st := rep.Tensors[0].Stats
	require.NotNil(t, st)
	assert.Contains(t, st.Skipped, "I32")
	assert.Zero(t, st.Elements)
}
