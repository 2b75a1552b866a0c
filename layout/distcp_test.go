package layout

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// distcpSidecar is what scripts/gen-torch-fixtures.py recorded about the
// .distcp fixture: every item's extent and, from torch.load, its storages.
type distcpSidecar struct {
	Size  int64 `json:"size"`
	Items []struct {
		FQN    string `json:"fqn"`
		Offset int64  `json:"offset"`
		Length int64  `json:"length"`
		torchSidecar
	} `json:"items"`
}

func readDistCPFixture(t *testing.T) ([]byte, distcpSidecar) {
	t.Helper()
	path := filepath.Join("..", "testdata", "torch", "__0_0.distcp")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	sidecarJSON, err := os.ReadFile(path + ".json")
	require.NoError(t, err)
	var sidecar distcpSidecar
	require.NoError(t, json.Unmarshal(sidecarJSON, &sidecar))
	require.NotEmpty(t, sidecar.Items)
	return data, sidecar
}

func TestParseDistCPFixture(t *testing.T) {
	data, want := readDistCPFixture(t)
	d, err := ParseDistCP(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.Len(t, d.Items, len(want.Items))
	next := int64(0)
	for i, item := range d.Items {
		w := want.Items[i]
		assert.Equal(t, next, item.Offset, "items tile the file")
		assert.Equal(t, w.Offset, item.Offset, w.FQN)
		assert.Equal(t, w.Length, item.Size, w.FQN)
		require.NotNil(t, item.Zip, w.FQN)
		assert.Equal(t, w.Prefix, item.Zip.Prefix)
		require.Len(t, item.Zip.Storages, len(w.Storages), w.FQN)
		for k, s := range item.Zip.Storages {
			assert.Equal(t, w.Storages[k].DataOffset, s.DataOffset, "%s storage %s", w.FQN, s.Key)
			assert.Equal(t, w.Storages[k].Size, s.Size)
			assert.Equal(t, TorchDtype(w.Storages[k].Dtype), s.Dtype)
		}
		checkTiling(t, item.Zip, item.Offset, item.End())
		next = item.End()
	}
	assert.Equal(t, int64(len(data)), next)
	assert.Len(t, d.Storages(), 3, "three tensors; the int item has no storage")
}

func TestParseDistCPMetadataFixture(t *testing.T) {
	_, want := readDistCPFixture(t)
	data, err := os.ReadFile(filepath.Join("..", "testdata", "torch", ".metadata"))
	require.NoError(t, err)
	meta, err := ParseDistCPMetadata(data)
	require.NoError(t, err)
	require.Len(t, meta.Items, len(want.Items))
	for i, item := range meta.Items {
		w := want.Items[i]
		assert.Equal(t, DistCPStorageInfo{FQN: w.FQN, Index: item.Index, RelativePath: "__0_0.distcp", Offset: w.Offset, Length: w.Length}, item)
		if w.FQN == "step" {
			assert.Equal(t, int64(-1), item.Index, "a bytes item's index is None")
		} else {
			assert.Equal(t, int64(0), item.Index)
		}
	}
}

// TestParseDistCPOpaquePrefix: items that are not torch.save archives
// (safetensors serialization, transforms) end the walk; the bytes before
// become one opaque item.
func TestParseDistCPOpaquePrefix(t *testing.T) {
	data, want := readDistCPFixture(t)
	prefix := bytes.Repeat([]byte("not a zip "), 10)
	file := append(bytes.Clone(prefix), data...)
	d, err := ParseDistCP(bytes.NewReader(file), int64(len(file)))
	require.NoError(t, err)
	require.Len(t, d.Items, len(want.Items)+1)
	assert.Equal(t, Extent{Offset: 0, Size: int64(len(prefix))}, d.Items[0].Extent)
	assert.Nil(t, d.Items[0].Zip)
	assert.Equal(t, int64(len(prefix))+want.Items[0].Length, d.Items[1].End())

	_, err = ParseDistCP(bytes.NewReader(prefix), int64(len(prefix)))
	require.ErrorIs(t, err, ErrNotDistCP)
}

func TestParseDistCPMetadataHostile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "torch", ".metadata"))
	require.NoError(t, err)
	metadataGlobal := []byte("\x8c\x08Metadata")
	tests := []struct {
		name, contains string
		pickle         []byte
	}{
		{"empty", "no STOP", nil},
		{"truncated", "", data[:len(data)/2]},
		{"not a Metadata object", "not a torch.distributed.checkpoint.metadata.Metadata", []byte("\x80\x02}q\x00.")},
		{"another class", "not a torch.distributed.checkpoint.metadata.Metadata", bytes.Replace(data, metadataGlobal, []byte("\x8c\x08Metadatb"), 1)},
		{"storage info of another class", "not a _StorageInfo", bytes.Replace(data, []byte("_StorageInfo"), []byte("_StorageInfX"), 1)},
		{"index of another class", "not a MetadataIndex", bytes.Replace(data, []byte("MetadataIndex"), []byte("MetadataIndeX"), 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta, err := ParseDistCPMetadata(tt.pickle)
			require.Error(t, err)
			require.Nil(t, meta)
			assert.Contains(t, err.Error(), tt.contains)
		})
	}
}

func FuzzParseDistCP(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "torch", "__0_0.distcp"))
	require.NoError(f, err)
	f.Add(data)
	f.Add(data[431:])
	f.Add(append([]byte("junk"), data...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d *DistCP
		var err error
		limit := uint64(allocPerInputByte*len(data) + allocConstant)
		allocated := heapAllocated(limit, func() { d, err = ParseDistCP(bytes.NewReader(data), int64(len(data))) })
		require.LessOrEqual(t, allocated, limit,
			"allocated %d bytes for %d bytes of input", allocated, len(data))
		if err != nil {
			require.Nil(t, d)
			return
		}
		next := int64(0)
		for i, item := range d.Items {
			require.Equal(t, next, item.Offset)
			require.Positive(t, item.Size)
			if item.Zip == nil {
				require.Zero(t, i, "only the first item can be opaque")
			} else {
				checkTiling(t, item.Zip, item.Offset, item.End())
			}
			next = item.End()
		}
		require.Equal(t, int64(len(data)), next)
	})
}

func FuzzParseDistCPMetadata(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "torch", ".metadata"))
	require.NoError(f, err)
	f.Add(data)
	for _, name := range []string{"state_dict.pt", "optimizer.pt"} {
		tz, err := parseTorchFile(f, filepath.Join("..", "testdata", "torch", name))
		require.NoError(f, err)
		file, err := os.ReadFile(filepath.Join("..", "testdata", "torch", name))
		require.NoError(f, err)
		f.Add(file[tz.Pickle.DataOffset : tz.Pickle.DataOffset+tz.Pickle.Size])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var meta *DistCPMetadata
		var err error
		limit := uint64(allocPerInputByte*len(data) + allocConstant)
		allocated := heapAllocated(limit, func() { meta, err = ParseDistCPMetadata(data) })
		require.LessOrEqual(t, allocated, limit,
			"allocated %d bytes for %d bytes of input", allocated, len(data))
		if err != nil {
			require.Nil(t, meta)
			return
		}
		for _, item := range meta.Items {
			require.GreaterOrEqual(t, item.Offset, int64(0))
			require.GreaterOrEqual(t, item.Length, int64(0))
		}
	})
}
