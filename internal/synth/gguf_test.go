package synth

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/layout"
)

// TestEncodeGGUFLayout checks the bytes of a small file against the GGUF
// layout written out by hand: header, one metadata pair, one tensor info,
// padding to 32, the tensor's data.
func TestEncodeGGUFLayout(t *testing.T) {
	data := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	file, err := EncodeGGUF(GGUFFile{
		Metadata: []layout.GGUFKV{{Key: "k", Type: layout.GGUFUint16, Value: uint16(0x0102)}},
		Tensors:  []GGUFTensor{{Name: "t", Type: layout.GGMLF16, Dims: []uint64{4}, Data: data}},
	})
	require.NoError(t, err)
	le := binary.LittleEndian
	want := []byte("GGUF")
	want = le.AppendUint32(want, 3)
	want = le.AppendUint64(want, 1) // tensors
	want = le.AppendUint64(want, 1) // metadata
	want = append(le.AppendUint64(want, 1), 'k')
	want = le.AppendUint32(want, uint32(layout.GGUFUint16))
	want = le.AppendUint16(want, 0x0102)
	want = append(le.AppendUint64(want, 1), 't')
	want = le.AppendUint32(want, 1) // n_dims
	want = le.AppendUint64(want, 4)
	want = le.AppendUint32(want, uint32(layout.GGMLF16))
	want = le.AppendUint64(want, 0) // offset
	want = append(want, make([]byte, 32-len(want)%32)...)
	want = append(want, data...)
	want = append(want, make([]byte, 32-len(data))...)
	assert.Equal(t, want, file)
}

func TestEncodeGGUFRejects(t *testing.T) {
	tests := []struct {
		name string
		file GGUFFile
		err  string
	}{
		{"data of the wrong size", GGUFFile{Tensors: []GGUFTensor{{Name: "t", Type: layout.GGMLF32, Dims: []uint64{4}, Data: make([]byte, 15)}}}, "call for 16"},
		{"unknown type", GGUFFile{Tensors: []GGUFTensor{{Name: "t", Type: 4, Dims: []uint64{32}}}}, "unknown ggml type"},
		{"value of the wrong Go type", GGUFFile{Metadata: []layout.GGUFKV{{Key: "k", Type: layout.GGUFUint32, Value: "x"}}}, "does not fit"},
		{"array of the wrong Go type", GGUFFile{Metadata: []layout.GGUFKV{{Key: "k", Type: layout.GGUFArray, ArrayType: layout.GGUFUint8, Value: 3}}}, "array value"},
		{"unknown value type", GGUFFile{Metadata: []layout.GGUFKV{{Key: "k", Type: 99, Value: 1}}}, "unknown value type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := EncodeGGUF(tt.file)
			require.ErrorContains(t, err, tt.err)
		})
	}
	// Big-endian numbers.
	file, err := EncodeGGUF(GGUFFile{BigEndian: true})
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(file, []byte("GGUF\x00\x00\x00\x03")))
}
