package testutil

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/layout"
)

// DriftingRun writes n checkpoints of one fine-tune: a 2 MiB fp32 tensor, a
// 2 MiB bf16 tensor and a small one, each step changing an eighth of the
// elements a little. It returns their folders.
func DriftingRun(t *testing.T, seed uint64, n int) []string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	w := make([]float32, 1<<19)
	b := make([]float32, 1<<20)
	ln := make([]float32, 256)
	for _, s := range [][]float32{w, b, ln} {
		for i := range s {
			s[i] = float32(r.NormFloat64() * 0.02)
		}
	}
	var dirs []string
	root := t.TempDir()
	for step := range n {
		if step > 0 {
			for _, s := range [][]float32{w, b, ln} {
				for i := 0; i < len(s); i += 8 {
					s[i] += float32(r.NormFloat64() * 1e-4)
				}
			}
		}
		tensors := []layout.TensorInfo{
			{Name: "b", Dtype: "BF16", Shape: []int64{1 << 20}, Begin: 0, End: 2 << 20},
			{Name: "ln", Dtype: "F32", Shape: []int64{256}, Begin: 2 << 20, End: 2<<20 + 1024},
			{Name: "w", Dtype: "F32", Shape: []int64{1 << 19}, Begin: 2<<20 + 1024, End: 4<<20 + 1024},
		}
		hdr, err := layout.EncodeSafetensorsHeader(tensors, nil)
		require.NoError(t, err)
		data := hdr
		for _, v := range b {
			data = binary.LittleEndian.AppendUint16(data, uint16(math.Float32bits(v)>>16))
		}
		for _, s := range [][]float32{ln, w} {
			for _, v := range s {
				data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
			}
		}
		dir := filepath.Join(root, "checkpoint-"+strconv.Itoa(100*(step+1)))
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors"), data, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"gpt2"}`), 0o644))
		dirs = append(dirs, dir)
	}
	return dirs
}
