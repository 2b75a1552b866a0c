package main

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/planes"
)

// writeModel writes a safetensors file of the given dtype ("F32" or
// "BF16") with one tensor of 2.5 chunks in fp32, one of exactly smallTensor
// bytes in fp32 and small ones, from weights w scaled by scale (the same w
// give the same model).
func writeModel(t *testing.T, path, dtype string, w []float32, scale float32) {
	t.Helper()
	es := 4
	if dtype == "BF16" {
		es = 2
	}
	big := int64(2*maxChunk+maxChunk/2) / 4
	one := int64(smallTensor) / 4
	tensors := []layout.TensorInfo{
		{Name: "big", Dtype: layout.Dtype(dtype), Shape: []int64{big}},
		{Name: "one", Dtype: layout.Dtype(dtype), Shape: []int64{one}},
		{Name: "norm.bias", Dtype: layout.Dtype(dtype), Shape: []int64{300}},
		{Name: "norm.weight", Dtype: layout.Dtype(dtype), Shape: []int64{300}},
	}
	size, err := layout.PackTensors(tensors)
	require.NoError(t, err)
	hdr, err := layout.EncodeSafetensorsHeader(tensors, nil)
	require.NoError(t, err)
	data := make([]byte, size)
	for i := int64(0); i < size/int64(es); i++ {
		v := w[i%int64(len(w))] * scale
		if es == 2 {
			binary.LittleEndian.PutUint16(data[2*i:], uint16(math.Float32bits(v)>>16))
		} else {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		}
	}
	require.NoError(t, os.WriteFile(path, append(hdr, data...), 0o644))
}

func weights(n int) []float32 {
	r := rand.New(rand.NewPCG(1, 2))
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.02)
	}
	return w
}

// TestPlanMirrorsStore checks the chunk plan of a safetensors file: the
// chunks tile the file, the header is one chunk, a tensor of at least
// smallTensor bytes is cut every maxChunk bytes from its start, small ones
// share a chunk.
func TestPlanMirrorsStore(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "model.safetensors")
	writeModel(t, p, "F32", weights(4096), 1)
	f, err := readSafetensors(p)
	require.NoError(t, err)
	pos := int64(0)
	for _, c := range f.chunks {
		require.Equal(t, pos, c.off)
		pos += c.size
	}
	require.Equal(t, int64(len(f.data)), pos)
	sizes := []int64{}
	for _, c := range f.chunks {
		sizes = append(sizes, c.size)
	}
	hdr := f.chunks[0].size
	assert.Equal(t, []int64{hdr, maxChunk, maxChunk, maxChunk / 2, smallTensor, 2 * 300 * 4}, sizes)
	assert.True(t, f.chunks[0].text)
	for _, c := range f.chunks[1:] {
		assert.Equal(t, 4, c.elem)
		assert.True(t, c.tiled)
	}
	assert.Len(t, f.chunks[5].segs, 2, "the small tensors share a chunk")
}

// TestCompareCountsDedupeAndDeltas compares files against themselves, a
// changed copy, and a bf16 file against its fp32 base.
func TestCompareCountsDedupeAndDeltas(t *testing.T) {
	dir := t.TempDir()
	w := weights(1 << 16)
	paths := map[string]string{}
	for _, m := range []struct {
		name, dtype string
		scale       float32
	}{{"base", "F32", 1}, {"changed", "F32", 1.001}, {"bf16", "BF16", 1}} {
		paths[m.name] = filepath.Join(dir, m.name+".safetensors")
		writeModel(t, paths[m.name], m.dtype, w, m.scale)
	}
	base, err := readSafetensors(paths["base"])
	require.NoError(t, err)
	changed, err := readSafetensors(paths["changed"])
	require.NoError(t, err)
	bf16, err := readSafetensors(paths["bf16"])
	require.NoError(t, err)

	st, _, err := compare(base, base, codeStandalone(base), pairOptions{})
	require.NoError(t, err)
	assert.Zero(t, st.Delta, "a file against itself stores nothing")
	assert.Equal(t, st.Chunks, st.Deduped)

	st, deltas, err := compare(changed, base, codeStandalone(changed), pairOptions{ops: true, perTensor: true})
	require.NoError(t, err)
	assert.Equal(t, 1, st.Deduped, "only the header is unchanged")
	assert.Less(t, st.Delta, st.Standalone)
	assert.LessOrEqual(t, st.BestChunk, st.Delta)
	assert.Equal(t, st.BestChunk, min(st.BestChunk, st.BestTensor))
	assert.Positive(t, st.XOR)
	assert.Positive(t, st.Sub)
	assert.Positive(t, st.TensorWhole)
	for _, d := range deltas[1:] {
		assert.True(t, d.has)
		assert.Equal(t, planes.RefSame, d.form)
	}

	// bf16 against the fp32 base: the chunks are cut at other offsets
	// and the 1 MiB tensor joins the small ones (512 KiB in bf16); the
	// references are the same elements in fp32.
	require.Len(t, bf16.chunks, 4)
	assert.Len(t, bf16.chunks[3].segs, 3)
	st, deltas, err = compare(bf16, base, codeStandalone(bf16), pairOptions{timing: 1})
	require.NoError(t, err)
	for i, c := range bf16.chunks[1:] {
		d := deltas[i+1]
		require.True(t, d.has, "chunk at %d", c.off)
		assert.Equal(t, planes.RefF32ToBF16, d.form)
	}
	// The bf16 file truncates the base's values: nearly every element is
	// the base's rounded value or one below it.
	assert.Less(t, float64(st.Delta), 0.2*float64(st.Raw))
	assert.Positive(t, st.DecodedBytes)
}

// TestWholeBlobRule checks which references the proposed envelope can
// name: up to two whole chunks of the reference file.
func TestWholeBlobRule(t *testing.T) {
	ref := &file{chunks: []chunk{{off: 0, size: 10}, {off: 10, size: 20}, {off: 30, size: 5}, {off: 35, size: 5}}}
	for _, c := range []struct {
		name   string
		ranges [][2]int64
		n      int
		ok     bool
	}{
		{"one chunk", [][2]int64{{10, 30}}, 1, true},
		{"two chunks", [][2]int64{{10, 35}}, 2, true},
		{"two apart", [][2]int64{{0, 10}, {30, 35}}, 2, true},
		{"three chunks", [][2]int64{{0, 35}}, 3, false},
		{"part of a chunk", [][2]int64{{10, 20}}, 0, false},
		{"not at a chunk start", [][2]int64{{12, 30}}, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, ok := wholeBlobs(ref, c.ranges)
			assert.Equal(t, c.ok, ok)
			if c.ok {
				assert.Equal(t, c.n, n)
			}
		})
	}
}
