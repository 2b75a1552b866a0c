package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// Index is the per-machine cache, a bbolt file under the user's cache
// folder. It only ever speeds things up: every entry is either checked
// before use (stat entries against the file's stat and their checksum) or
// harmless when stale (see the package documentation), and deleting the
// file loses nothing.
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
//
// A damaged file is a cache miss, never a crash. Before bbolt maps the
// file, checkBoltFile verifies its page structure; every transaction runs
// with panics recovered and memory faults on the map turned into panics
// (debug.SetPanicOnFault). A file that fails either way is renamed to
// <path>.corrupt-<time>, reported once through IndexOptions.Warn, and the
// index acts empty until Release; the next open starts a fresh file.
type Index struct {
	path string
	warn func(error)

	// mu serializes opening, closing and every transaction: one goroutine
	// at a time is inside bbolt, so a panic there, recovered, cannot leave
	// another one waiting forever on a lock bbolt did not release.
	mu   sync.Mutex
	db   *bolt.DB
	file *os.File // db's file, locked; closed by hand when db is abandoned
	// off makes the index act empty until Release: the file was found
	// damaged, or could not be opened again. stuck keeps it off for good
	// (a damaged file that could not be moved aside).
	off   bool
	stuck bool
}

// IndexOptions tune OpenIndexWith.
type IndexOptions struct {
	// Warn is told (with a *CorruptIndexError) each time the file is found
	// damaged and set aside; nil says nothing.
	Warn func(error)
}

// CorruptIndexError reports a damaged index file, set aside.
type CorruptIndexError struct {
	Path    string
	MovedTo string // "" when it was not moved (MoveErr says why, or another process moved it)
	MoveErr error
	Cause   error // what was wrong
}

func (e *CorruptIndexError) Error() string {
	switch {
	case e.MovedTo != "":
		return fmt.Sprintf("the per-machine cache %s is corrupt; moved aside to %s; continuing without it", e.Path, e.MovedTo)
	case e.MoveErr != nil:
		return fmt.Sprintf("the per-machine cache %s is corrupt and could not be moved aside (%v); continuing without it", e.Path, e.MoveErr)
	}
	return fmt.Sprintf("the per-machine cache %s is corrupt; continuing without it", e.Path)
}

func (e *CorruptIndexError) Unwrap() error { return e.Cause }

// errIndexBusy: another process held the file past the wait.
var errIndexBusy = errors.New("held by another process")

// errIndexOff: the index acts empty (see Index).
var errIndexOff = errors.New("index unavailable")

// indexLockWait is how long opening waits for another process holding the file.
const indexLockWait = 5 * time.Second

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

// OpenIndex opens (creating) the cache at path, with no warnings.
func OpenIndex(path string) (*Index, error) { return OpenIndexWith(path, IndexOptions{}) }

// OpenIndexWith opens (creating) the cache at path. It waits at most a few
// seconds for another ckpt process holding it. A damaged file is not an
// error: it is set aside and reported through opts.Warn, and the index acts
// empty. Errors are for a file that cannot be created or opened at all.
func OpenIndexWith(path string, opts IndexOptions) (*Index, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	ix := &Index{path: path, warn: opts.Warn}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err := ix.open(); err != nil {
		return nil, err
	}
	return ix, nil
}

// open opens the file if it is closed; ix.mu must be held. The file is
// locked first, then checked, then handed to bbolt.
func (ix *Index) open() error {
	if ix.db != nil || ix.off {
		return nil
	}
	f, err := openLocked(ix.path, indexLockWait)
	if err != nil {
		return fmt.Errorf("index %s: %w", ix.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close() // giving up on this file: the error above is the one to report
		return fmt.Errorf("index %s: %w", ix.path, err)
	}
	if fi.Size() > 0 {
		if err := guard(func() error { return checkBoltFile(f, fi.Size()) }); err != nil {
			ix.setAside(f, fi, err)
			return nil
		}
	}
	var db *bolt.DB
	err = guard(func() (err error) {
		db, err = bolt.Open(ix.path, 0o644, &bolt.Options{
			Timeout:  indexLockWait,
			OpenFile: func(string, int, os.FileMode) (*os.File, error) { return f, nil },
		})
		return err
	})
	var p *indexPanic
	switch {
	case errors.As(err, &p) || errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) ||
		errors.Is(err, bolterrors.ErrVersionMismatch) || errors.Is(err, bolterrors.ErrInvalidMapping):
		ix.setAside(f, fi, err)
		return nil
	case err != nil:
		_ = f.Close() // giving up on this file: the error above is the one to report
		return fmt.Errorf("index %s: %w", ix.path, err)
	}
	ix.db, ix.file = db, f
	return nil
}

// setAside renames the damaged file f (if it is still the one at the path)
// to <path>.corrupt-<time>, closes it, reports it, and turns the index off.
func (ix *Index) setAside(f *os.File, fi os.FileInfo, cause error) {
	ix.off = true
	ce := &CorruptIndexError{Path: ix.path, Cause: cause}
	if cur, err := os.Stat(ix.path); err == nil && os.SameFile(cur, fi) {
		aside := ix.path + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(ix.path, aside); err != nil {
			ce.MoveErr = err
			ix.stuck = true
		} else {
			ce.MovedTo = aside
		}
	}
	_ = f.Close() // giving up on this file: the error above is the one to report
	if ix.warn != nil {
		ix.warn(ce)
	}
}

// indexPanic is a panic, or a memory fault, recovered inside bbolt.
type indexPanic struct{ value any }

func (p *indexPanic) Error() string { return fmt.Sprintf("bbolt: %v", p.value) }

// guard runs fn with panics recovered and memory faults of this goroutine
// (a damaged page read through bbolt's memory map) turned into panics.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			err = &indexPanic{v}
		}
	}()
	return fn()
}

// Release closes the file (waiting for the transaction in flight) so other
// processes can use it; the next use opens it again (a fresh file, if this
// one was set aside).
func (ix *Index) Release() error {
	if ix == nil {
		return nil
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.off {
		ix.off = ix.stuck
		return nil
	}
	if ix.db == nil {
		return nil
	}
	db := ix.db
	ix.db, ix.file = nil, nil
	return guard(db.Close)
}

// Close releases the cache file.
func (ix *Index) Close() error { return ix.Release() }

// run runs fn in a transaction. Errors only make the cache miss; a panic
// inside bbolt sets the file aside.
func (ix *Index) run(writable bool, fn func(tx *bolt.Tx) error) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err := ix.open(); err != nil {
		ix.off = true // not again until Release: every use would wait for the lock
		return err
	}
	if ix.db == nil {
		return errIndexOff
	}
	db := ix.db
	err := guard(func() error {
		if writable {
			return db.Update(fn)
		}
		return db.View(fn)
	})
	var p *indexPanic
	if errors.As(err, &p) {
		// The database is abandoned, not closed: the panic may have left
		// bbolt's own locks held. Its file is closed by hand.
		fi, serr := ix.file.Stat()
		ix.db = nil
		if serr != nil {
			ix.off = true
			_ = ix.file.Close() // abandoned after a panic; the cache is off from here
		} else {
			ix.setAside(ix.file, fi, err)
		}
		ix.file = nil
	}
	return err
}

// view runs a read-only transaction; errors only make the cache miss.
func (ix *Index) view(fn func(tx *bolt.Tx) error) error { return ix.run(false, fn) }

// update runs a read-write transaction.
func (ix *Index) update(fn func(tx *bolt.Tx) error) error { return ix.run(true, fn) }

var (
	bucketFiles     = []byte("files")
	bucketManifests = []byte("manifests")
)

func knownBucket(reg string) []byte   { return []byte("known/" + reg) }
func catalogBucket(reg string) []byte { return []byte("catalog/" + reg) }

// statEntry remembers what a file hashed to, keyed by its stat. Sum seals
// the entry and the path it is stored under: an entry damaged on disk (or
// written by an older ckpt, without one) is a miss, never wrong chunks in a
// manifest.
type statEntry struct {
	Size    int64         `json:"size"`
	MtimeNs int64         `json:"mtime_ns"`
	CtimeNs int64         `json:"ctime_ns"`
	Ino     uint64        `json:"ino"`
	Dev     uint64        `json:"dev"`
	Plan    int           `json:"plan"` // chunkPlanVersion the entry was made with
	File    manifest.File `json:"file"`
	Sum     string        `json:"sum,omitempty"` // statSum of the entry without it, under its path
}

// statSum is the hex SHA-256 of the path and the entry's JSON without Sum.
func statSum(abs string, e statEntry) (string, error) {
	e.Sum = ""
	data, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(abs))
	h.Write([]byte{0})
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sealStat returns the stored form of e under abs.
func sealStat(abs string, e statEntry) ([]byte, error) {
	sum, err := statSum(abs, e)
	if err != nil {
		return nil, err
	}
	e.Sum = sum
	return json.Marshal(e)
}

// openStat decodes a stored entry, refusing one whose checksum does not
// match or whose chunks do not describe its file.
func openStat(abs string, v []byte) (statEntry, bool) {
	var e statEntry
	if json.Unmarshal(v, &e) != nil || e.Sum == "" {
		return statEntry{}, false
	}
	if sum, err := statSum(abs, e); err != nil || sum != e.Sum {
		return statEntry{}, false
	}
	return e, e.File.Size == e.Size && chunksDescribe(&e.File)
}

// chunksDescribe reports whether f's chunks cover [0, Size) contiguously,
// each at most MaxChunkSize, and its digest is the one they give.
func chunksDescribe(f *manifest.File) bool {
	var off int64
	for _, c := range f.Chunks {
		if c.Offset != off || c.Size <= 0 || c.Size > object.MaxChunkSize {
			return false
		}
		off += c.Size
	}
	if off != f.Size {
		return false
	}
	switch len(f.Chunks) {
	case 0:
		return f.Digest == manifest.SHA256Digest(object.Hash(nil))
	case 1:
		return f.Digest == manifest.SHA256Digest(f.Chunks[0].ID)
	}
	return f.Digest == manifest.ChunksDigest(f.Chunks)
}

// chunkPlanVersion changes whenever planChunks would cut a file differently
// (2: torch.save zips, .distcp and GGUF files cut around their tensors).
const chunkPlanVersion = 2

func statKey(fi os.FileInfo) statEntry {
	st := fileStat(fi)
	st.Size = fi.Size()
	st.MtimeNs = fi.ModTime().UnixNano()
	st.Plan = chunkPlanVersion
	return st
}

// lookupFile returns the cached manifest entry for the file at abs if its
// stat is unchanged.
func (ix *Index) lookupFile(abs string, fi os.FileInfo) (manifest.File, bool) {
	if ix == nil {
		return manifest.File{}, false
	}
	var e statEntry
	found := false
	_ = ix.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(abs))
		if v == nil {
			return nil
		}
		var ok bool
		if e, ok = openStat(abs, v); !ok {
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
			v, err := sealStat(abs, e)
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
func (ix *Index) manifest(id object.ID) ([]byte, bool) {
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

func (ix *Index) putManifest(id object.ID, data []byte) {
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
	ETag string    `json:"etag"`
	Data []byte    `json:"data"`
	Sum  object.ID `json:"sum"` // SHA-256 of Data
}

func (ix *Index) catalogGet(reg string, oi backend.ObjectInfo) ([]byte, bool) {
	if ix == nil || oi.ETag == "" {
		return nil, false
	}
	var e catalogEntry
	ok := false
	_ = ix.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(catalogBucket(reg)); b != nil {
			if v := b.Get([]byte(oi.Key)); v != nil && json.Unmarshal(v, &e) == nil {
				ok = e.ETag == oi.ETag && !e.Sum.IsZero() && object.Hash(e.Data) == e.Sum
			}
		}
		return nil
	})
	return e.Data, ok
}

func (ix *Index) catalogPut(reg string, entries map[backend.ObjectInfo][]byte) {
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
			v, err := json.Marshal(catalogEntry{ETag: oi.ETag, Data: data, Sum: object.Hash(data)})
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
