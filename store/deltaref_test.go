package store_test

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/object"
)

// fullGetBackend counts the whole-object reads of each blob (a reference
// read from the registry). Reads of a few bytes (a blob's header) are not
// counted.
type fullGetBackend struct {
	backend.Backend
	mu   sync.Mutex
	full map[string]int
}

func (c *fullGetBackend) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if strings.HasPrefix(key, "blobs/") && (n < 0 || n > 64) {
		c.mu.Lock()
		if c.full == nil {
			c.full = map[string]int{}
		}
		c.full[key]++
		c.mu.Unlock()
	}
	return c.Backend.Get(ctx, key, off, n)
}

func (c *fullGetBackend) fullReads(id object.ID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.full[object.BlobKey(id)]
}

func (c *fullGetBackend) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.full = nil
}

// deltaRefsOf returns the references the delta edges name, split into the
// one holding the last byte of dir's model.safetensors (the end of tensor
// w) and the others.
func deltaRefsOf(t *testing.T, e *env, first *store.PushResult) (last object.ID, others []object.ID) {
	t.Helper()
	m, err := e.r.Manifest(e.ctx, first.Record.Manifest)
	require.NoError(t, err)
	edgeRefs := map[string]bool{}
	for _, k := range listKeys(t, e.b, "deltas/") {
		edgeRefs[strings.Split(k, "/")[2]] = true
	}
	require.Len(t, edgeRefs, 2, "DriftingRun's two big tensors are deltas")
	for _, f := range m.Files {
		if f.Path != "model.safetensors" {
			continue
		}
		for _, c := range f.Chunks {
			switch {
			case !edgeRefs[c.ID.String()]:
			case c.Offset+c.Size == f.Size:
				last = c.ID
			default:
				others = append(others, c.ID)
			}
		}
	}
	require.Len(t, others, 1)
	require.False(t, last.IsZero(), "no reference holds the end of the file")
	return last, others
}

// flipLastByte flips a bit of the last byte of the file at p in place.
func flipLastByte(t *testing.T, p string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = f.ReadAt(b, fi.Size()-1)
	require.NoError(t, err)
	b[0] ^= 0x10
	_, err = f.WriteAt(b, fi.Size()-1)
	require.NoError(t, err)
}

func TestDeltaReferenceFromLocalCaches(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			t.Run("PushReadsPushedFolder", func(t *testing.T) { testDeltaRefPushedFolder(t, nb, false) })
			t.Run("PushStaleFolderFallsBack", func(t *testing.T) { testDeltaRefPushedFolder(t, nb, true) })
			t.Run("PullReadsContentCache", func(t *testing.T) { testDeltaRefContentCache(t, nb, false) })
			t.Run("PullStaleCacheFallsBack", func(t *testing.T) { testDeltaRefContentCache(t, nb, true) })
		})
	}
}

// testDeltaRefPushedFolder: the push of the next checkpoint reads its
// references from the folder of the previous push, which the stat cache
// knows, instead of downloading them. With stale set, the file's last byte
// is flipped and the stat cache made to vouch for it anyway: that
// reference must come from the registry, the delta stay exact.
func testDeltaRefPushedFolder(t *testing.T, nb newBackendFunc, stale bool) {
	e := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 31, 2)
	for _, d := range dirs {
		age(t, d)
	}
	first := e.push(dirs[0], "run", store.PushOptions{})
	if stale {
		p := filepath.Join(dirs[0], "model.safetensors")
		flipLastByte(t, p)
		require.NoError(t, store.RestampStat(e.ix, p))
	}
	counting := &fullGetBackend{Backend: e.b}
	r, err := store.Open(e.ctx, counting, store.Options{Index: e.ix, Workers: 4, Deltas: true})
	require.NoError(t, err)
	res, err := r.Push(e.ctx, dirs[1], store.PushOptions{Name: "run"})
	require.NoError(t, err)
	assert.Equal(t, 2, res.DeltaBlobs)
	last, others := deltaRefsOf(t, e, first)
	for _, id := range others {
		assert.Zero(t, counting.fullReads(id), "reference %s was downloaded, not read from the pushed folder", id)
	}
	if stale {
		assert.Equal(t, 1, counting.fullReads(last), "the damaged local copy of %s must be replaced by the registry's", last)
	} else {
		assert.Zero(t, counting.fullReads(last), "reference %s was downloaded, not read from the pushed folder", last)
	}
	other := e.withoutIndex()
	assert.Equal(t, testutil.ReadTree(t, dirs[1]), pullTree(t, other, "run", "200"))
	verifyAll(t, other)
}

// testDeltaRefContentCache: a machine that pulled the previous checkpoint
// decodes the newest one's deltas against the content cache's copies of
// their references, and pushes the next checkpoint against them too. With
// stale set, the cached copy is damaged (last byte flipped): that
// reference comes from the registry and the pull is exact.
func testDeltaRefContentCache(t *testing.T, nb newBackendFunc, stale bool) {
	e := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 32, 3)
	first := e.push(dirs[0], "run", store.PushOptions{})
	e.push(dirs[1], "run", store.PushOptions{})
	last, others := deltaRefsOf(t, e, first)

	// Another machine: its own index and content cache.
	ix, err := store.OpenIndex(filepath.Join(t.TempDir(), "index.db"))
	require.NoError(t, err)
	t.Cleanup(func() { ix.Close() })
	cache, err := store.OpenContentCache(filepath.Join(t.TempDir(), "content"), store.DefaultCacheSize)
	require.NoError(t, err)
	counting := &fullGetBackend{Backend: e.b}
	r, err := store.Open(e.ctx, counting, store.Options{Index: ix, Cache: cache, Workers: 4, Deltas: true})
	require.NoError(t, err)
	_, err = r.Pull(e.ctx, "run", "100", filepath.Join(t.TempDir(), "v100"), store.PullOptions{})
	require.NoError(t, err)
	if stale {
		entries := 0
		require.NoError(t, filepath.WalkDir(cache.Dir(), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.Contains(p, string(filepath.Separator)+"seals"+string(filepath.Separator)) {
				return err
			}
			if fi, err := d.Info(); err == nil && fi.Size() > 4<<20 {
				flipLastByte(t, p)
				entries++
			}
			return nil
		}))
		require.Equal(t, 1, entries, "the cache holds model.safetensors once")
	}
	counting.reset()
	out := filepath.Join(t.TempDir(), "v200")
	_, err = r.Pull(e.ctx, "run", "200", out, store.PullOptions{})
	require.NoError(t, err)
	assert.Equal(t, testutil.ReadTree(t, dirs[1]), testutil.ReadTree(t, out))
	for _, id := range others {
		assert.Zero(t, counting.fullReads(id), "reference %s was downloaded, not read from the content cache", id)
	}
	if stale {
		assert.Equal(t, 1, counting.fullReads(last), "the damaged cached copy of %s must be replaced by the registry's", last)
		return
	}
	assert.Zero(t, counting.fullReads(last), "reference %s was downloaded, not read from the content cache", last)

	// This machine pushes the next checkpoint: its references (the first
	// checkpoint's chunks, depth 1) come from the content cache too.
	counting.reset()
	res, err := r.Push(e.ctx, dirs[2], store.PushOptions{Name: "run"})
	require.NoError(t, err)
	assert.Equal(t, 2, res.DeltaBlobs)
	for _, id := range append(others, last) {
		assert.Zero(t, counting.fullReads(id), "reference %s was downloaded, not read from the content cache", id)
	}
	assert.Equal(t, testutil.ReadTree(t, dirs[2]), pullTree(t, e.withoutIndex(), "run", "300"))
}
