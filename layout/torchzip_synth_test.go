package layout_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/layout"
)

// TestParseTorchZipSynthWriter: every torch.save file the synthetic
// checkpoint writer (internal/synth) produces parses, with the dtypes its
// pickles name.
func TestParseTorchZipSynthWriter(t *testing.T) {
	model := synth.TinyModel()
	model.Dtype = layout.DtypeF16 // so that scaler.pt is written too
	spec := synth.RunSpec{Model: model, Seed: 3, Steps: []int64{10}, WeightsOnly: true, ResumeState: true, OptimizerScale: 0.05}
	dir, err := synth.WriteCheckpoint(t.TempDir(), spec, 0, nil)
	require.NoError(t, err)

	wantDtypes := map[string]layout.TorchDtype{
		"optimizer.pt":      "float32",
		"rng_state.pth":     "uint8",
		"scheduler.pt":      "",
		"scaler.pt":         "",
		"training_args.bin": "",
	}
	for name, dtype := range wantDtypes {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			file, err := os.Open(path)
			require.NoError(t, err)
			defer file.Close()
			info, err := file.Stat()
			require.NoError(t, err)
			tz, err := layout.ParseTorchZip(file, info.Size())
			require.NoError(t, err)
			assert.Equal(t, "archive", tz.Prefix)
			assert.Equal(t, layout.ByteOrderLittle, tz.ByteOrder)
			assert.Equal(t, "3", tz.Version)
			if dtype == "" {
				assert.Empty(t, tz.Storages)
				return
			}
			require.NotEmpty(t, tz.Storages)
			var covered int64
			for _, s := range tz.Storages {
				assert.Equal(t, dtype, s.Dtype, s.Record)
				assert.Equal(t, dtype.Size(), s.ElemSize)
				assert.Zero(t, s.DataOffset%64, "%s is 64-byte aligned", s.Record)
				covered += s.Size
			}
			for _, m := range tz.Metadata {
				covered += m.Size
			}
			assert.Equal(t, info.Size(), covered, "storages and metadata tile the file")
		})
	}
}
