package manifest

import (
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/object"
)

// allocs returns the bytes the Go heap allocated while f ran (every
// goroutine's; fuzz targets run one input at a time).
func allocs(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzDecodeManifest: an accepted manifest has only safe paths, chunks
// that cover each file exactly and tensor tables inside their files, and decoding allocates at most a bounded
// multiple of the input (JSON numbers in arrays, such as shapes, expand up
// to 8 times, and slices grow by doubling).
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"version":1,"files":[{"path":"config.json","size":3,"mode":420,"role":"config","digest":"x","chunks":[{"id":"` + strings.Repeat("ab", 32) + `","offset":0,"size":3}]}]}`))
	f.Add([]byte(`{"version":1,"files":[{"path":"../x","size":0,"mode":420,"role":"config","digest":"x","chunks":[]}]}`))
	f.Add([]byte(`{"version":1,"files":[]}`))
	f.Add([]byte(`{"version":1,"files":[{"path":"a","size":0,"mode":420,"role":"weights","digest":"x","chunks":[],"safetensors":{"data_offset":8,"tensors":[{"name":"t","dtype":"F32","shape":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"begin":0,"end":0,"digest":"x"}]}}]}`))
	f.Add([]byte(`{"version":2,"files":[{"path":"a.gguf","size":8,"mode":420,"role":"other","digest":"x","chunks":[{"id":"` + strings.Repeat("ab", 32) + `","offset":0,"size":8}],"tensors":{"format":"gguf","tensors":[{"name":"t","dtype":"F32","shape":[1],"begin":4,"end":8,"digest":"x"}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m *Manifest
		var err error
		n := allocs(func() { m, err = Decode(data) })
		require.LessOrEqual(t, n, 32*uint64(len(data))+64<<10, "allocated %d bytes for %d of JSON", n, len(data))
		if err != nil {
			return
		}
		for _, file := range m.Files {
			require.NoError(t, CheckRelPath(file.Path))
			var off int64
			for _, c := range file.Chunks {
				require.Equal(t, off, c.Offset)
				require.LessOrEqual(t, c.Size, int64(object.MaxBlobContent))
				off += c.Size
			}
			require.Equal(t, file.Size, off)
			if file.Tensors != nil {
				require.GreaterOrEqual(t, m.Version, Version2)
				for _, tn := range file.Tensors.Tensors {
					require.True(t, 0 <= tn.Begin && tn.Begin <= tn.End && tn.End <= file.Size, "tensor %q [%d, %d) in a file of %d", tn.Name, tn.Begin, tn.End, file.Size)
				}
			}
		}
	})
}
