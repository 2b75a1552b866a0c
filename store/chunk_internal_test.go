package store

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/object"
)

const mib = 1 << 20

// span is an extent's bytes and how it is coded, for comparing plans.
type span struct {
	off, size int64
	elem      int
	text      bool
	trial     bool
	tensors   []int
}

func spans(plan []extent) []span {
	out := make([]span, len(plan))
	for i, e := range plan {
		out[i] = span{off: e.off, size: e.size, elem: e.hint.ElemSize, text: e.hint.Text, trial: e.trial, tensors: e.tensors}
	}
	return out
}

func TestPlanTensors(t *testing.T) {
	fixed := func(size int64) []span {
		return spans(planChunks(size, nil, object.EncodeHint{}))
	}
	tests := []struct {
		name    string
		size    int64
		tensors []layoutTensor
		want    []span
	}{{
		name: "torch zip: metadata, a large storage in pieces, tiny storages grouped, a mid-size one alone",
		size: 20 * mib,
		tensors: []layoutTensor{
			{off: 4096, size: 9 * mib, elem: 4},
			{off: 9*mib + 4160, size: 1024, elem: 4},
			{off: 9*mib + 5248, size: 2048, elem: 2},
			{off: 9*mib + 8192, size: 64 << 10, elem: 2},
			{off: 10 * mib, size: 4 * mib, elem: elemUnknown},
		},
		want: []span{
			{off: 0, size: 4096, text: true},
			{off: 4096, size: 8 * mib, elem: 4},
			{off: 4096 + 8*mib, size: mib, elem: 4},
			{off: 9*mib + 4096, size: 64, text: true},
			{off: 9*mib + 4160, size: 5248 - 4160 + 2048, trial: true, tensors: []int{1, 2}},
			{off: 9*mib + 7296, size: 8192 - 7296, text: true},
			{off: 9*mib + 8192, size: 64 << 10, elem: 2},
			{off: 9*mib + 8192 + 64<<10, size: mib - 8192 - 64<<10, text: true},
			{off: 10 * mib, size: 4 * mib, trial: true},
			{off: 14 * mib, size: 6 * mib, text: true},
		},
	}, {
		name: "tiny tensors share extents of at most 1 MiB",
		size: 3 * mib,
		tensors: []layoutTensor{
			{off: 0, size: 60 << 10, elem: 4},
			{off: 600 << 10, size: 60 << 10, elem: 4},
			{off: 1000 << 10, size: 60 << 10, elem: 4},
		},
		want: []span{
			{off: 0, size: 660 << 10, elem: 4, tensors: []int{0, 1}},
			{off: 660 << 10, size: 340 << 10, text: true},
			{off: 1000 << 10, size: 60 << 10, elem: 4, tensors: []int{2}},
			{off: 1060 << 10, size: 3*mib - 1060<<10, text: true},
		},
	}, {
		name: "quantized blocks: no planes",
		size: 2 * mib,
		tensors: []layoutTensor{
			{off: 0, size: mib, elem: 0},
			{off: mib, size: 100, elem: 0},
		},
		want: []span{
			{off: 0, size: mib},
			{off: mib, size: 100, tensors: []int{1}},
			{off: mib + 100, size: mib - 100, text: true},
		},
	}, {
		name:    "a small file is one extent",
		size:    1000,
		tensors: []layoutTensor{{off: 100, size: 400, elem: 4}},
		want:    []span{{off: 0, size: 1000, trial: true, tensors: []int{0}}},
	}, {
		name:    "overlapping tensors: fixed cuts",
		size:    20 * mib,
		tensors: []layoutTensor{{off: 0, size: 2 * mib, elem: 4}, {off: mib, size: 2 * mib, elem: 4}},
		want:    fixed(20 * mib),
	}, {
		name:    "a tensor past the end: fixed cuts",
		size:    2 * mib,
		tensors: []layoutTensor{{off: mib, size: 2 * mib, elem: 4}},
		want:    fixed(2 * mib),
	}, {
		name:    "tensors out of order: fixed cuts",
		size:    4 * mib,
		tensors: []layoutTensor{{off: 2 * mib, size: mib, elem: 4}, {off: 0, size: mib, elem: 4}},
		want:    fixed(4 * mib),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := spans(planChunks(tt.size, &fileLayout{tensors: tt.tensors}, object.EncodeHint{}))
			assert.Equal(t, tt.want, got)
		})
	}
}

// checkPlan asserts what every plan promises: the extents tile the file,
// none is larger than MaxChunkSize, a grouped tensor lies inside its
// extent, and a tensor that is in no group starts an extent and is cut
// every MaxChunkSize bytes from its start.
func checkPlan(t *testing.T, size int64, tensors []layoutTensor, plan []extent) {
	t.Helper()
	next := int64(0)
	starts := map[int64]bool{}
	grouped := map[int]bool{}
	for _, e := range plan {
		require.Equal(t, next, e.off, "extents do not tile the file")
		require.GreaterOrEqual(t, e.size, int64(0))
		require.LessOrEqual(t, e.size, int64(object.MaxChunkSize))
		next += e.size
		starts[e.off] = true
		for _, ti := range e.tensors {
			require.True(t, ti >= 0 && ti < len(tensors), "tensor index %d", ti)
			require.False(t, grouped[ti], "tensor %d in two extents", ti)
			grouped[ti] = true
			tn := tensors[ti]
			require.True(t, tn.off >= e.off && tn.off+tn.size <= e.off+e.size, "tensor %d outside its extent", ti)
		}
	}
	require.Equal(t, size, next, "extents do not cover the file")
	if !tensorsTile(size, tensors) {
		return
	}
	for i, tn := range tensors {
		if grouped[i] || tn.size == 0 {
			continue
		}
		for off := tn.off; off < tn.off+tn.size; off += object.MaxChunkSize {
			require.True(t, starts[off], "tensor %d: no extent starts at %d", i, off)
		}
		require.True(t, starts[tn.off+tn.size] || tn.off+tn.size == size, "tensor %d: no cut at its end", i)
	}
}

func FuzzPlanChunks(f *testing.F) {
	seed := func(size int64, ts ...[3]int64) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(size))
		for _, tn := range ts {
			b = binary.LittleEndian.AppendUint64(b, uint64(tn[0]))
			b = binary.LittleEndian.AppendUint64(b, uint64(tn[1]))
			b = append(b, byte(tn[2]))
		}
		return b
	}
	f.Add(seed(20*mib, [3]int64{4096, 9 * mib, 4}, [3]int64{9*mib + 4160, 1024, 4}, [3]int64{10 * mib, 4 * mib, 255}))
	f.Add(seed(1000, [3]int64{100, 400, 2}))
	f.Add(seed(3*mib, [3]int64{0, 0, 4}, [3]int64{0, 60 << 10, 4}, [3]int64{2 * mib, mib, 0}))
	f.Add(seed(2*mib, [3]int64{mib, 2 * mib, 4}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 8 {
			return
		}
		// Sizes up to 64 MiB keep plans small; offsets are anything.
		size := int64(binary.LittleEndian.Uint64(data) % (64 * mib))
		var tensors []layoutTensor
		for rest := data[8:]; len(rest) >= 17 && len(tensors) < 1000; rest = rest[17:] {
			elem := int(rest[16] % 10)
			if rest[16] == 255 {
				elem = elemUnknown
			}
			tensors = append(tensors, layoutTensor{
				off:  int64(binary.LittleEndian.Uint64(rest)),
				size: int64(binary.LittleEndian.Uint64(rest[8:])),
				elem: elem,
			})
		}
		checkPlan(t, size, tensors, planChunks(size, &fileLayout{tensors: tensors}, object.EncodeHint{}))
	})
}

// TestReadLayoutHostile: a .bin, .pt, .distcp or .gguf file that does not
// parse is opaque bytes (nil layout, no error); one that parses gets its
// tensors.
func TestReadLayoutHostile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.bin")
	require.NoError(t, synth.WriteTorchStateDict(good, []synth.TorchTensor{
		{Name: "w", StorageType: "FloatStorage", Shape: []int64{4}, Data: make([]byte, 16)},
	}))
	zip, err := os.ReadFile(good)
	require.NoError(t, err)
	gguf, err := synth.EncodeGGUF(synth.GGUFFile{Tensors: []synth.GGUFTensor{
		{Name: "w", Type: layout.GGMLF32, Dims: []uint64{4}, Data: make([]byte, 16)},
	}})
	require.NoError(t, err)

	flip := func(b []byte, at int) []byte {
		b = append([]byte(nil), b...)
		b[at] ^= 0xff
		return b
	}
	tests := []struct {
		name, file string
		data       []byte
		parsed     bool
	}{
		{"torch zip", "pytorch_model.bin", zip, true},
		{"torch zip as optimizer.pt", "optimizer.pt", zip, true},
		{"gguf", "model.gguf", gguf, true},
		{"truncated zip", "pytorch_model.bin", zip[:len(zip)-10], false},
		{"zip with a broken directory", "pytorch_model.bin", flip(zip, len(zip)-5), false},
		{"legacy pickle", "pytorch_model.bin", []byte("\x80\x02\x8a\x0alegacy torch.save"), false},
		{"empty .pt", "rng_state.pth", nil, false},
		{"truncated gguf", "model.gguf", gguf[:40], false},
		{"gguf with a huge tensor count", "model.gguf", flip(gguf, 15), false},
		{"zip as .distcp", "__0_0.distcp", zip, true},
		{"garbage .distcp", "__0_0.distcp", []byte("not an archive at all"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), tt.file)
			require.NoError(t, os.WriteFile(p, tt.data, 0o644))
			e := layout.Entry{Path: tt.file, Role: layout.Classify(tt.file)}
			l, err := readLayout(p, e, int64(len(tt.data)))
			require.NoError(t, err)
			if !tt.parsed {
				assert.Nil(t, l)
				return
			}
			require.NotNil(t, l)
			require.Len(t, l.tensors, 1)
			assert.Equal(t, int64(16), l.tensors[0].size)
			assert.Equal(t, 4, l.tensors[0].elem)
		})
	}
}

// TestTrialHint: bytes of unknown element width get the codec that codes
// a sample smallest: planes by 4 for fp32, by 2 for bf16, zstd for text.
func TestTrialHint(t *testing.T) {
	f32 := make([]byte, 4<<16)
	bf16 := make([]byte, 2<<16)
	x := uint32(1)
	for i := range 1 << 16 {
		x = x*1664525 + 1013904223
		// values near 0.02 in magnitude, mantissas random
		v := 0x3c000000 | x>>9&0x7fffff | (x&1)<<31
		binary.LittleEndian.PutUint32(f32[4*i:], v)
		binary.LittleEndian.PutUint16(bf16[2*i:], uint16(v>>16))
	}
	text := []byte{}
	for len(text) < 1<<16 {
		text = append(text, `{"key": "value", "other": [1, 2, 3]} `...)
	}
	assert.Equal(t, object.EncodeHint{ElemSize: 4}, trialHint(f32))
	assert.Equal(t, object.EncodeHint{ElemSize: 2}, trialHint(bf16))
	assert.Equal(t, object.EncodeHint{}, trialHint(text))
}
