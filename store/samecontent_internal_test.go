package store

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// cutAt describes content as a manifest file cut at the given offsets.
func cutAt(path string, content []byte, cuts ...int) manifest.File {
	f := manifest.File{Path: path, Size: int64(len(content)), Mode: 0o644, Digest: "chunks-sha256:" + path}
	bounds := append(append([]int{0}, cuts...), len(content))
	for i := 0; i+1 < len(bounds); i++ {
		part := content[bounds[i]:bounds[i+1]]
		f.Chunks = append(f.Chunks, manifest.Chunk{ID: object.ID(sha256.Sum256(part)), Offset: int64(bounds[i]), Size: int64(len(part))})
	}
	return f
}

// TestFolderHoldsWhateverTheChunking: a folder recorded by a ckpt that cut
// its files elsewhere holds the same checkpoint when its bytes hash to the
// recorded chunks; any other difference is a different checkpoint.
func TestFolderHoldsWhateverTheChunking(t *testing.T) {
	dir := t.TempDir()
	weights := make([]byte, 10000)
	for i := range weights {
		weights[i] = byte(i * 7)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pytorch_model.bin"), weights, 0o644))
	local := &manifest.Manifest{Files: []manifest.File{cutAt("pytorch_model.bin", weights, 64, 4096)}}
	local.Files[0].Digest = "chunks-sha256:new-cut"

	flipped := append([]byte(nil), weights...)
	flipped[5000] ^= 1
	cases := []struct {
		name     string
		recorded manifest.File
		same     bool
	}{
		{"same bytes, other cuts", cutAt("pytorch_model.bin", weights, 8192), true},
		{"same bytes, one chunk", cutAt("pytorch_model.bin", weights), true},
		{"one bit differs", cutAt("pytorch_model.bin", flipped, 8192), false},
		{"other path", cutAt("model.bin", weights, 8192), false},
		{"other size", cutAt("pytorch_model.bin", weights[:9999], 8192), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recorded := &manifest.Manifest{Files: []manifest.File{c.recorded}}
			same, err := folderHolds(context.Background(), dir, local, recorded)
			require.NoError(t, err)
			assert.Equal(t, c.same, same)
		})
	}
	t.Run("other mode", func(t *testing.T) {
		f := cutAt("pytorch_model.bin", weights, 8192)
		f.Mode = 0o600
		same, err := folderHolds(context.Background(), dir, local, &manifest.Manifest{Files: []manifest.File{f}})
		require.NoError(t, err)
		assert.False(t, same)
	})
}
