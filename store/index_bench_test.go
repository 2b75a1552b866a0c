package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// bigIndexFile writes an index shaped like a long-used one: stat entries
// of tens of KB (one per pushed file), cached manifests, and many small
// known-blob keys; about mib MiB in all.
func bigIndexFile(b *testing.B, mib int, noFreelistSync bool) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "index.db")
	db, err := bolt.Open(path, 0o644, &bolt.Options{NoFreelistSync: noFreelistSync})
	require.NoError(b, err)
	rng := rand.New(rand.NewPCG(1, 2))
	val := func(n int) []byte {
		v := make([]byte, n)
		for i := range v {
			v[i] = byte('a' + rng.IntN(16))
		}
		return v
	}
	written := 0
	for batch := 0; written < mib<<20; batch++ {
		require.NoError(b, db.Update(func(tx *bolt.Tx) error {
			files, _ := tx.CreateBucketIfNotExists(bucketFiles)
			mans, _ := tx.CreateBucketIfNotExists(bucketManifests)
			known, _ := tx.CreateBucketIfNotExists(knownBucket("reg"))
			for i := 0; i < 50; i++ {
				v := val(5000 + rng.IntN(40000))
				written += len(v)
				if err := files.Put([]byte(fmt.Sprintf("/data/run/checkpoint-%d/file-%d", batch, i)), v); err != nil {
					return err
				}
				if err := known.Put([]byte(fmt.Sprintf("blobs/%02x/%064x", i, rng.Uint64())), make([]byte, 8)); err != nil {
					return err
				}
			}
			v := val(100000)
			written += len(v)
			return mans.Put([]byte(fmt.Sprintf("%032d", batch)), v)
		}))
	}
	require.NoError(b, db.Close())
	return path
}

// BenchmarkIndexOpen compares what opening the index costs: the structure
// check ckpt now runs before bbolt maps the file, bbolt's open with the
// freelist stored (as ckpt now opens it), bbolt's open without it (as ckpt
// opened it before: bbolt then walks the whole tree), and bbolt's own
// tx.Check.
func BenchmarkIndexOpen(b *testing.B) {
	for _, mib := range []int{8, 64} {
		synced := bigIndexFile(b, mib, false)
		unsynced := bigIndexFile(b, mib, true)
		fi, err := os.Stat(synced)
		require.NoError(b, err)
		b.Logf("%d MiB of values: file %d MiB", mib, fi.Size()>>20)
		b.Run(fmt.Sprintf("%dMiB/check", mib), func(b *testing.B) {
			f, err := os.Open(synced)
			require.NoError(b, err)
			defer f.Close()
			for b.Loop() {
				require.NoError(b, checkBoltFile(f, fi.Size()))
			}
		})
		b.Run(fmt.Sprintf("%dMiB/OpenIndex", mib), func(b *testing.B) {
			for b.Loop() {
				ix, err := OpenIndex(synced)
				require.NoError(b, err)
				require.NoError(b, ix.Close())
			}
		})
		b.Run(fmt.Sprintf("%dMiB/bolt-open-freelist-stored", mib), func(b *testing.B) {
			for b.Loop() {
				db, err := bolt.Open(synced, 0o644, nil)
				require.NoError(b, err)
				require.NoError(b, db.Close())
			}
		})
		b.Run(fmt.Sprintf("%dMiB/bolt-open-freelist-not-stored(before)", mib), func(b *testing.B) {
			for b.Loop() {
				db, err := bolt.Open(unsynced, 0o644, &bolt.Options{NoFreelistSync: true})
				require.NoError(b, err)
				require.NoError(b, db.Close())
			}
		})
		b.Run(fmt.Sprintf("%dMiB/bolt-tx.Check", mib), func(b *testing.B) {
			db, err := bolt.Open(synced, 0o644, nil)
			require.NoError(b, err)
			defer db.Close()
			for b.Loop() {
				require.NoError(b, db.View(func(tx *bolt.Tx) error {
					for err := range tx.Check() {
						return err
					}
					return nil
				}))
			}
		})
	}
}
