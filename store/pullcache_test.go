//go:build unix

package store_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// countingBackend counts blob downloads and can fail them after a budget.
type countingBackend struct {
	backend.Backend
	blobGets atomic.Int64
	failFrom int64 // 0: never
}

func (c *countingBackend) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if strings.HasPrefix(key, "blobs/") {
		if got := c.blobGets.Add(1); c.failFrom > 0 && got >= c.failFrom {
			return nil, errors.New("connection lost")
		}
	}
	return c.Backend.Get(ctx, key, off, n)
}

// runnableChunks returns the distinct chunk IDs a default pull of m fetches.
func runnableChunks(m *manifest.Manifest) map[object.ID]bool {
	ids := map[object.ID]bool{}
	for _, f := range m.Files {
		if layout.Role(f.Role).Runnable() {
			for _, c := range f.Chunks {
				ids[c.ID] = true
			}
		}
	}
	return ids
}

func TestPullCacheServesSecondPull(t *testing.T) {
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, func(s *synth.RunSpec) { s.FrozenEmbedding = true })
	first := e.push(ckpts[0], "c", store.PushOptions{})
	second := e.push(ckpts[1], "c", store.PushOptions{})

	pc, err := store.OpenContentCache(filepath.Join(t.TempDir(), "pulled"), 1<<30)
	require.NoError(t, err)
	counting := &countingBackend{Backend: e.b}
	r, err := store.Open(e.ctx, counting, store.Options{Cache: pc, Index: e.ix, Workers: 4})
	require.NoError(t, err)

	outA := filepath.Join(t.TempDir(), "a")
	_, err = r.Pull(e.ctx, "c", "100", outA, store.PullOptions{})
	require.NoError(t, err)
	firstGets := counting.blobGets.Load()
	require.Positive(t, firstGets)

	m1, err := r.Manifest(e.ctx, first.Record.Manifest)
	require.NoError(t, err)
	m2, err := r.Manifest(e.ctx, second.Record.Manifest)
	require.NoError(t, err)
	had, want := runnableChunks(m1), 0
	for id := range runnableChunks(m2) {
		if !had[id] {
			want++
		}
	}
	require.Less(t, want, len(runnableChunks(m2)), "the checkpoints should share blobs")
	outB := filepath.Join(t.TempDir(), "b")
	_, err = r.Pull(e.ctx, "c", "200", outB, store.PullOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(want), counting.blobGets.Load()-firstGets, "the second pull fetched more than its new blobs")

	// The cache survives deleting the first pulled folder (it holds a link)…
	require.NoError(t, os.RemoveAll(outA))
	before := counting.blobGets.Load()
	outC := filepath.Join(t.TempDir(), "c")
	_, err = r.Pull(e.ctx, "c", "100", outC, store.PullOptions{})
	require.NoError(t, err)
	assert.Equal(t, before, counting.blobGets.Load(), "everything was on disk already")
	assert.Equal(t, testutil.ReadTree(t, outC)["model.safetensors"], testutil.ReadTree(t, ckpts[0])["model.safetensors"])

	// …and editing a pulled file in place (it shares its inode with the
	// cache entry) only makes its chunks download again.
	fresh, err := store.OpenContentCache(filepath.Join(t.TempDir(), "pulled2"), 1<<30)
	require.NoError(t, err)
	ix2, err := store.OpenIndex(filepath.Join(t.TempDir(), "index2.db"))
	require.NoError(t, err)
	defer ix2.Close()
	r2, err := store.Open(e.ctx, counting, store.Options{Cache: fresh, Index: ix2, Workers: 4})
	require.NoError(t, err)
	outD := filepath.Join(t.TempDir(), "d")
	_, err = r2.Pull(e.ctx, "c", "100", outD, store.PullOptions{})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(outD, "tokenizer.json"), []byte(`{"edited": true}`), 0o644))
	before = counting.blobGets.Load()
	outE := filepath.Join(t.TempDir(), "e")
	_, err = r2.Pull(e.ctx, "c", "100", outE, store.PullOptions{})
	require.NoError(t, err)
	assert.Equal(t, before+1, counting.blobGets.Load())
	assert.Equal(t, testutil.ReadTree(t, ckpts[0])["tokenizer.json"], testutil.ReadTree(t, outE)["tokenizer.json"])
}

func TestInterruptedPullResumes(t *testing.T) {
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	res := e.push(ckpts[0], "c", store.PushOptions{})
	m, err := e.r.Manifest(e.ctx, res.Record.Manifest)
	require.NoError(t, err)
	total := int64(len(runnableChunks(m)))
	require.Greater(t, total, int64(4))

	// The first attempt is cut off: its context is cancelled after a few
	// downloads, as Ctrl-C would.
	ctx, cancel := context.WithCancel(e.ctx)
	cut := &cancelAfter{Backend: e.b, after: 3, cancel: cancel}
	r1, err := store.Open(ctx, cut, store.Options{Workers: 1})
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "model")
	_, err = r1.Pull(ctx, "c", "100", out, store.PullOptions{})
	require.ErrorIs(t, err, context.Canceled)
	assert.NoDirExists(t, out)

	counting := &countingBackend{Backend: e.b}
	r2, err := store.Open(e.ctx, counting, store.Options{Workers: 1})
	require.NoError(t, err)
	_, err = r2.Pull(e.ctx, "c", "100", out, store.PullOptions{})
	require.NoError(t, err)
	assert.Less(t, counting.blobGets.Load(), total, "the resumed pull downloaded everything again")
	assert.Equal(t, testutil.ReadTree(t, ckpts[0])["model.safetensors"], testutil.ReadTree(t, out)["model.safetensors"])
	assertNoPullLeftovers(t, filepath.Dir(out))
}

// cancelAfter cancels its context once n blobs were downloaded.
type cancelAfter struct {
	backend.Backend
	n, after int64
	cancel   context.CancelFunc
}

func (c *cancelAfter) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if strings.HasPrefix(key, "blobs/") {
		c.n++
		if c.n > c.after {
			c.cancel()
			return nil, context.Canceled
		}
	}
	return c.Backend.Get(ctx, key, off, n)
}

func TestPullCacheEvictsWhatOnlyItHolds(t *testing.T) {
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	e.push(ckpts[0], "c", store.PushOptions{})
	e.push(ckpts[1], "c", store.PushOptions{})
	dir := filepath.Join(t.TempDir(), "pulled")
	const limit = 1 << 20
	pc, err := store.OpenContentCache(dir, limit)
	require.NoError(t, err)
	r, err := store.Open(e.ctx, e.b, store.Options{Cache: pc, Index: e.ix})
	require.NoError(t, err)
	a := filepath.Join(t.TempDir(), "a")
	_, err = r.Pull(e.ctx, "c", "100", a, store.PullOptions{})
	require.NoError(t, err)
	require.Positive(t, linkedBytes(t, dir), "pulled files are linked into the cache")
	require.NoError(t, os.RemoveAll(a)) // now only the cache holds those files
	_, err = r.Pull(e.ctx, "c", "200", filepath.Join(t.TempDir(), "b"), store.PullOptions{})
	require.NoError(t, err)
	assert.LessOrEqual(t, cacheOnlyBytes(t, dir), int64(limit))
	assert.Positive(t, linkedBytes(t, dir), "files of the live pull stay cached: they cost nothing")
}

func cacheOnlyBytes(t *testing.T, dir string) int64 {
	return walkNlink(t, dir, func(n uint64) bool { return n == 1 })
}
func linkedBytes(t *testing.T, dir string) int64 {
	return walkNlink(t, dir, func(n uint64) bool { return n > 1 })
}

func walkNlink(t *testing.T, dir string, keep func(uint64) bool) int64 {
	t.Helper()
	var total int64
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && keep(uint64(st.Nlink)) {
			total += fi.Size()
		}
		return nil
	}))
	return total
}
