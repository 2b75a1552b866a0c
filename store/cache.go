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

// diskCache is a folder of files named by a 64-hex key (and what follows
// it), in subfolders named by the key's first two digits, written
// atomically (tmp/ then rename), with least-recently-used eviction past a
// size cap. Its folders are private to the user (mode 0700): they hold
// users' models.
type diskCache struct {
	dir string
	max int64

	mu    sync.Mutex
	size  int64
	sized bool
}

func newDiskCache(dir string, maxBytes int64) (*diskCache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	// A cache made by an earlier version may be open to others: close it.
	// Its subfolders need not change, nobody else can reach them now.
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm() != 0o700 {
		_ = os.Chmod(dir, 0o700)
	}
	return &diskCache{dir: dir, max: maxBytes}, nil
}

// path is where the entry named name (a key, or a key and more) lies.
func (c *diskCache) path(name string) string { return filepath.Join(c.shard(name), name) }

// shard is the subfolder of the entries whose names start like key.
func (c *diskCache) shard(key string) string { return filepath.Join(c.dir, key[:2]) }

// touch marks an entry as recently used.
func (c *diskCache) touch(p string) {
	now := time.Now()
	_ = os.Chtimes(p, now, now)
}

// createTemp opens a temporary file that commit later moves into place.
func (c *diskCache) createTemp(key string) (*os.File, error) {
	return os.CreateTemp(filepath.Join(c.dir, "tmp"), key[:16]+"-*")
}

// commit moves a finished temporary file to the entry name and evicts if
// over the cap.
func (c *diskCache) commit(tmpName, name string, size int64) error {
	p := c.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
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

// DefaultCacheDir is $XDG_CACHE_HOME/ckpt, else ~/.cache/ckpt.
func DefaultCacheDir() (string, error) {
	p, err := DefaultIndexPath()
	if err != nil {
		return "", err
	}
	return filepath.Dir(p), nil
}
