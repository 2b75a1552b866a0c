package store_test

import (
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// normalF32 returns n float32 values drawn like trained weights (normal,
// sd 0.02), little-endian.
func normalF32(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(r.NormFloat64()*0.02)))
	}
	return b
}

// f32Tensor is a 1-D FloatStorage tensor of n values from seed.
func f32Tensor(name string, seed uint64, n int) synth.TorchTensor {
	return synth.TorchTensor{Name: name, StorageType: "FloatStorage", Shape: []int64{int64(n)}, Data: normalF32(seed, n)}
}

// torchFolder writes a checkpoint folder whose weights are
// pytorch_model.bin as torch.save writes it.
func torchFolder(t *testing.T, tensors []synth.TorchTensor) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"gpt2"}`), 0o644))
	require.NoError(t, synth.WriteTorchStateDict(filepath.Join(dir, "pytorch_model.bin"), tensors))
	age(t, dir)
	return dir
}

// blobBytes sums the stored size of the registry's blobs.
func blobBytes(t *testing.T, e *env) int64 {
	t.Helper()
	var n int64
	require.NoError(t, e.b.List(e.ctx, "blobs/", func(oi backend.ObjectInfo) error {
		n += oi.Size
		return nil
	}))
	return n
}

// frozenModel is a state dict with a frozen backbone (seed 1) and trained
// tensors (seed trained): a large storage cut in pieces, mid-size storages,
// tiny ones next to trained and frozen neighbours.
func frozenModel(trained uint64) []synth.TorchTensor {
	return []synth.TorchTensor{
		f32Tensor("wte.weight", 1, 9<<18), // 9 MiB: two chunks
		f32Tensor("h.0.attn.weight", 2, 150<<8),
		f32Tensor("h.0.ln.weight", 3, 256),
		f32Tensor("h.0.ln.bias", 4, 256),
		f32Tensor("h.1.attn.weight", trained, 150<<8),
		f32Tensor("h.1.ln.weight", trained+1, 256),
		f32Tensor("h.1.ln.bias", trained+2, 256),
		f32Tensor("h.2.mlp.weight", 5, 300<<8),
		f32Tensor("ln_f.weight", 6, 256),
	}
}

// TestTorchZipFrozenStoragesStoredOnce: two torch.save checkpoints that
// differ only in their trained tensors share every chunk of the frozen
// storages; the second push stores little more than the trained
// storages, plane-coded.
func TestTorchZipFrozenStoragesStoredOnce(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nb)
			first, second := torchFolder(t, frozenModel(100)), torchFolder(t, frozenModel(200))
			e.push(first, "frozen", store.PushOptions{Version: "1"})
			before := blobBytes(t, e)
			e.push(second, "frozen", store.PushOptions{Version: "2"})
			added := blobBytes(t, e) - before

			var coded int64
			for _, tn := range frozenModel(200) {
				if strings.HasPrefix(tn.Name, "h.1.") {
					coded += int64(len(object.Encode(nil, tn.Data, object.EncodeHint{ElemSize: 4})))
				}
			}
			t.Logf("new blob bytes %d, trained storages coded %d", added, coded)
			assert.LessOrEqual(t, float64(added), 1.02*float64(coded), "frozen storages stored again")

			// The trained storages are plane-coded like safetensors weights.
			m := latestManifest(t, e, "frozen", "2")
			f := m.File("pytorch_model.bin")
			require.NotNil(t, f)
			require.NotNil(t, f.Tensors)
			assert.Equal(t, manifest.Version2, m.Version)
			var trained manifest.Tensor
			for _, tn := range f.Tensors.Tensors {
				if tn.End-tn.Begin == 150<<10 && tn.Begin > 9<<20 && tn.Begin < 10<<20 {
					trained = tn
				}
			}
			require.NotZero(t, trained.End, "no tensor table entry for the trained storage")
			assert.Equal(t, "float32", trained.Dtype)
			assert.Equal(t, manifest.FormatTorchZip, f.Tensors.Format)
			for _, c := range f.Chunks {
				if c.Offset == trained.Begin {
					assert.Equal(t, trained.End-trained.Begin, c.Size)
					assert.Equal(t, object.CodecPlanes, blobCodec(t, e, c.ID))
				}
			}
		})
	}
}

// latestManifest is the manifest of NAME@VERSION.
func latestManifest(t *testing.T, e *env, name, version string) *manifest.Manifest {
	t.Helper()
	rec, err := e.r.Resolve(e.ctx, name, version)
	require.NoError(t, err)
	m, err := e.r.Manifest(e.ctx, rec.Manifest)
	require.NoError(t, err)
	return m
}

// blobCodec reads the codec byte of a stored blob's envelope.
func blobCodec(t *testing.T, e *env, id object.ID) object.Codec {
	t.Helper()
	rc, err := e.b.Get(e.ctx, object.BlobKey(id), 0, object.HeaderSize)
	require.NoError(t, err)
	defer func() { _ = rc.Close() }() // read-only
	h, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.Len(t, h, object.HeaderSize)
	return object.Codec(h[5])
}

// ggufModel is a GGUF file with general.alignment 64: an F32 tensor of
// 2.5 chunks, tiny ones and a Q8_0 one.
func ggufModel(t *testing.T) []byte {
	t.Helper()
	q8 := make([]byte, 34*64) // 64 blocks of 32 values
	r := rand.New(rand.NewPCG(3, 3))
	for i := range q8 {
		q8[i] = byte(r.Uint32())
	}
	data, err := synth.EncodeGGUF(synth.GGUFFile{
		Alignment: 64,
		Metadata:  []layout.GGUFKV{{Key: "general.architecture", Type: layout.GGUFString, Value: "llama"}},
		Tensors: []synth.GGUFTensor{
			{Name: "token_embd.weight", Type: layout.GGMLF32, Dims: []uint64{256, 5 << 12}, Data: normalF32(11, 5<<20)},
			{Name: "blk.0.attn_norm.weight", Type: layout.GGMLF32, Dims: []uint64{256}, Data: normalF32(12, 256)},
			{Name: "blk.0.attn_q.weight", Type: layout.GGMLQ8_0, Dims: []uint64{2048}, Data: q8},
			{Name: "blk.0.ffn_up.weight", Type: layout.GGMLF32, Dims: []uint64{256, 300}, Data: normalF32(13, 256*300)},
			{Name: "output_norm.weight", Type: layout.GGMLF32, Dims: []uint64{256}, Data: normalF32(14, 256)},
		},
	})
	require.NoError(t, err)
	return data
}

// TestTorchZipAndGGUFRoundTrip: a folder of torch.save weights and
// optimizer state and a GGUF export is cut at its tensors, recorded with
// tensor tables (manifest version 2), and pulled back byte for byte.
func TestTorchZipAndGGUFRoundTrip(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nb)
			dir := torchFolder(t, frozenModel(100))
			require.NoError(t, synth.WriteTorchStateDict(filepath.Join(dir, "optimizer.pt"), []synth.TorchTensor{
				f32Tensor("exp_avg", 21, 1<<20), f32Tensor("exp_avg_sq", 22, 300<<8), f32Tensor("step", 23, 1),
			}))
			gguf := ggufModel(t)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "model.gguf"), gguf, 0o644))
			age(t, dir)
			e.push(dir, "rt", store.PushOptions{Version: "1"})

			out := filepath.Join(t.TempDir(), "out")
			_, err := e.withoutIndex().Pull(e.ctx, "rt", "1", out, store.PullOptions{Full: true})
			require.NoError(t, err)
			assert.Equal(t, testutil.ReadTree(t, dir), testutil.ReadTree(t, out))

			m := latestManifest(t, e, "rt", "1")
			assert.Equal(t, manifest.Version2, m.Version)
			g := m.File("model.gguf")
			require.NotNil(t, g)
			require.NotNil(t, g.Tensors)
			assert.Equal(t, manifest.FormatGGUF, g.Tensors.Format)
			parsed, err := layout.ParseGGUF(strings.NewReader(string(gguf)), int64(len(gguf)))
			require.NoError(t, err)
			starts := map[int64]bool{}
			for _, c := range g.Chunks {
				starts[c.Offset] = true
			}
			byName := map[string]manifest.Tensor{}
			for _, tn := range g.Tensors.Tensors {
				byName[tn.Name] = tn
			}
			for _, pt := range parsed.Tensors {
				tn, ok := byName[pt.Name]
				require.True(t, ok, pt.Name)
				assert.Equal(t, pt.Offset, tn.Begin, pt.Name)
				assert.Equal(t, pt.Offset+pt.Size, tn.End, pt.Name)
				assert.Equal(t, pt.Type.String(), tn.Dtype, pt.Name)
				if pt.Size <= object.MaxChunkSize {
					assert.Equal(t, "sha256:"+object.Hash(gguf[tn.Begin:tn.End]).String(), tn.Digest, pt.Name)
				} else {
					assert.True(t, strings.HasPrefix(tn.Digest, "chunks-sha256:"), tn.Digest)
				}
				if pt.Size >= 64<<10 {
					assert.True(t, starts[pt.Offset], "%s does not start a chunk", pt.Name)
				}
			}
			assert.Equal(t, []int64{256, 5 << 12}, byName["token_embd.weight"].Shape)
			for _, c := range g.Chunks {
				if c.Offset == byName["token_embd.weight"].Begin {
					assert.Equal(t, object.CodecPlanes, blobCodec(t, e, c.ID))
				}
			}

			// optimizer.pt is resume state: cut at its storages, no table.
			opt := m.File("optimizer.pt")
			require.NotNil(t, opt)
			assert.Nil(t, opt.Tensors)
			tz, err := layout.ParseTorchZip(strings.NewReader(mustRead(t, filepath.Join(dir, "optimizer.pt"))), opt.Size)
			require.NoError(t, err)
			optStarts := map[int64]bool{}
			for _, c := range opt.Chunks {
				optStarts[c.Offset] = true
			}
			for _, s := range tz.Storages {
				if s.Size >= 64<<10 {
					assert.True(t, optStarts[s.DataOffset], "optimizer storage %s does not start a chunk", s.Key)
				}
			}
		})
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}

// TestMalformedTorchZipAndGGUFStoredExactly: weights named like torch.save
// or GGUF files that do not parse (truncated, a broken directory, a hostile
// tensor count) are stored as opaque bytes at fixed cuts, without an
// error, and pulled back byte for byte.
func TestMalformedTorchZipAndGGUFStoredExactly(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nb)
			dir := torchFolder(t, frozenModel(100))
			bin := filepath.Join(dir, "pytorch_model.bin")
			data, err := os.ReadFile(bin)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(bin, data[:len(data)-7], 0o644)) // no end record
			broken := append([]byte(nil), data...)
			broken[len(broken)-5] ^= 0xff // the directory's offset
			require.NoError(t, os.WriteFile(filepath.Join(dir, "adapter_model.bin"), broken, 0o644))
			gguf := ggufModel(t)
			gguf[15] ^= 0x7f // tensor count: far more than the file holds
			require.NoError(t, os.WriteFile(filepath.Join(dir, "model.gguf"), gguf, 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "optimizer.pt"), []byte("PK\x03\x04 not really a zip"), 0o644))
			age(t, dir)
			e.push(dir, "bad", store.PushOptions{Version: "1"})

			out := filepath.Join(t.TempDir(), "out")
			_, err = e.withoutIndex().Pull(e.ctx, "bad", "1", out, store.PullOptions{Full: true})
			require.NoError(t, err)
			assert.Equal(t, testutil.ReadTree(t, dir), testutil.ReadTree(t, out))

			m := latestManifest(t, e, "bad", "1")
			assert.Equal(t, manifest.Version1, m.Version, "no file has a tensor table")
			for _, f := range m.Files {
				assert.Nil(t, f.Tensors, f.Path)
				for _, c := range f.Chunks {
					assert.Zero(t, c.Offset%object.MaxChunkSize, "%s: fixed cuts", f.Path)
				}
			}
		})
	}
}

// TestTorchZipSharesTensorsWithSafetensors: the same weights saved as
// model.safetensors and as pytorch_model.bin share the chunks of every
// tensor of at least 1 MiB: both formats cut them at exactly their bytes.
func TestTorchZipSharesTensorsWithSafetensors(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nb)
			tensors := frozenModel(100)
			st := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(st, "config.json"), []byte(`{"model_type":"gpt2"}`), 0o644))
			infos := make([]layout.TensorInfo, len(tensors))
			var data []byte
			for i, tn := range tensors {
				infos[i] = layout.TensorInfo{Name: tn.Name, Dtype: layout.DtypeF32, Shape: tn.Shape}
				data = append(data, tn.Data...)
			}
			_, err := layout.PackTensors(infos)
			require.NoError(t, err)
			hdr, err := layout.EncodeSafetensorsHeader(infos, nil)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(st, "model.safetensors"), append(hdr, data...), 0o644))
			age(t, st)
			e.push(st, "st", store.PushOptions{Version: "1"})
			res := e.push(torchFolder(t, tensors), "bin", store.PushOptions{Version: "1"})

			var large int64
			for _, tn := range tensors {
				if len(tn.Data) >= 1<<20 {
					large += int64(len(tn.Data))
				}
			}
			require.Positive(t, large)
			assert.LessOrEqual(t, res.NewRaw, res.Logical-large, "large tensors stored again in the torch.save file")
		})
	}
}
