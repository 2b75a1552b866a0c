package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/ckptdev/ckpt/internal/bolttest"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// filledIndex writes enough state entries that the file has branch pages.
func filledIndex(t testing.TB, path string, warn func(error)) *Index {
	t.Helper()
	ix, err := OpenIndexWith(path, IndexOptions{Warn: warn})
	require.NoError(t, err)
	require.NoError(t, ix.update(func(tx *bolt.Tx) error {
		for b := 0; b < 3; b++ {
			bk, err := tx.CreateBucketIfNotExists(stateBucket(fmt.Sprint("b", b)))
			if err != nil {
				return err
			}
			for k := 0; k < 300; k++ {
				if err := bk.Put([]byte(fmt.Sprintf("key-%04d", k)), bytes.Repeat([]byte{byte(k)}, 100)); err != nil {
					return err
				}
			}
		}
		return nil
	}))
	return ix
}

// walkIndex reads every key and value and writes one, as commands do.
func walkIndex(ix *Index) {
	for b := 0; b < 3; b++ {
		for _, k := range ix.StateKeys(fmt.Sprint("b", b)) {
			ix.GetState(fmt.Sprint("b", b), k)
		}
	}
	_ = ix.PutState("b0", "new", []byte("v"))
	ix.addKnown("reg", ix.syncGCRuns("reg", map[string]bool{"run": true}), []string{"blobs/aa/x"})
	ix.known("reg", "blobs/aa/x")
}

// TestIndexDamagedWhileOpen damages the file under an open index, where
// the check at open cannot see it: the transaction that meets the damage
// panics inside bbolt, or faults on its memory map, and is recovered; the
// file is set aside once and the index acts empty until Release, after
// which a fresh file works.
func TestIndexDamagedWhileOpen(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"truncated to nothing (a fault on the map)", func(t *testing.T, path string) {
			require.NoError(t, os.Truncate(path, 0))
		}},
		{"every branch and leaf page zeroed", func(t *testing.T, path string) {
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			pages, ps := bolttest.BoltPages(t, data)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			require.NoError(t, err)
			defer f.Close()
			for _, p := range pages {
				if p.Type == "branch" || p.Type == "leaf" {
					_, err := f.WriteAt(make([]byte, ps), int64(p.ID*ps))
					require.NoError(t, err)
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "index.db")
			var warned []error
			ix := filledIndex(t, path, func(err error) { warned = append(warned, err) })
			defer ix.Close()
			c.damage(t, path)

			_, ok := ix.GetState("b1", "key-0150")
			assert.False(t, ok)
			walkIndex(ix)
			require.Len(t, warned, 1, "one warning")
			var ce *CorruptIndexError
			require.True(t, errors.As(warned[0], &ce))
			assert.Contains(t, ce.MovedTo, path+".corrupt-")
			assert.FileExists(t, ce.MovedTo)
			assert.Error(t, ix.PutState("b0", "k", []byte("v")), "the index acts empty")

			// The next use after Release starts a fresh file.
			require.NoError(t, ix.Release())
			require.NoError(t, ix.PutState("b0", "k", []byte("v")))
			got, ok := ix.GetState("b0", "k")
			assert.True(t, ok)
			assert.Equal(t, "v", string(got))
			assert.Len(t, warned, 1)
		})
	}
}

// TestCheckBoltFileAcceptsHealthyFiles: the check passes every file bbolt
// writes, whatever it went through (growth, deletes, a legacy file without
// a synced freelist, an empty one).
func TestCheckBoltFileAcceptsHealthyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "index.db")
	ix := filledIndex(t, path, func(err error) { t.Errorf("warned: %v", err) })
	require.NoError(t, ix.update(func(tx *bolt.Tx) error { return tx.DeleteBucket(stateBucket("b1")) }))
	require.NoError(t, ix.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, checkBoltFile(bytes.NewReader(data), int64(len(data))))

	legacy := filepath.Join(dir, "legacy.db")
	db, err := bolt.Open(legacy, 0o644, &bolt.Options{NoFreelistSync: true})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("state/x"))
		for i := 0; err == nil && i < 500; i++ {
			err = b.Put([]byte(fmt.Sprint(i)), bytes.Repeat([]byte("v"), 200))
		}
		return err
	}))
	require.NoError(t, db.Close())
	data, err = os.ReadFile(legacy)
	require.NoError(t, err)
	require.NoError(t, checkBoltFile(bytes.NewReader(data), int64(len(data))))
	ix, err = OpenIndexWith(legacy, IndexOptions{Warn: func(err error) { t.Errorf("warned: %v", err) }})
	require.NoError(t, err)
	got, ok := ix.GetState("x", "499")
	assert.True(t, ok)
	assert.Len(t, got, 200)
	require.NoError(t, ix.Close())

	ix, err = OpenIndexWith(filepath.Join(dir, "new.db"), IndexOptions{Warn: func(err error) { t.Errorf("warned: %v", err) }})
	require.NoError(t, err)
	require.NoError(t, ix.Close())
}

// FuzzIndexFile: whatever the bytes of the index file, opening and using
// it never crashes, warns at most once, and a file the check accepts is one
// bbolt can use: all its buckets walked and written to without a panic.
func FuzzIndexFile(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.db")
	ix := filledIndex(f, path, nil)
	require.NoError(f, ix.Close())
	seed, err := os.ReadFile(path)
	require.NoError(f, err)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4<<20 {
			return
		}
		path := filepath.Join(t.TempDir(), "index.db")
		require.NoError(t, os.WriteFile(path, data, 0o644))
		checked := checkBoltFile(bytes.NewReader(data), int64(len(data))) == nil
		var warned []error
		ix, err := OpenIndexWith(path, IndexOptions{Warn: func(err error) { warned = append(warned, err) }})
		require.NoError(t, err)
		defer ix.Close()
		walkIndex(ix)
		require.LessOrEqual(t, len(warned), 1)
		if checked && len(data) > 0 {
			var p *indexPanic
			for _, w := range warned {
				assert.False(t, errors.As(w, &p), "bbolt panicked on a file the check accepted: %v", w)
			}
		}
	})
}

// TestStatEntryIsSealed: a stat entry is used only when its checksum holds
// for the path it is stored under and its chunks describe the file; any
// edit of the stored bytes, an entry moved to another path, or one written
// without a checksum is a miss.
func TestStatEntryIsSealed(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "model.safetensors")
	require.NoError(t, os.WriteFile(abs, bytes.Repeat([]byte("w"), 3000), 0o644))
	fi, err := os.Stat(abs)
	require.NoError(t, err)
	a, b := object.Hash([]byte("a")), object.Hash([]byte("b"))
	e := statKey(fi)
	e.File = manifest.File{Size: 3000, Chunks: []manifest.Chunk{{ID: a, Offset: 0, Size: 1000}, {ID: b, Offset: 1000, Size: 2000}}}
	e.File.Digest = manifest.ChunksDigest(e.File.Chunks)

	ix, err := OpenIndex(filepath.Join(dir, "index.db"))
	require.NoError(t, err)
	defer ix.Close()
	ix.storeFiles(map[string]statEntry{abs: e})
	got, ok := ix.lookupFile(abs, fi)
	require.True(t, ok)
	assert.Equal(t, e.File, got)
	stored, ok := func() ([]byte, bool) {
		var v []byte
		require.NoError(t, ix.view(func(tx *bolt.Tx) error {
			v = bytes.Clone(tx.Bucket(bucketFiles).Get([]byte(abs)))
			return nil
		}))
		return v, v != nil
	}()
	require.True(t, ok)

	put := func(key string, v []byte) {
		require.NoError(t, ix.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketFiles).Put([]byte(key), v) }))
	}
	unsealed, err := json.Marshal(e)
	require.NoError(t, err)
	other := e
	other.File.Chunks = []manifest.Chunk{{ID: a, Offset: 0, Size: 1000}, {ID: b, Offset: 1500, Size: 2000}}
	gap, err := sealStat(abs, other)
	require.NoError(t, err)
	cases := []struct {
		name string
		v    []byte
	}{
		{"a chunk id digit changed", bytes.Replace(stored, []byte(a.String()[:8]), []byte("00000000"), 1)},
		{"a chunk size changed", bytes.Replace(stored, []byte(`"size":2000`), []byte(`"size":2001`), 1)},
		{"the digest changed", bytes.Replace(stored, []byte(e.File.Digest[len("chunks-sha256:"):][:6]), []byte("ffffff"), 1)},
		{"no checksum (an older ckpt)", unsealed},
		{"chunks with a gap, sealed", gap},
		{"not JSON", []byte("{")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.NotEqual(t, stored, c.v)
			put(abs, c.v)
			_, ok := ix.lookupFile(abs, fi)
			assert.False(t, ok)
		})
	}
	// The intact entry under another path (a flipped key) is a miss too.
	abs2 := filepath.Join(dir, "model2.safetensors")
	require.NoError(t, os.Link(abs, abs2))
	fi2, err := os.Stat(abs2)
	require.NoError(t, err)
	put(abs2, stored)
	_, ok = ix.lookupFile(abs2, fi2)
	assert.False(t, ok)
	put(abs, stored)
	_, ok = ix.lookupFile(abs, fi)
	assert.True(t, ok)
}
