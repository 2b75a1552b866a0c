package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIndexReleaseLetsAnotherProcessIn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	a, err := OpenIndex(path)
	require.NoError(t, err)
	defer a.Close()
	require.NoError(t, a.PutState("w", "k", []byte("v1")))
	require.NoError(t, a.Release())

	// bbolt's lock is per open file description, so a second handle in
	// this process stands in for another process.
	b, err := OpenIndex(path)
	require.NoError(t, err)
	got, ok := b.GetState("w", "k")
	require.True(t, ok)
	assert.Equal(t, "v1", string(got))
	require.NoError(t, b.PutState("w", "k", []byte("v2")))
	require.NoError(t, b.Close())

	// a reopens on next use and sees b's write.
	got, ok = a.GetState("w", "k")
	require.True(t, ok)
	assert.Equal(t, "v2", string(got))
}

func TestKnownCacheGenerations(t *testing.T) {
	ix, err := OpenIndex(filepath.Join(t.TempDir(), "index.db"))
	require.NoError(t, err)
	defer ix.Close()
	gen := ix.syncGCRuns("reg", map[string]bool{})
	ix.addKnown("reg", gen, []string{"blobs/aa/x"})
	assert.True(t, ix.known("reg", "blobs/aa/x"))
	assert.Equal(t, gen, ix.syncGCRuns("reg", map[string]bool{}), "no new run, same generation")

	// A gc run the index has not seen invalidates what was known before,
	// including entries written late by an operation that started earlier.
	next := ix.syncGCRuns("reg", map[string]bool{"run1": true})
	assert.Greater(t, next, gen)
	assert.False(t, ix.known("reg", "blobs/aa/x"))
	ix.addKnown("reg", gen, []string{"blobs/aa/late"})
	assert.False(t, ix.known("reg", "blobs/aa/late"), "an entry from an older generation never counts")
	ix.addKnown("reg", next, []string{"blobs/aa/y"})
	assert.True(t, ix.known("reg", "blobs/aa/y"))
	assert.False(t, ix.known("other", "blobs/aa/y"), "registries are separate")
}

func TestRacy(t *testing.T) {
	read := time.Date(2026, 11, 26, 12, 0, 0, 500_000_000, time.UTC)
	cases := []struct {
		mtime time.Time
		racy  bool
	}{
		{read.Add(-time.Second), false},                           // long before the read
		{read.Add(-50 * time.Millisecond), true},                  // within a coarse tick
		{read.Add(time.Millisecond), true},                        // written while reading
		{time.Date(2026, 11, 26, 11, 59, 59, 0, time.UTC), true},  // whole-second fs: 1.5 s is too close
		{time.Date(2026, 11, 26, 11, 59, 57, 0, time.UTC), false}, // whole-second fs, 3.5 s before
	}
	for _, c := range cases {
		assert.Equal(t, c.racy, racy(c.mtime, read), "mtime %s", c.mtime)
	}
}
