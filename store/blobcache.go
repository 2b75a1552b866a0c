package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// DefaultCacheSize is the default cap of each per-machine disk cache.
const DefaultCacheSize = 10 << 30

// diskCache is a folder of files named by a 64-hex key, written atomically
// (tmp/ then rename), with least-recently-used eviction past a size cap.
type diskCache struct {
	dir string
	max int64

	mu    sync.Mutex
	size  int64
	sized bool
}

func newDiskCache(dir string, maxBytes int64) (*diskCache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	return &diskCache{dir: dir, max: maxBytes}, nil
}

func (c *diskCache) path(key string) string { return filepath.Join(c.dir, key[:2], key) }

// touch marks an entry as recently used.
func (c *diskCache) touch(p string) {
	now := time.Now()
	_ = os.Chtimes(p, now, now)
}

// createTemp opens a temporary file that commit later moves into place.
func (c *diskCache) createTemp(key string) (*os.File, error) {
	return os.CreateTemp(filepath.Join(c.dir, "tmp"), key[:16]+"-*")
}

// commit moves a finished temporary file to key and evicts if over the cap.
func (c *diskCache) commit(tmpName, key string, size int64) error {
	p := c.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		os.Remove(tmpName)
		return err
	}
	if err := os.Rename(tmpName, p); err != nil {
		os.Remove(tmpName)
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.sized {
		c.size, c.sized = c.scanSize(), true
	} else {
		c.size += size
	}
	if c.size > c.max {
		c.size = c.evict(c.max*9/10, p)
	}
	return nil
}

type cachedFile struct {
	path  string
	size  int64
	mtime time.Time
}

func (c *diskCache) list() []cachedFile {
	var files []cachedFile
	_ = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if d.Name() == "tmp" {
				return filepath.SkipDir
			}
			return nil
		}
		if info, err := d.Info(); err == nil {
			files = append(files, cachedFile{p, info.Size(), info.ModTime()})
		}
		return nil
	})
	return files
}

func (c *diskCache) scanSize() int64 {
	var n int64
	for _, f := range c.list() {
		n += f.size
	}
	return n
}

// evict removes least recently used files, never keep (the file just
// added), until the cache holds at most target bytes, and returns what it
// then holds.
func (c *diskCache) evict(target int64, keep string) int64 {
	files := c.list()
	sort.Slice(files, func(i, j int) bool { return files[i].mtime.Before(files[j].mtime) })
	var total int64
	for _, f := range files {
		total += f.size
	}
	for _, f := range files {
		if total <= target {
			break
		}
		if f.path == keep {
			continue
		}
		if err := os.Remove(f.path); err == nil || errors.Is(err, fs.ErrNotExist) {
			total -= f.size
		}
	}
	return total
}

// BlobCache keeps downloaded blob objects on local disk, as stored (so
// compressed weights take their compressed size), so that pulling a
// checkpoint that shares blobs with an earlier pull downloads only the new
// ones, and an interrupted pull resumes where it stopped. Entries are named
// by blob ID and decoded and checked against it on every read. It is a
// cache: deleting the folder loses nothing.
type BlobCache struct{ c *diskCache }

// DefaultCacheDir is $XDG_CACHE_HOME/ckpt, else ~/.cache/ckpt.
func DefaultCacheDir() (string, error) {
	p, err := DefaultIndexPath()
	if err != nil {
		return "", err
	}
	return filepath.Dir(p), nil
}

// OpenBlobCache uses dir (created if needed) with a cap of maxBytes.
func OpenBlobCache(dir string, maxBytes int64) (*BlobCache, error) {
	c, err := newDiskCache(dir, maxBytes)
	if err != nil {
		return nil, err
	}
	return &BlobCache{c}, nil
}

// get appends the cached content of id to dst, if present and intact.
func (b *BlobCache) get(id ID, dst []byte) ([]byte, bool) {
	if b == nil {
		return dst, false
	}
	p := b.c.path(id.String())
	obj, err := os.ReadFile(p)
	if err != nil {
		return dst, false
	}
	out, err := DecodeObject(dst, obj, id)
	if err != nil {
		os.Remove(p) // damaged: forget it, the registry has the truth
		return dst, false
	}
	b.c.touch(p)
	return out, true
}

// put stores the stored object of blob id, already checked by the caller.
func (b *BlobCache) put(id ID, obj []byte) {
	if b == nil || int64(len(obj)) > b.c.max {
		return
	}
	key := id.String()
	if _, err := os.Stat(b.c.path(key)); err == nil {
		return
	}
	tmp, err := b.c.createTemp(key)
	if err != nil {
		return
	}
	_, werr := tmp.Write(obj)
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return
	}
	_ = b.c.commit(tmp.Name(), key, int64(len(obj)))
}
