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

// DefaultBlobCacheSize is the default cap of the per-machine blob cache.
const DefaultBlobCacheSize = 10 << 30

// BlobCache keeps decoded blob contents on local disk, so that pulling a
// checkpoint that shares blobs with an earlier pull downloads only the new
// ones, and an interrupted pull resumes where it stopped. Files are named by
// their ID and checked against it on every read; the least recently used are
// evicted when the cache grows past its cap. It is a cache: deleting the
// folder loses nothing.
type BlobCache struct {
	dir string
	max int64

	mu    sync.Mutex
	size  int64
	sized bool
}

// DefaultBlobCacheDir is $XDG_CACHE_HOME/ckpt/blobs, else ~/.cache/ckpt/blobs.
func DefaultBlobCacheDir() (string, error) {
	p, err := DefaultIndexPath()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(p), "blobs"), nil
}

// OpenBlobCache uses dir (created if needed) with a cap of maxBytes.
func OpenBlobCache(dir string, maxBytes int64) (*BlobCache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("blob cache %s: %w", dir, err)
	}
	return &BlobCache{dir: dir, max: maxBytes}, nil
}

func (c *BlobCache) path(id ID) string {
	s := id.String()
	return filepath.Join(c.dir, s[:2], s)
}

// get appends the cached content of id to dst, if present and intact.
func (c *BlobCache) get(id ID, dst []byte) ([]byte, bool) {
	if c == nil {
		return dst, false
	}
	p := c.path(id)
	data, err := os.ReadFile(p)
	if err != nil {
		return dst, false
	}
	if Hash(data) != id {
		os.Remove(p) // damaged: forget it, the registry has the truth
		return dst, false
	}
	now := time.Now()
	_ = os.Chtimes(p, now, now) // recency for eviction
	return append(dst, data...), true
}

// put stores content under id (atomically) and evicts if over the cap.
func (c *BlobCache) put(id ID, content []byte) {
	if c == nil || int64(len(content)) > c.max {
		return
	}
	p := c.path(id)
	if _, err := os.Stat(p); err == nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), id.String()[:16]+"-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(content)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.MkdirAll(filepath.Dir(p), 0o755) != nil || os.Rename(tmp.Name(), p) != nil {
		os.Remove(tmp.Name())
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.sized {
		c.size = c.scanSize()
		c.sized = true
	} else {
		c.size += int64(len(content))
	}
	if c.size > c.max {
		c.size = c.evict(c.max*9/10, p)
	}
}

type cachedFile struct {
	path  string
	size  int64
	mtime time.Time
}

func (c *BlobCache) list() []cachedFile {
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

func (c *BlobCache) scanSize() int64 {
	var n int64
	for _, f := range c.list() {
		n += f.size
	}
	return n
}

// evict removes least recently used files, never keep (the file just
// added), until the cache holds at most target bytes, and returns what it
// then holds.
func (c *BlobCache) evict(target int64, keep string) int64 {
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
