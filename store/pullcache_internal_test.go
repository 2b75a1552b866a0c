package store

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// A location in the index whose size is not the chunk's (a damaged or
// hostile index) is a miss: the pull cache reads nothing and allocates
// nothing for it, and the chunk is fetched from the next source.
func TestPullCacheRefusesLocationOfAnotherSize(t *testing.T) {
	dir := t.TempDir()
	ix, err := OpenIndex(filepath.Join(dir, "index.db"))
	require.NoError(t, err)
	t.Cleanup(func() { ix.Close() })
	c, err := OpenContentCache(filepath.Join(dir, "content"), DefaultCacheSize)
	require.NoError(t, err)
	pc := cacheSource{c, ix}

	content := []byte("a chunk an earlier pull wrote")
	id := object.Hash(content)
	f := SourcedFile{File: manifest.File{Path: "config.json", Size: int64(len(content)), Digest: manifest.SHA256Digest(id),
		Chunks: []manifest.Chunk{{ID: id, Size: int64(len(content))}}}}
	root := filepath.Join(dir, "pull")
	require.NoError(t, os.MkdirAll(root, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "config.json"), content, 0o644))
	h, err := os.Open(filepath.Join(root, "config.json"))
	require.NoError(t, err)
	defer h.Close()
	require.NoError(t, c.feed(context.Background(), h, filepath.Join(root, "config.json"), &f))
	c.remember(ix, []SourcedFile{f})

	ctx := context.Background()
	got, err := pc.readBlob(ctx, id, int64(len(content)), nil)
	require.NoError(t, err, "the intact location serves")
	assert.Equal(t, content, got)

	// The same location, but 256 MiB long.
	require.NoError(t, ix.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketChunks).Put(id[:], encodeLocation(fileKey(&f.File), 0, 256<<20))
	}))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = pc.readBlob(ctx, id, int64(len(content)), nil)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, errNotHeld)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "nothing allocated for the damaged location")

	// Through the registry's chain of sources, the next one serves it.
	next := blobSourceFunc(func(context.Context, object.ID, int64, []byte) ([]byte, error) { return content, nil })
	got, err = firstHolder{pc, next}.readBlob(ctx, id, int64(len(content)), nil)
	require.NoError(t, err)
	assert.Equal(t, content, got)
}

type blobSourceFunc func(ctx context.Context, id object.ID, size int64, dst []byte) ([]byte, error)

func (f blobSourceFunc) readBlob(ctx context.Context, id object.ID, size int64, dst []byte) ([]byte, error) {
	return f(ctx, id, size, dst)
}
