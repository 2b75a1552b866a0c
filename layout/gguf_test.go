package layout_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"runtime/metrics"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/layout"
)

// TestGGMLTypeTable checks the block layouts against the sizes of ggml's
// block structs (ggml/src/ggml-common.h, whose static_asserts pin them).
func TestGGMLTypeTable(t *testing.T) {
	tests := []struct {
		typ      layout.GGMLType
		name     string
		block    int64
		bytes    int64
		elemSize int
	}{
		{0, "F32", 1, 4, 4}, {1, "F16", 1, 2, 2}, {30, "BF16", 1, 2, 2}, {28, "F64", 1, 8, 8},
		{24, "I8", 1, 1, 1}, {25, "I16", 1, 2, 2}, {26, "I32", 1, 4, 4}, {27, "I64", 1, 8, 8},
		{2, "Q4_0", 32, 18, 0}, {3, "Q4_1", 32, 20, 0}, {6, "Q5_0", 32, 22, 0}, {7, "Q5_1", 32, 24, 0},
		{8, "Q8_0", 32, 34, 0}, {9, "Q8_1", 32, 36, 0},
		{10, "Q2_K", 256, 84, 0}, {11, "Q3_K", 256, 110, 0}, {12, "Q4_K", 256, 144, 0},
		{13, "Q5_K", 256, 176, 0}, {14, "Q6_K", 256, 210, 0}, {15, "Q8_K", 256, 292, 0},
		{16, "IQ2_XXS", 256, 66, 0}, {17, "IQ2_XS", 256, 74, 0}, {18, "IQ3_XXS", 256, 98, 0},
		{19, "IQ1_S", 256, 50, 0}, {20, "IQ4_NL", 32, 18, 0}, {21, "IQ3_S", 256, 110, 0},
		{22, "IQ2_S", 256, 82, 0}, {23, "IQ4_XS", 256, 136, 0}, {29, "IQ1_M", 256, 56, 0},
		{34, "TQ1_0", 256, 54, 0}, {35, "TQ2_0", 256, 66, 0}, {39, "MXFP4", 32, 17, 0},
		{40, "NVFP4", 64, 36, 0}, {41, "Q1_0", 128, 18, 0}, {42, "Q2_0", 64, 18, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.True(t, tt.typ.Known())
			assert.Equal(t, tt.name, tt.typ.String())
			assert.Equal(t, tt.block, tt.typ.BlockSize())
			assert.Equal(t, tt.bytes, tt.typ.TypeSize())
			assert.Equal(t, tt.elemSize, tt.typ.ElemSize())
			size, err := tt.typ.TensorSize([]uint64{uint64(tt.block) * 3, 5})
			require.NoError(t, err)
			assert.Equal(t, 15*tt.bytes, size)
		})
	}
	for _, removed := range []layout.GGMLType{4, 5, 31, 32, 33, 36, 37, 38, 43, 1000} {
		assert.False(t, removed.Known(), "type %d", removed)
		_, err := removed.TensorSize([]uint64{32})
		assert.Error(t, err)
	}
	_, err := layout.GGMLQ4_K.TensorSize([]uint64{255})
	assert.ErrorContains(t, err, "not a multiple")
	_, err = layout.GGMLF32.TensorSize([]uint64{1 << 62, 4})
	assert.ErrorContains(t, err, "overflow")
	size, err := layout.GGMLF32.TensorSize(nil)
	require.NoError(t, err)
	assert.Equal(t, int64(4), size, "a scalar")
}

// allTypesTensors returns one small tensor of every known ggml type, with
// recognisable bytes.
func allTypesTensors(t testing.TB) []synth.GGUFTensor {
	var tensors []synth.GGUFTensor
	for typ := layout.GGMLType(0); typ < 64; typ++ {
		if !typ.Known() {
			continue
		}
		dims := []uint64{uint64(typ.BlockSize()) * 2, 3}
		size, err := typ.TensorSize(dims)
		require.NoError(t, err)
		data := bytes.Repeat([]byte{byte(typ) + 1}, int(size))
		tensors = append(tensors, synth.GGUFTensor{Name: "blk." + typ.String() + ".weight", Type: typ, Dims: dims, Data: data})
	}
	return tensors
}

// allValuesMetadata has a value of every metadata type, arrays of every
// element type and an array of arrays.
func allValuesMetadata() []layout.GGUFKV {
	return []layout.GGUFKV{
		{Key: "general.architecture", Type: layout.GGUFString, Value: "llama"},
		{Key: "general.name", Type: layout.GGUFString, Value: "tiny — ünïcode"},
		{Key: "u8", Type: layout.GGUFUint8, Value: uint8(200)},
		{Key: "i8", Type: layout.GGUFInt8, Value: int8(-100)},
		{Key: "u16", Type: layout.GGUFUint16, Value: uint16(60000)},
		{Key: "i16", Type: layout.GGUFInt16, Value: int16(-30000)},
		{Key: "u32", Type: layout.GGUFUint32, Value: uint32(4000000000)},
		{Key: "i32", Type: layout.GGUFInt32, Value: int32(-2000000000)},
		{Key: "f32", Type: layout.GGUFFloat32, Value: float32(1.5e-3)},
		{Key: "bool", Type: layout.GGUFBool, Value: true},
		{Key: "u64", Type: layout.GGUFUint64, Value: uint64(1) << 60},
		{Key: "i64", Type: layout.GGUFInt64, Value: int64(-1) << 60},
		{Key: "f64", Type: layout.GGUFFloat64, Value: float64(-2.25e100)},
		{Key: "tokenizer.ggml.tokens", Type: layout.GGUFArray, ArrayType: layout.GGUFString, Value: []string{"<s>", "</s>", "hello", ""}},
		{Key: "tokenizer.ggml.scores", Type: layout.GGUFArray, ArrayType: layout.GGUFFloat32, Value: []float32{0, -1.5, 2.25, 3}},
		{Key: "tokenizer.ggml.token_type", Type: layout.GGUFArray, ArrayType: layout.GGUFInt32, Value: []int32{3, 3, 1, 1}},
		{Key: "a.u8", Type: layout.GGUFArray, ArrayType: layout.GGUFUint8, Value: []uint8{1, 2, 255}},
		{Key: "a.i8", Type: layout.GGUFArray, ArrayType: layout.GGUFInt8, Value: []int8{-1, 2}},
		{Key: "a.u16", Type: layout.GGUFArray, ArrayType: layout.GGUFUint16, Value: []uint16{1, 65535}},
		{Key: "a.i16", Type: layout.GGUFArray, ArrayType: layout.GGUFInt16, Value: []int16{-1, 32767}},
		{Key: "a.u32", Type: layout.GGUFArray, ArrayType: layout.GGUFUint32, Value: []uint32{7}},
		{Key: "a.bool", Type: layout.GGUFArray, ArrayType: layout.GGUFBool, Value: []bool{true, false}},
		{Key: "a.u64", Type: layout.GGUFArray, ArrayType: layout.GGUFUint64, Value: []uint64{1 << 63}},
		{Key: "a.i64", Type: layout.GGUFArray, ArrayType: layout.GGUFInt64, Value: []int64{-5}},
		{Key: "a.f64", Type: layout.GGUFArray, ArrayType: layout.GGUFFloat64, Value: []float64{0.125}},
		{Key: "a.empty", Type: layout.GGUFArray, ArrayType: layout.GGUFString, Value: []string{}},
		{Key: "a.nested", Type: layout.GGUFArray, ArrayType: layout.GGUFArray, Value: []any{[]int32{1, 2}, []string{"x"}, []any{[]uint8{9}}}},
	}
}

func parseGGUFBytes(file []byte) (*layout.GGUF, error) {
	return layout.ParseGGUF(bytes.NewReader(file), int64(len(file)))
}

func TestParseGGUFRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		file synth.GGUFFile
	}{
		{"v3 default alignment", synth.GGUFFile{Metadata: allValuesMetadata(), Tensors: allTypesTensors(t)}},
		{"v2", synth.GGUFFile{Version: 2, Metadata: allValuesMetadata(), Tensors: allTypesTensors(t)}},
		{"alignment 64", synth.GGUFFile{Alignment: 64, Metadata: allValuesMetadata(), Tensors: allTypesTensors(t)}},
		{"alignment 1", synth.GGUFFile{Alignment: 1, Tensors: allTypesTensors(t)[:3]}},
		{"big-endian", synth.GGUFFile{BigEndian: true, Metadata: allValuesMetadata(), Tensors: allTypesTensors(t)}},
		{"no tensors, no metadata", synth.GGUFFile{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file, err := synth.EncodeGGUF(tt.file)
			require.NoError(t, err)
			g, err := parseGGUFBytes(file)
			require.NoError(t, err)
			wantVersion := tt.file.Version
			if wantVersion == 0 {
				wantVersion = 3
			}
			assert.Equal(t, wantVersion, g.Version)
			assert.Equal(t, tt.file.BigEndian, g.BigEndian)
			alignment := int64(layout.GGUFDefaultAlignment)
			wantMeta := tt.file.Metadata
			if tt.file.Alignment != 0 {
				alignment = int64(tt.file.Alignment)
				wantMeta = append(slices.Clone(wantMeta), layout.GGUFKV{Key: layout.GGUFAlignmentKey, Type: layout.GGUFUint32, Value: tt.file.Alignment})
			}
			assert.Equal(t, alignment, g.Alignment)
			assert.Equal(t, wantMeta, g.Metadata)
			assert.Zero(t, g.DataOffset%alignment)
			require.Len(t, g.Tensors, len(tt.file.Tensors))
			next := g.DataOffset
			for i, got := range g.Tensors {
				want := tt.file.Tensors[i]
				assert.Equal(t, want.Name, got.Name)
				assert.Equal(t, want.Type, got.Type)
				assert.Equal(t, want.Dims, got.Dims)
				assert.Equal(t, next, got.Offset, "tensor %s", got.Name)
				assert.Equal(t, int64(len(want.Data)), got.Size)
				assert.Equal(t, want.Type.ElemSize(), got.ElemSize)
				assert.Equal(t, want.Data, file[got.Offset:got.Offset+got.Size], "tensor %s bytes", got.Name)
				next = (got.Offset + got.Size + alignment - 1) / alignment * alignment
			}
			if kv, ok := g.Lookup("general.architecture"); ok {
				assert.Equal(t, "llama", kv.Value)
			}
		})
	}
}

// ggufPatch returns a copy of file with a little-endian value written at.
func ggufPatch(file []byte, at int, value uint64, width int) []byte {
	out := bytes.Clone(file)
	switch width {
	case 1:
		out[at] = byte(value)
	case 4:
		binary.LittleEndian.PutUint32(out[at:], uint32(value))
	case 8:
		binary.LittleEndian.PutUint64(out[at:], value)
	}
	return out
}

func TestParseGGUFHostile(t *testing.T) {
	one := synth.GGUFTensor{Name: "w", Type: layout.GGMLF32, Dims: []uint64{4}, Data: make([]byte, 16)}
	two := synth.GGUFTensor{Name: "v", Type: layout.GGMLF32, Dims: []uint64{4}, Data: make([]byte, 16)}
	encode := func(f synth.GGUFFile) []byte {
		file, err := synth.EncodeGGUF(f)
		require.NoError(t, err)
		return file
	}
	valid := encode(synth.GGUFFile{Tensors: []synth.GGUFTensor{one}})
	// Layout of valid: magic 0, version 4, tensor count 8, kv count 16, then
	// the tensor info: name len 24, "w" 32, n_dims 33, dim 37, type 45,
	// offset 49, end 57; data at 64.
	withKV := func(kv layout.GGUFKV) []byte {
		return encode(synth.GGUFFile{Metadata: []layout.GGUFKV{kv}, Tensors: []synth.GGUFTensor{one}})
	}
	tests := []struct {
		name     string
		file     []byte
		notGGUF  bool
		contains string
	}{
		{"empty", nil, true, ""},
		{"wrong magic", append([]byte("GGUX"), valid[4:]...), true, ""},
		{"version 1", ggufPatch(valid, 4, 1, 4), false, "unsupported version 1"},
		{"version 4", ggufPatch(valid, 4, 4, 4), false, "unsupported version 4"},
		{"truncated counts", valid[:12], false, "past the end"},
		{"truncated tensor info", valid[:40], false, "cannot fit"},
		{"truncated tensor dims", valid[:48], false, "past the end"},
		{"truncated data", valid[:70], false, "past the end of the file"},
		{"absurd tensor count", ggufPatch(valid, 8, 1<<40, 8), false, "tensors (limit"},
		{"absurd kv count", ggufPatch(valid, 16, 1<<40, 8), false, "metadata pairs (limit"},
		{"more tensors than bytes", ggufPatch(valid, 8, 1000, 8), false, "cannot fit"},
		{"a second tensor in the padding", ggufPatch(valid, 8, 2, 8), false, "run past the end"},
		{"absurd name length", ggufPatch(valid, 24, 1<<40, 8), false, "limit"},
		{"name longer than the file", ggufPatch(valid, 24, 1<<20, 8), false, "past the end"},
		{"too many dims", ggufPatch(valid, 33, 5, 4), false, "dimensions (limit 4)"},
		{"unknown type", ggufPatch(valid, 45, 4, 4), false, "unknown ggml type 4"},
		{"dims overflow", ggufPatch(valid, 37, 1<<62, 8), false, "overflow"},
		{"offset beyond the file", ggufPatch(valid, 49, 1<<40, 8), false, "past the end of the file"},
		{"offset beyond int64", ggufPatch(valid, 49, 1<<63, 8), false, "too large"},
		{"unaligned offset", ggufPatch(valid, 49, 4, 8), false, "not a multiple of the alignment"},
		{"overlapping tensors", ggufPatch(encode(synth.GGUFFile{Tensors: []synth.GGUFTensor{one, two}}), 82, 0, 8), false, "overlap"},
		{"duplicate tensor", encode(synth.GGUFFile{Tensors: []synth.GGUFTensor{one, one}}), false, "duplicate tensor name"},
		{"duplicate key", encode(synth.GGUFFile{Metadata: []layout.GGUFKV{
			{Key: "k", Type: layout.GGUFUint8, Value: uint8(1)}, {Key: "k", Type: layout.GGUFUint8, Value: uint8(1)},
		}}), false, "duplicate key"},
		{"alignment not a power of two", withKV(layout.GGUFKV{Key: layout.GGUFAlignmentKey, Type: layout.GGUFUint32, Value: uint32(48)}), false, "not a power of two"},
		{"alignment zero", withKV(layout.GGUFKV{Key: layout.GGUFAlignmentKey, Type: layout.GGUFUint32, Value: uint32(0)}), false, "not a power of two"},
		{"alignment of the wrong type", withKV(layout.GGUFKV{Key: layout.GGUFAlignmentKey, Type: layout.GGUFUint64, Value: uint64(32)}), false, "not UINT32"},
		{"bool of 2", ggufPatch(withKV(layout.GGUFKV{Key: "b", Type: layout.GGUFBool, Value: true}), 24+8+1+4, 2, 1), false, "bool value 2"},
		{"unknown value type", ggufPatch(withKV(layout.GGUFKV{Key: "b", Type: layout.GGUFBool, Value: true}), 24+8+1, 13, 4), false, "unknown value type 13"},
		{"absurd array length", ggufPatch(withKV(layout.GGUFKV{Key: "a", Type: layout.GGUFArray, ArrayType: layout.GGUFUint8, Value: []uint8{1}}), 24+8+1+4+4, 1<<40, 8), false, "limit"},
		{"array longer than the file", ggufPatch(withKV(layout.GGUFKV{Key: "a", Type: layout.GGUFArray, ArrayType: layout.GGUFUint64, Value: []uint64{1}}), 24+8+1+4+4, 1<<20, 8), false, "past the end"},
		{"unknown array type", ggufPatch(withKV(layout.GGUFKV{Key: "a", Type: layout.GGUFArray, ArrayType: layout.GGUFUint8, Value: []uint8{1}}), 24+8+1+4, 99, 4), false, "unknown array element type"},
		{"arrays nested too deep", withKV(layout.GGUFKV{Key: "a", Type: layout.GGUFArray, ArrayType: layout.GGUFArray,
			Value: []any{[]any{[]any{[]any{[]uint8{1}}}}}}), false, "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := parseGGUFBytes(tt.file)
			require.Error(t, err)
			require.Nil(t, g)
			if tt.notGGUF {
				require.ErrorIs(t, err, layout.ErrNotGGUF)
				return
			}
			var gerr *layout.GGUFError
			require.True(t, errors.As(err, &gerr), "error %v is not a GGUFError", err)
			assert.Contains(t, err.Error(), tt.contains)
		})
	}
}

// TestParseGGUFErrorsNameTheKey: a bad value names its key.
func TestParseGGUFErrorsNameTheKey(t *testing.T) {
	file, err := synth.EncodeGGUF(synth.GGUFFile{Metadata: []layout.GGUFKV{{Key: "tokenizer.ggml.tokens", Type: layout.GGUFBool, Value: true}}})
	require.NoError(t, err)
	at := 24 + 8 + len("tokenizer.ggml.tokens") + 4
	file[at] = 7
	_, err = parseGGUFBytes(file)
	assert.ErrorContains(t, err, `gguf: metadata "tokenizer.ggml.tokens": bool value 7`)
}

// ggufAllocated returns the bytes f allocates: the least of up to three runs
// when one is over limit, since the counter is process-wide and the fuzzing
// engine allocates concurrently (f must be deterministic).
func ggufAllocated(limit uint64, f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		// runtime/metrics reads the counter without stopping the world
		// (ReadMemStats does), which keeps fuzzing fast.
		sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
		metrics.Read(sample)
		before := sample[0].Value.Uint64()
		f()
		metrics.Read(sample)
		least = min(least, sample[0].Value.Uint64()-before)
		if least <= limit {
			break
		}
	}
	return least
}

func FuzzParseGGUF(f *testing.F) {
	for _, file := range []synth.GGUFFile{
		{Metadata: allValuesMetadata(), Tensors: allTypesTensors(f)},
		{Version: 2, BigEndian: true, Alignment: 8, Metadata: allValuesMetadata()[:3], Tensors: allTypesTensors(f)[:2]},
		{},
	} {
		data, err := synth.EncodeGGUF(file)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var g *layout.GGUF
		var err error
		// The buffered reader's 64 KiB plus a small multiple of the input.
		limit := uint64(16*len(data) + 256<<10)
		allocated := ggufAllocated(limit, func() { g, err = parseGGUFBytes(data) })
		require.LessOrEqual(t, allocated, limit, "allocated %d bytes for %d bytes of input", allocated, len(data))
		if err != nil {
			require.Nil(t, g)
			return
		}
		require.True(t, g.Version == 2 || g.Version == 3)
		require.Zero(t, g.DataOffset%g.Alignment)
		require.LessOrEqual(t, g.DataOffset, int64(len(data)))
		names := map[string]bool{}
		for _, tensor := range g.Tensors {
			require.False(t, names[tensor.Name])
			names[tensor.Name] = true
			require.GreaterOrEqual(t, tensor.Offset, g.DataOffset)
			require.LessOrEqual(t, tensor.Offset+tensor.Size, int64(len(data)))
			size, err := tensor.Type.TensorSize(tensor.Dims)
			require.NoError(t, err)
			require.Equal(t, size, tensor.Size)
		}
		// What was accepted re-encodes (when laid out the writer's way) to
		// the same header.
		if g.BigEndian || len(g.Tensors) > 0 {
			return
		}
		again, err := synth.EncodeGGUF(synth.GGUFFile{Version: g.Version, Metadata: g.Metadata})
		if err != nil {
			return // e.g. general.alignment, which the writer adds itself
		}
		g2, err := parseGGUFBytes(again)
		require.NoError(t, err)
		require.Equal(t, g.Metadata, g2.Metadata)
	})
}
