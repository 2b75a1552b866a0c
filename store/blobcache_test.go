package store_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
)

// countingBackend counts blob downloads.
type countingBackend struct {
	store.Backend
	blobGets atomic.Int64
}

func (c *countingBackend) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if strings.HasPrefix(key, "blobs/") {
		c.blobGets.Add(1)
	}
	return c.Backend.Get(ctx, key, off, n)
}

func TestBlobCacheServesSecondPull(t *testing.T) {
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, func(s *synth.RunSpec) { s.FrozenEmbedding = true })
	first := e.push(ckpts[0], "c", store.PushOptions{})
	e.push(ckpts[1], "c", store.PushOptions{})

	cacheDir := filepath.Join(t.TempDir(), "blobs")
	cache, err := store.OpenBlobCache(cacheDir, 1<<30)
	require.NoError(t, err)
	counting := &countingBackend{Backend: e.b}
	r, err := store.Open(e.ctx, counting, store.Options{BlobCache: cache, Workers: 4})
	require.NoError(t, err)

	_, err = r.Pull(e.ctx, "c", "100", filepath.Join(t.TempDir(), "a"), store.PullOptions{})
	require.NoError(t, err)
	firstGets := counting.blobGets.Load()
	require.Positive(t, firstGets)

	m1, err := r.Manifest(e.ctx, first.Record.Manifest)
	require.NoError(t, err)
	rec2, err := r.Resolve(e.ctx, "c", "200")
	require.NoError(t, err)
	m2, err := r.Manifest(e.ctx, rec2.Manifest)
	require.NoError(t, err)
	had := map[store.ID]bool{}
	for _, f := range m1.Files {
		for _, c := range f.Chunks {
			if layout.Role(f.Role).Runnable() {
				had[c.ID] = true
			}
		}
	}
	want := 0
	for _, f := range m2.Files {
		for _, c := range f.Chunks {
			if layout.Role(f.Role).Runnable() && !had[c.ID] {
				had[c.ID] = true
				want++
			}
		}
	}
	out := filepath.Join(t.TempDir(), "b")
	_, err = r.Pull(e.ctx, "c", "200", out, store.PullOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(want), counting.blobGets.Load()-firstGets, "second pull fetched more than its new blobs")

	// A damaged cache entry is noticed and fetched again.
	var victim string
	require.NoError(t, filepath.WalkDir(cacheDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(filepath.Dir(p))) == "blobs" && victim == "" {
			victim = p
		}
		return err
	}))
	require.NotEmpty(t, victim)
	require.NoError(t, os.WriteFile(victim, []byte("garbage"), 0o644))
	before := counting.blobGets.Load()
	_, err = r.Pull(e.ctx, "c", "200", out, store.PullOptions{Force: true})
	require.NoError(t, err)
	assert.Equal(t, before+1, counting.blobGets.Load())
}

func TestBlobCacheEvicts(t *testing.T) {
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	res := e.push(ckpts[0], "c", store.PushOptions{})
	cacheDir := filepath.Join(t.TempDir(), "blobs")
	const cap = 1 << 20
	cache, err := store.OpenBlobCache(cacheDir, cap)
	require.NoError(t, err)
	r, err := store.Open(e.ctx, e.b, store.Options{BlobCache: cache})
	require.NoError(t, err)
	_, err = r.Pull(e.ctx, "c", "100", filepath.Join(t.TempDir(), "a"), store.PullOptions{Full: true})
	require.NoError(t, err)
	require.Greater(t, res.Logical, int64(cap))
	var total int64
	require.NoError(t, filepath.WalkDir(cacheDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			info, _ := d.Info()
			total += info.Size()
		}
		return err
	}))
	assert.LessOrEqual(t, total, int64(cap))
	assert.Positive(t, total, "cache in %s", cacheDir)
}
