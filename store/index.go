package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Index is the per-machine cache, a bbolt file under the user's cache
// folder. It only ever speeds things up: every entry is either checked
// before use (stat entries against the file's stat) or harmless when stale
// (see the package documentation), and deleting the file loses nothing.
//
// Buckets:
//
//	files                abs path -> statEntry (JSON)
//	known/<registry id>  blob or manifest key -> gc generation (8 bytes): the object existed, as of that generation
//	manifests            manifest id -> manifest JSON (content-addressed, so never stale)
//	gcseen/<registry id> gc run id -> empty: the runs the known set has been checked against
//	state/<name>         small state of per-machine tools (ckpt watch)
//	catalog/<registry id> ref key -> catalogEntry (JSON): a ref object's content, valid while its ETag matches
//
// bbolt locks the file for one process at a time, so a long-running process
// (ckpt watch) calls Release between bursts of work; the file is opened
// again on next use.
type Index struct {
	path string
	mu   sync.RWMutex // held for reading by every transaction, for writing to open or close
	db   *bolt.DB
}

// DefaultIndexPath is $XDG_CACHE_HOME/ckpt/index.db, else ~/.cache/ckpt/index.db.
func DefaultIndexPath() (string, error) {
	dir := os.Getenv("XDG_CACHE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cache folder: %w", err)
		}
		dir = filepath.Join(home, ".cache")
	}
	return filepath.Join(dir, "ckpt", "index.db"), nil
}

// OpenIndex opens (creating) the cache at path. It waits at most a few
// seconds for another ckpt process holding it.
func OpenIndex(path string) (*Index, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	ix := &Index{path: path}
	if err := ix.open(); err != nil {
		return nil, err
	}
	return ix, nil
}

// open opens the file if it is closed; ix.mu must be held for writing.
func (ix *Index) open() error {
	if ix.db != nil {
		return nil
	}
	db, err := bolt.Open(ix.path, 0o644, &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true})
	if err != nil {
		return fmt.Errorf("index %s: %w", ix.path, err)
	}
	ix.db = db
	return nil
}

// Release closes the file (waiting for transactions in flight) so other
// processes can use it; the next use opens it again.
func (ix *Index) Release() error {
	if ix == nil {
		return nil
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.db == nil {
		return nil
	}
	err := ix.db.Close()
	ix.db = nil
	return err
}

// Close releases the cache file.
func (ix *Index) Close() error { return ix.Release() }

// handle returns the open database with ix.mu held for reading; the caller
// calls done. A file that cannot be opened again (another process holds it
// too long) makes the cache act empty.
func (ix *Index) handle() (db *bolt.DB, done func()) {
	ix.mu.RLock()
	if ix.db != nil {
		return ix.db, ix.mu.RUnlock
	}
	ix.mu.RUnlock()
	ix.mu.Lock()
	err := ix.open()
	ix.mu.Unlock()
	if err != nil {
		return nil, func() {}
	}
	return ix.handle()
}

// view runs a read-only transaction; errors only make the cache miss.
func (ix *Index) view(fn func(tx *bolt.Tx) error) error {
	db, done := ix.handle()
	defer done()
	if db == nil {
		return errors.New("index unavailable")
	}
	return db.View(fn)
}

// update runs a read-write transaction.
func (ix *Index) update(fn func(tx *bolt.Tx) error) error {
	db, done := ix.handle()
	defer done()
	if db == nil {
		return errors.New("index unavailable")
	}
	return db.Update(fn)
}

var (
	bucketFiles     = []byte("files")
	bucketManifests = []byte("manifests")
)

func knownBucket(reg string) []byte   { return []byte("known/" + reg) }
func catalogBucket(reg string) []byte { return []byte("catalog/" + reg) }

// statEntry remembers what a file hashed to, keyed by its stat.
type statEntry struct {
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
	Ino     uint64 `json:"ino"`
	Dev     uint64 `json:"dev"`
	Plan    int    `json:"plan"` // chunkPlanVersion the entry was made with
	File    File   `json:"file"`
}

// chunkPlanVersion changes whenever planChunks would cut a file differently.
const chunkPlanVersion = 1

func statKey(fi os.FileInfo) statEntry {
	st := fileStat(fi)
	st.Size = fi.Size()
	st.MtimeNs = fi.ModTime().UnixNano()
	st.Plan = chunkPlanVersion
	return st
}

// lookupFile returns the cached manifest entry for the file at abs if its
// stat is unchanged.
func (ix *Index) lookupFile(abs string, fi os.FileInfo) (File, bool) {
	if ix == nil {
		return File{}, false
	}
	var e statEntry
	found := false
	_ = ix.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(abs))
		if v == nil || json.Unmarshal(v, &e) != nil {
			return nil
		}
		want := statKey(fi)
		found = e.Size == want.Size && e.MtimeNs == want.MtimeNs && e.CtimeNs == want.CtimeNs &&
			e.Ino == want.Ino && e.Dev == want.Dev && e.Plan == want.Plan
		return nil
	})
	return e.File, found
}

// storeFiles records stat entries. Files modified too recently (racy) at the
// moment they were read are not recorded: a later write inside the same
// timestamp tick could otherwise go unnoticed.
func (ix *Index) storeFiles(entries map[string]statEntry) {
	if ix == nil || len(entries) == 0 {
		return
	}
	_ = ix.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketFiles)
		if err != nil {
			return err
		}
		for abs, e := range entries {
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(abs), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// known reports whether key was seen to exist in registry reg since the
// last garbage collection the index knows of.
func (ix *Index) known(reg, key string) bool {
	if ix == nil {
		return false
	}
	found := false
	_ = ix.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(knownBucket(reg)); b != nil {
			v := b.Get([]byte(key))
			found = len(v) == 8 && binary.BigEndian.Uint64(v) == gcGeneration(tx, reg)
		}
		return nil
	})
	return found
}

// addKnown records keys that exist in registry reg, as seen by an operation
// that started at gc generation gen. Entries from before a newer generation
// never count (see syncGCRuns).
func (ix *Index) addKnown(reg string, gen uint64, keys []string) {
	if ix == nil || len(keys) == 0 {
		return
	}
	v := binary.BigEndian.AppendUint64(nil, gen)
	_ = ix.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(knownBucket(reg))
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// forgetKnown drops keys found missing or deleted.
func (ix *Index) forgetKnown(reg string, keys []string) {
	if ix == nil || len(keys) == 0 {
		return
	}
	_ = ix.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(knownBucket(reg))
		if b == nil {
			return nil
		}
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
}

// manifest returns cached manifest JSON.
func (ix *Index) manifest(id ID) ([]byte, bool) {
	if ix == nil {
		return nil, false
	}
	var data []byte
	_ = ix.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketManifests); b != nil {
			if v := b.Get(id[:]); v != nil {
				data = append([]byte(nil), v...)
			}
		}
		return nil
	})
	return data, data != nil
}

func (ix *Index) putManifest(id ID, data []byte) {
	if ix == nil {
		return
	}
	_ = ix.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketManifests)
		if err != nil {
			return err
		}
		return b.Put(id[:], data)
	})
}

// catalogEntry caches a ref object's content, valid while the object's
// ETag is the one recorded and the content still hashes to Sum (a cache is
// a hint: an entry damaged on disk is a miss, and the reader also checks
// the ref's own checksum). Backends without ETags are not cached: a ref
// deleted and re-created within one timestamp tick could keep its size and
// mtime.
type catalogEntry struct {
	ETag string `json:"etag"`
	Data []byte `json:"data"`
	Sum  ID     `json:"sum"` // SHA-256 of Data
}

func (ix *Index) catalogGet(reg string, oi ObjectInfo) ([]byte, bool) {
	if ix == nil || oi.ETag == "" {
		return nil, false
	}
	var e catalogEntry
	ok := false
	_ = ix.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(catalogBucket(reg)); b != nil {
			if v := b.Get([]byte(oi.Key)); v != nil && json.Unmarshal(v, &e) == nil {
				ok = e.ETag == oi.ETag && !e.Sum.IsZero() && Hash(e.Data) == e.Sum
			}
		}
		return nil
	})
	return e.Data, ok
}

func (ix *Index) catalogPut(reg string, entries map[ObjectInfo][]byte) {
	if ix == nil || len(entries) == 0 {
		return
	}
	_ = ix.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(catalogBucket(reg))
		if err != nil {
			return err
		}
		for oi, data := range entries {
			if oi.ETag == "" {
				continue
			}
			v, err := json.Marshal(catalogEntry{ETag: oi.ETag, Data: data, Sum: Hash(data)})
			if err != nil {
				return err
			}
			if err := b.Put([]byte(oi.Key), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func gcSeenBucket(reg string) []byte { return []byte("gcseen/" + reg) }

// genKey holds the gc generation inside the gcseen bucket; run ids are hex,
// so it cannot collide with one.
var genKey = []byte("~generation")

func gcGeneration(tx *bolt.Tx, reg string) uint64 {
	if b := tx.Bucket(gcSeenBucket(reg)); b != nil {
		if v := b.Get(genKey); len(v) == 8 {
			return binary.BigEndian.Uint64(v)
		}
	}
	return 0
}

// syncGCRuns records the garbage collection runs the registry shows and
// returns the gc generation: it grows whenever a run appears that the
// index had not seen, which invalidates every known-blob entry made before
// (that run may have deleted those blobs). An operation that lists the runs
// before checking blobs, and records what it finds under the generation
// returned here, can never make a stale entry look current.
func (ix *Index) syncGCRuns(reg string, runs map[string]bool) uint64 {
	if ix == nil {
		return 0
	}
	var gen uint64
	_ = ix.update(func(tx *bolt.Tx) error {
		seen, err := tx.CreateBucketIfNotExists(gcSeenBucket(reg))
		if err != nil {
			return err
		}
		gen = gcGeneration(tx, reg)
		fresh := false
		for id := range runs {
			if seen.Get([]byte(id)) == nil {
				fresh = true
				if err := seen.Put([]byte(id), []byte{}); err != nil {
					return err
				}
			}
		}
		if fresh {
			gen++
			if err := seen.Put(genKey, binary.BigEndian.AppendUint64(nil, gen)); err != nil {
				return err
			}
			if err := tx.DeleteBucket(knownBucket(reg)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
		}
		return nil
	})
	return gen
}

// stateBucket holds small state of other per-machine tools (ckpt watch).
func stateBucket(name string) []byte { return []byte("state/" + name) }

// GetState returns the value stored under key in the named state bucket.
func (ix *Index) GetState(bucket, key string) ([]byte, bool) {
	if ix == nil {
		return nil, false
	}
	var v []byte
	_ = ix.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(stateBucket(bucket)); b != nil {
			if got := b.Get([]byte(key)); got != nil {
				v = append([]byte(nil), got...)
			}
		}
		return nil
	})
	return v, v != nil
}

// PutState stores value under key in the named state bucket.
func (ix *Index) PutState(bucket, key string, value []byte) error {
	if ix == nil {
		return errors.New("no index")
	}
	return ix.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(stateBucket(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), value)
	})
}

// StateKeys lists the keys of the named state bucket, in byte order.
func (ix *Index) StateKeys(bucket string) []string {
	if ix == nil {
		return nil
	}
	var keys []string
	_ = ix.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(stateBucket(bucket)); b != nil {
			return b.ForEach(func(k, _ []byte) error {
				keys = append(keys, string(k))
				return nil
			})
		}
		return nil
	})
	return keys
}
