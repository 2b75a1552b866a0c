package main

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/planes"
)

// testTensor is a tensor a test writes into a safetensors file.
type testTensor struct {
	name  string
	dtype layout.Dtype
	shape []int64
	data  []byte
}

// writeSafetensors writes model.safetensors with tensors into a fresh
// checkpoint folder and returns the folder.
func writeSafetensors(t *testing.T, tensors ...testTensor) string {
	t.Helper()
	infos := make([]layout.TensorInfo, len(tensors))
	for i, tt := range tensors {
		infos[i] = layout.TensorInfo{Name: tt.name, Dtype: tt.dtype, Shape: tt.shape}
	}
	_, err := layout.PackTensors(infos)
	require.NoError(t, err)
	file, err := layout.EncodeSafetensorsHeader(infos, nil)
	require.NoError(t, err)
	for i, tt := range tensors {
		require.EqualValues(t, infos[i].End-infos[i].Begin, len(tt.data), tt.name)
		file = append(file, tt.data...)
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors"), file, 0o644))
	return dir
}

// floats returns n fp32 weights drawn from N(0, 0.02), little-endian.
func floats(rng *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64() * 0.02)
	}
	return out
}

func f32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(f))
	}
	return out
}

// nudge returns v with every weight moved by a fine-tune-sized step.
func nudge(rng *rand.Rand, v []float32) []float32 {
	out := make([]float32, len(v))
	for i, f := range v {
		out[i] = f * (1 + float32(rng.NormFloat64()*1e-4))
	}
	return out
}

func encodedLen(t *testing.T, data []byte, elem int) int64 {
	t.Helper()
	enc, err := planes.Encode(nil, data, elem)
	require.NoError(t, err)
	return int64(len(enc))
}

func xorBytes(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

func TestZipLLMEstimateXORAgainstBase(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := floats(rng, 8192)
	frozen := f32Bytes(floats(rng, 1024))
	bias := f32Bytes(floats(rng, 64))
	baseDir := writeSafetensors(t,
		testTensor{"h.0.w", "F32", []int64{64, 128}, f32Bytes(w)},
		testTensor{"h.0.frozen", "F32", []int64{1024}, frozen},
		testTensor{"h.0.bias", "F32", []int64{64}, bias},
	)
	ftW := f32Bytes(nudge(rng, w))
	ftBias := f32Bytes(nudge(rng, floats(rng, 64)))
	fresh := f32Bytes(floats(rng, 256))
	ftDir := writeSafetensors(t,
		testTensor{"h.0.w", "F32", []int64{64, 128}, ftW},
		testTensor{"h.0.frozen", "F32", []int64{1024}, frozen},
		// Same name and dtype as the base's, another shape: no reference.
		testTensor{"h.0.bias", "F32", []int64{2, 32}, ftBias},
		// No tensor of that name in the base.
		testTensor{"h.0.new", "F32", []int64{256}, fresh},
	)
	base, err := readWeights(baseDir)
	require.NoError(t, err)
	require.NotNil(t, base)
	ft, err := readWeights(ftDir)
	require.NoError(t, err)
	require.Len(t, ft.tensors, 4)

	z := newZipLLM()
	z.setBase(base)
	require.NoError(t, z.add("pre", "600", base, false))
	require.NoError(t, z.add("ft", "50", ft, true))

	assert.Equal(t, 1+1, z.paired["named"], "h.0.w and h.0.frozen have a same-name, same-dtype, same-shape base tensor")
	assert.Equal(t, 2, z.unpaired, "h.0.bias (other shape) and h.0.new (no such base tensor)")

	byName := map[string]zipEntry{}
	for i, tt := range ft.tensors {
		byName[tt.name] = z.files[1].entries[i+1]
	}
	xorW := encodedLen(t, xorBytes(ftW, f32Bytes(w)), 4)
	aloneW := encodedLen(t, ftW, 4)
	require.Less(t, xorW, aloneW, "a nudged tensor codes smaller as XOR")
	assert.True(t, byName["h.0.w"].xor)
	assert.Equal(t, xorW, byName["h.0.w"].coded)
	assert.False(t, byName["h.0.bias"].xor)
	assert.Equal(t, encodedLen(t, ftBias, 4), byName["h.0.bias"].coded)
	assert.Equal(t, encodedLen(t, fresh, 4), byName["h.0.new"].coded)
	for i := range base.tensors {
		assert.False(t, z.files[0].entries[i+1].xor, "the base run's tensors are coded standalone")
	}

	baseStored := int64(len(base.meta)) + encodedLen(t, f32Bytes(w), 4) + encodedLen(t, frozen, 4) + encodedLen(t, bias, 4)
	// The fine-tune's frozen tensor is the base's: stored once.
	ftStored := int64(len(ft.meta)) + xorW + encodedLen(t, ftBias, 4) + encodedLen(t, fresh, 4)
	all := z.totals(func(zipFile) (bool, bool) { return true, true })
	assert.Equal(t, tally{raw: base.size, stored: baseStored}, *all.runs["pre"])
	assert.Equal(t, tally{raw: ft.size, stored: ftStored}, *all.runs["ft"])
	assert.Equal(t, tally{raw: base.size + ft.size, stored: baseStored + ftStored}, all.family)
	assert.Equal(t, 3+3, all.tensors)
	assert.Equal(t, 1, all.xorTensors)

	// Retention removed the base: it is still stored (the fine-tune's XOR
	// needs it), its raw bytes no longer count.
	after := z.totals(func(f zipFile) (bool, bool) { return true, f.run != "pre" })
	assert.Equal(t, tally{raw: ft.size, stored: baseStored + ftStored}, after.family)
	onlyFT := z.totals(func(f zipFile) (bool, bool) { return f.run == "ft", true })
	// Without the base in the sum, the frozen tensor is the fine-tune's to
	// store: as its XOR with the base's, all zeros.
	assert.True(t, byName["h.0.frozen"].xor)
	assert.Equal(t, ftStored+encodedLen(t, make([]byte, len(frozen)), 4), onlyFT.family.stored)
}

func TestZipLLMReferenceForUnnamedStorages(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a, b := floats(rng, 4096), floats(rng, 4096)
	base := &weightsFile{tensors: []zipTensor{
		{name: "a", dtype: "F32", shape: []int64{4096}, elem: 4, data: f32Bytes(a)},
		{name: "b", dtype: "F32", shape: []int64{4096}, elem: 4, data: f32Bytes(b)},
		{name: "c", dtype: "BF16", shape: []int64{8192}, elem: 2, data: f32Bytes(b)},
		{name: "d", dtype: "F32", shape: []int64{1024}, elem: 4, data: f32Bytes(b[:1024])},
	}}
	z := newZipLLM()
	z.setBase(base)
	tests := []struct {
		name string
		t    zipTensor
		want string // name of the base tensor picked, "" none
	}{
		{"nearest of its dtype and size", zipTensor{dtype: "F32", elem: 4, data: f32Bytes(nudge(rng, b))}, "b"},
		{"the other one", zipTensor{dtype: "F32", elem: 4, data: f32Bytes(nudge(rng, a))}, "a"},
		{"same bytes, other dtype", zipTensor{dtype: "BF16", elem: 2, data: f32Bytes(nudge(rng, b))}, "c"},
		{"no base tensor of that size", zipTensor{dtype: "F32", elem: 4, data: f32Bytes(a[:512])}, ""},
		{"no base tensor of that dtype", zipTensor{dtype: "F16", elem: 2, data: f32Bytes(a)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := z.reference(&tt.t)
			assert.Zero(t, z.ambiguous, "a nudged tensor is far nearer its own base tensor than any other")
			if tt.want == "" {
				assert.Nil(t, ref)
				return
			}
			require.NotNil(t, ref)
			assert.Equal(t, tt.want, ref.name)
		})
	}
}

func TestZipLLMReferenceAmbiguous(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	base := &weightsFile{tensors: []zipTensor{
		{name: "a", dtype: "F32", elem: 4, data: f32Bytes(floats(rng, 4096))},
		{name: "b", dtype: "F32", elem: 4, data: f32Bytes(floats(rng, 4096))},
	}}
	z := newZipLLM()
	z.setBase(base)
	// A tensor of the same dtype and size as both, near neither.
	unrelated := zipTensor{dtype: "F32", elem: 4, data: f32Bytes(floats(rng, 4096))}
	require.NotNil(t, z.reference(&unrelated))
	assert.Equal(t, 1, z.ambiguous)
	assert.Equal(t, 1, z.paired["nearest"])
}

func TestNearness(t *testing.T) {
	f32 := func(v ...uint32) []byte {
		out := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(out[4*i:], x)
		}
		return out
	}
	tests := []struct {
		name         string
		a, b         []byte
		elem         int
		score, count int
	}{
		{"identical", f32(0x3f800000, 0xbf800000), f32(0x3f800000, 0xbf800000), 4, 64, 2},
		{"sign differs", f32(0x3f800000), f32(0xbf800000), 4, 0, 1},
		{"last mantissa bit differs", f32(0x3f800000), f32(0x3f800001), 4, 31, 1},
		{"bf16, top byte equal", []byte{0x00, 0x3f}, []byte{0xff, 0x3f}, 2, 8, 1},
		{"bytes", []byte{0x0f, 0xff}, []byte{0x0e, 0xff}, 1, 7 + 8, 2},
		{"empty", nil, nil, 4, 0, 0},
		{"reference too short", f32(1, 2), f32(1), 4, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			score, count := nearness(tt.a, tt.b, tt.elem)
			assert.Equal(t, tt.score, score)
			assert.Equal(t, tt.count, count)
		})
	}
}

func TestReadWeights(t *testing.T) {
	t.Run("folder without weights", func(t *testing.T) {
		w, err := readWeights(t.TempDir())
		require.NoError(t, err)
		assert.Nil(t, w)
	})
	t.Run("corrupt safetensors is named", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "model.safetensors")
		require.NoError(t, os.WriteFile(p, []byte("\xff\xff\xff\xff\xff\xff\xff\x7fnot a header"), 0o644))
		_, err := readWeights(dir)
		require.Error(t, err)
		assert.Contains(t, err.Error(), p)
	})
	t.Run("header bytes are metadata", func(t *testing.T) {
		dir := writeSafetensors(t, testTensor{"x", "BF16", []int64{4}, []byte{1, 2, 3, 4, 5, 6, 7, 8}})
		w, err := readWeights(dir)
		require.NoError(t, err)
		require.Len(t, w.tensors, 1)
		assert.Equal(t, []byte{1, 2, 3, 4, 5, 6, 7, 8}, w.tensors[0].data)
		assert.Equal(t, 2, w.tensors[0].elem)
		assert.EqualValues(t, w.size-8, len(w.meta))
	})
}

func TestResticForget(t *testing.T) {
	snaps := []resticSnapshot{
		{"pre", "500", "s1"}, {"pre", "600", "s2"},
		{"ft", "50", "s3"}, {"ft", "100", "s4"}, {"ft", "150", "s5"},
		{"frozen", "50", "s6"},
	}
	tests := []struct {
		name    string
		removed map[string][]string
		want    []string
	}{
		{"nothing removed", map[string][]string{"pre": nil}, nil},
		{"by run and version, in backup order", map[string][]string{"ft": {"150", "50"}, "pre": {"500"}}, []string{"s1", "s3", "s5"}},
		{"a version of another run is not this one", map[string][]string{"frozen": {"100"}, "ft": {"600"}}, nil},
		{"an unknown run", map[string][]string{"gone": {"50"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, resticForget(snaps, tt.removed))
		})
	}
}

func TestBackupSummary(t *testing.T) {
	tests := []struct {
		name, out, want string
	}{
		{"summary after status lines", `{"message_type":"status","percent_done":0.5}
{"message_type":"summary","files_new":3,"snapshot_id":"4f1c2a"}
`, "4f1c2a"},
		{"noise is skipped", "warning: something\n{\"message_type\":\"summary\",\"snapshot_id\":\"ab\"}", "ab"},
		{"no summary", `{"message_type":"status"}`, ""},
		{"summary without an id", `{"message_type":"summary"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := backupSummary([]byte(tt.out))
			if tt.want == "" {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, id)
		})
	}
}

func TestPrintPeers(t *testing.T) {
	mib := int64(1 << 20)
	roles := func(weightsStored, otherStored int64) map[string]*tally {
		return map[string]*tally{
			"weights":   {raw: 100 * mib, stored: weightsStored},
			"optimizer": {raw: 200 * mib, stored: otherStored},
		}
	}
	results := []benchResult{
		{before: roles(80*mib, 160*mib), after: roles(40*mib, 80*mib)},
		{deltas: true, before: roles(50*mib, 150*mib), after: roles(25*mib, 75*mib)},
	}
	z := func(stored int64) zipTotals { return zipTotals{family: tally{raw: 100 * mib, stored: stored}} }
	tests := []struct {
		name string
		rs   *resticResult
		want []string // lines, fields split on runs of two or more spaces
	}{
		{"with restic", &resticResult{before: 150 * mib, after: 90 * mib}, []string{
			"|raw MiB|ckpt|ckpt --deltas|restic|ZipLLM est.",
			"all files, before retention|300.0|240.0 (0.800)|200.0 (0.667)|150.0 (0.500)|n/a",
			"all files, after retention|300.0|120.0 (0.400)|100.0 (0.333)|90.0 (0.300)|n/a",
			"weights, before retention|100.0|80.0 (0.800)|50.0 (0.500)|n/a|60.0 (0.600)",
			"weights, after retention|100.0|40.0 (0.400)|25.0 (0.250)|n/a|30.0 (0.300)",
		}},
		{"restic missing", nil, []string{
			"|raw MiB|ckpt|ckpt --deltas|restic|ZipLLM est.",
			"all files, before retention|300.0|240.0 (0.800)|200.0 (0.667)|skipped|n/a",
			"all files, after retention|300.0|120.0 (0.400)|100.0 (0.333)|skipped|n/a",
			"weights, before retention|100.0|80.0 (0.800)|50.0 (0.500)|skipped|60.0 (0.600)",
			"weights, after retention|100.0|40.0 (0.400)|25.0 (0.250)|skipped|30.0 (0.300)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			printPeers(&out, results, tt.rs, z(60*mib), z(30*mib))
			lines := strings.Split(out.String(), "\n")
			require.Greater(t, len(lines), 2+len(tt.want))
			assert.Equal(t, "peers: stored MiB (stored/raw)", lines[1])
			for i, want := range tt.want {
				fields := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(lines[2+i]), -1)
				if i == 0 {
					fields = append([]string{""}, fields...)
				}
				assert.Equal(t, want, strings.Join(fields, "|"))
			}
		})
	}
}

// TestBenchRestic runs restic itself: three checkpoint folders backed up,
// the one retention removed forgotten, the repository pruned.
func TestBenchRestic(t *testing.T) {
	bin, err := exec.LookPath("restic")
	if err != nil {
		t.Skipf("restic is not installed (%v): the restic column's end-to-end run is not tested", err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	var pushes []pushed
	for i, run := range []string{"pre", "ft", "ft"} {
		dir := t.TempDir()
		// Incompressible, distinct content: forgetting one folder frees
		// its 2 MiB.
		data := make([]byte, 2<<20)
		for k := range data {
			data[k] = byte(rng.Uint32())
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors"), data, 0o644))
		pushes = append(pushes, pushed{run: run, version: strconv.Itoa(50 * (i + 1)), dir: dir})
	}
	res, err := benchRestic(context.Background(), bin, t.TempDir(), pushes, map[string][]string{"ft": {"100"}})
	require.NoError(t, err)
	assert.Equal(t, 1, res.forgotten)
	assert.Greater(t, res.before, int64(3*2<<20))
	assert.Less(t, res.after, res.before-(2<<20)*9/10, "prune frees the forgotten folder's data")
	assert.Greater(t, res.after, int64(2*2<<20))
}
