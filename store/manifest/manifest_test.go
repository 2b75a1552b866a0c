package manifest

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// weightsJSON is a manifest of one file entry of a 100-byte weights file in one
// chunk, with the given JSON after its chunks.
func weightsJSON(version int, extra string) string {
	return `{"version":` + itoa(version) + `,"files":[{"path":"pytorch_model.bin","size":100,"mode":420,"role":"weights","digest":"x",` +
		`"chunks":[{"id":"` + strings.Repeat("ab", 32) + `","offset":0,"size":100}]` + extra + `}]}`
}

func itoa(v int) string { return strconv.Itoa(v) }

const torchTable = `,"tensors":{"format":"torch-zip","tensors":[{"name":"data/0","dtype":"float32","shape":null,"begin":64,"end":96,"digest":"sha256:x"}]}`

func TestDecodeVersions(t *testing.T) {
	cases := []struct {
		name    string
		json    string
		wantErr string
		version bool // the error is ErrVersion
	}{
		{"version 1 without tables (every manifest before tables)", weightsJSON(1, ""), "", false},
		{"version 1 with safetensors", weightsJSON(1, `,"safetensors":{"data_offset":8,"tensors":[{"name":"t","dtype":"F32","shape":[2],"begin":0,"end":8,"digest":"x"}]}`), "", false},
		{"version 2 with a torch table", weightsJSON(2, torchTable), "", false},
		{"version 2 with a gguf table", weightsJSON(2, `,"tensors":{"format":"gguf","big_endian":true,"tensors":[{"name":"blk.0.attn_q.weight","dtype":"Q4_K","shape":[256,2],"begin":32,"end":100,"digest":"x"}]}`), "", false},
		{"version 2 without tables", weightsJSON(2, ""), "", false},
		{"version 1 with a table", weightsJSON(1, torchTable), "a tensor table needs manifest version 2", false},
		{"version 0", weightsJSON(0, ""), "manifest version 0", true},
		{"a newer version", weightsJSON(3, ""), "manifest version 3 is newer than this ckpt reads (1 to 2)", true},
		{"a newer version with fields this ckpt does not know", weightsJSON(3, `,"deltas":[1]`), "manifest version 3 is newer", true},
		{"an unknown field in a known version", weightsJSON(2, `,"deltas":[1]`), `unknown field "deltas"`, false},
		{"a table without a format", weightsJSON(2, `,"tensors":{"tensors":[]}`), "tensor table without a format", false},
		{"a tensor past the end", weightsJSON(2, `,"tensors":{"format":"gguf","tensors":[{"name":"t","dtype":"F32","shape":[1],"begin":96,"end":104,"digest":"x"}]}`), `tensor "t" [96, 104) outside the file`, false},
		{"a tensor ending before it begins", weightsJSON(2, `,"tensors":{"format":"gguf","tensors":[{"name":"t","dtype":"F32","shape":[1],"begin":8,"end":4,"digest":"x"}]}`), "outside the file", false},
		{"a negative begin", weightsJSON(2, `,"tensors":{"format":"gguf","tensors":[{"name":"t","dtype":"F32","shape":[1],"begin":-4,"end":0,"digest":"x"}]}`), "outside the file", false},
		{"both tables", weightsJSON(2, torchTable+`,"safetensors":{"data_offset":8,"tensors":[]}`), "both a safetensors header and a tensor table", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Decode([]byte(c.json))
			if c.wantErr == "" {
				require.NoError(t, err)
				require.NotNil(t, m)
				return
			}
			require.ErrorContains(t, err, c.wantErr)
			assert.Equal(t, c.version, errorIsVersion(err))
		})
	}
}

func TestMinVersionAndEncode(t *testing.T) {
	m, err := Decode([]byte(weightsJSON(2, "")))
	require.NoError(t, err)
	assert.Equal(t, Version1, m.MinVersion(), "no table: version 1, which older readers read")
	m.Version = m.MinVersion()
	data, _, err := m.Encode()
	require.NoError(t, err)
	assert.NotContains(t, string(data), `"tensors"`, "a file without a table writes no tensors key")
	assert.Equal(t, weightsJSON(1, ""), string(data))

	m.Files[0].Tensors = &TensorTable{Format: FormatTorchZip, Tensors: []Tensor{{Name: "data/0", Dtype: "float32", Begin: 64, End: 96, Digest: "sha256:x"}}}
	assert.Equal(t, Version2, m.MinVersion())
	m.Version = m.MinVersion()
	data, id, err := m.Encode()
	require.NoError(t, err)
	assert.Equal(t, weightsJSON(2, torchTable), string(data))
	back, err := Decode(data)
	require.NoError(t, err)
	assert.Equal(t, m, back)
	_, id2, err := back.Encode()
	require.NoError(t, err)
	assert.Equal(t, id, id2)
}

func errorIsVersion(err error) bool { return errors.Is(err, ErrVersion) }
