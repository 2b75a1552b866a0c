package synth

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/layout"
)

func TestWriteTorchStateDict(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pytorch_model.bin")
	tensors := []TorchTensor{
		{Name: "wte.weight", StorageType: "FloatStorage", Shape: []int64{4, 3}, Data: bytes.Repeat([]byte{1}, 48)},
		{Name: "ln.bias", StorageType: "BFloat16Storage", Shape: []int64{5}, Data: bytes.Repeat([]byte{2}, 10)},
		{Name: "position_ids", StorageType: "LongStorage", Shape: []int64{1, 2}, Data: bytes.Repeat([]byte{3}, 16)},
	}
	require.NoError(t, WriteTorchStateDict(path, tensors))

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	tz, err := layout.ParseTorchZip(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.Len(t, tz.Storages, 3)
	wantDtype := map[string]layout.TorchDtype{"0": "float32", "1": "bfloat16", "2": "int64"}
	for _, s := range tz.Storages {
		i := int(s.Key[0] - '0')
		assert.Equal(t, wantDtype[s.Key], s.Dtype, s.Key)
		assert.Equal(t, tensors[i].Data, data[s.DataOffset:s.DataOffset+s.Size], s.Key)
	}

	err = WriteTorchStateDict(path, []TorchTensor{{Name: "x", StorageType: "FloatStorage", Shape: []int64{3}, Data: make([]byte, 8)}})
	assert.ErrorContains(t, err, `tensor "x": 8 bytes`)
	err = WriteTorchStateDict(path, []TorchTensor{{Name: "x", StorageType: "NoStorage", Data: nil}})
	assert.ErrorContains(t, err, `storage type "NoStorage"`)
}
