package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// DefaultCacheSize is the default cap on the bytes only the per-machine
// content cache holds.
const DefaultCacheSize = 10 << 30

// ContentCache is the per-machine content cache: one folder of whole
// decoded files, by content, that every pull feeds and every pull reuses.
//
//   - A plain pull hard-links each file it wrote into the cache, from its
//     private build folder, each of its chunks checked against its ID as
//     it was written: while the pulled folder exists the entry costs no
//     space. A later pull reads chunks
//     from entries (found through the per-machine index, each read checked
//     against its chunk ID), so a pull of a checkpoint sharing blobs with an
//     earlier one downloads only the new blobs.
//   - `pull --link` materializes each file from an entry of its content
//     and mode class (a reflink, else a hard link, else a copy), building
//     the entry from chunks (the cache's, else the registry's) when there
//     is none. After a plain pull the entry is the plain pull's file: the
//     --link folder then shares its bytes (see docs/format.md).
//
// An entry is named <key>-<mode>-x1<hash>, in a subfolder named by the
// key's first two hex digits: key names the content (the SHA-256 of the
// file's digest and size), mode is the entry's permission bits when it was
// made, and hash the XXH3 content hash of its bytes (contentHash), taken
// when it entered the cache from bytes checked against their chunk IDs.
// Entries named by their key and mode alone have no hash: a plain pull
// makes them so (hashing every pulled file again cost a 1 GiB pull 0.4 s
// of CPU, for entries most of which are never linked), and entries named by
// their key alone were left by earlier versions. They are checked against
// the file's chunk IDs before their first use as a whole file, then renamed
// with their hash; their chunks are checked as every chunk is.
//
// Nothing is served unverified. A chunk read from an entry is checked
// against its ID. A whole entry, before every link or copy, is checked
// against its seal (seal.go): the identity of its inode (device, inode,
// size, mtime and ctime in ns) recorded when its bytes last matched its
// hash. Any write to the file, through any of its hard links, changes its
// mtime and ctime, and no user can set a ctime back, so an entry whose
// inode still matches its seal holds the bytes that were hashed; one that
// does not match is hashed again in full, and dropped when the hash
// differs. A seal is trusted for sealMaxAge at most (bit rot below the
// file system changes no time stamp).
//
// The folders are private to the user (mode 0700). The bytes only the
// cache holds (entries with one link) are capped; past the cap the oldest
// of them go first, by the time they became the cache's alone (their
// ctime).
type ContentCache struct {
	dir string
	max int64
}

// OpenContentCache uses dir (created if needed, private to the user) with
// a cap of maxBytes on what only the cache holds.
func OpenContentCache(dir string, maxBytes int64) (*ContentCache, error) {
	for _, sub := range []string{"tmp", "seals"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("cache %s: %w", dir, err)
		}
	}
	// A folder made by an earlier version may be open to others: close it.
	// Its subfolders need not change, nobody else can reach them now.
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm() != 0o700 {
		_ = os.Chmod(dir, 0o700)
	}
	return &ContentCache{dir: dir, max: maxBytes}, nil
}

// Dir is the cache's folder.
func (c *ContentCache) Dir() string { return c.dir }

// fileKey names a file's decoded content: its digest and size.
func fileKey(f *manifest.File) object.ID {
	return sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d", f.Digest, f.Size)))
}

// entry is a parsed entry name.
type entry struct {
	key      string
	perm     fs.FileMode // as named; -1 (all bits) when the name has none
	sum      [16]byte
	recorded bool // sum was recorded when the entry was made
	bare     bool // named by its key alone
}

func (e entry) String() string {
	switch {
	case e.bare:
		return e.key
	case !e.recorded:
		return fmt.Sprintf("%s-%03o", e.key, e.perm.Perm())
	}
	return fmt.Sprintf("%s-%03o-x1%s", e.key, e.perm.Perm(), hex.EncodeToString(e.sum[:]))
}

// modeClass is the mode class of a file of mode perm: its bits without
// write bits, plus owner read. A file is linked only from an entry of its
// class, so that a 0600 file never becomes readable by others through a
// link to an entry made for a 0644 one.
func modeClass(perm fs.FileMode) fs.FileMode { return perm.Perm()&^0o222 | 0o400 }

// parseEntry reads an entry name (ok false for a name ckpt does not make).
func parseEntry(name string) (e entry, ok bool) {
	parts := strings.Split(name, "-")
	if _, err := object.ParseID(parts[0]); err != nil || parts[0] != strings.ToLower(parts[0]) {
		return e, false
	}
	e.key = parts[0]
	if len(parts) == 1 {
		e.bare = true
		return e, true
	}
	if len(parts) > 3 || len(parts[1]) != 3 {
		return entry{}, false
	}
	m, err := strconv.ParseUint(parts[1], 8, 32)
	if err != nil || m > 0o777 {
		return entry{}, false
	}
	e.perm = fs.FileMode(m)
	if len(parts) == 2 {
		return e, true
	}
	h, found := strings.CutPrefix(parts[2], "x1")
	if !found || len(h) != 32 || strings.ToLower(h) != h {
		return entry{}, false
	}
	if _, err := hex.Decode(e.sum[:], []byte(h)); err != nil {
		return entry{}, false
	}
	e.recorded = true
	return e, true
}

// path is where the entry named name lies.
func (c *ContentCache) path(name string) string { return filepath.Join(c.shard(name), name) }

// shard is the subfolder of the entries whose names start like key.
func (c *ContentCache) shard(key string) string { return filepath.Join(c.dir, key[:2]) }

// entries lists the entries of content key, those with a hash first (one
// fast check), then the others.
func (c *ContentCache) entries(key string) []entry {
	names, err := readDirNames(c.shard(key))
	if err != nil {
		return nil
	}
	var out []entry
	for _, n := range names {
		if e, ok := parseEntry(n); ok && e.key == key {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].recorded && !out[j].recorded })
	return out
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = d.Close() }() // read-only
	return d.Readdirnames(-1)
}

// drop removes the entry e (damaged or unusable) and its seal: the
// cache's link only, never another link of the same file.
func (c *ContentCache) drop(e entry) {
	_ = os.Remove(c.path(e.String()))
	_ = os.Remove(c.sealPath(e))
}

// createTemp opens a private temporary file that commit later moves into
// place.
func (c *ContentCache) createTemp(key string) (*os.File, error) {
	return os.CreateTemp(filepath.Join(c.dir, "tmp"), key[:16]+"-*")
}

// commit moves the finished temporary file tmpName to the entry e and
// returns its path. An entry of the same name holds the same bytes when
// intact, and is replaced.
func (c *ContentCache) commit(tmpName string, e entry) (string, error) {
	p := c.path(e.String())
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		_ = os.Remove(tmpName) // best effort: tmp/ is cleared of what is an hour old
		return "", err
	}
	if err := os.Rename(tmpName, p); err != nil {
		_ = os.Remove(tmpName) // best effort: tmp/ is cleared of what is an hour old
		return "", err
	}
	return p, nil
}

// tmpMaxAge is how old a temporary file of the cache must be before it
// counts as left by a process that died (a live one writes to it).
const tmpMaxAge = time.Hour

// cacheFile is one regular file of the cache, seen by a scan.
type cacheFile struct {
	path  string
	name  string
	size  int64
	nlink uint64
	since time.Time // its ctime: when it last changed, was linked or unlinked
	entry bool      // named like an entry of its shard
}

// scan lists the files of the entry folders, without following links.
func (c *ContentCache) scan() []cacheFile {
	var files []cacheFile
	shards, err := readDirNames(c.dir)
	if err != nil {
		return nil
	}
	for _, s := range shards {
		if len(s) != 2 || !isLowerHex(s) {
			continue
		}
		names, err := readDirNames(filepath.Join(c.dir, s))
		if err != nil {
			continue
		}
		for _, n := range names {
			p := filepath.Join(c.dir, s, n)
			fi, err := os.Lstat(p)
			if err != nil || fi.IsDir() {
				continue
			}
			e, ok := parseEntry(n)
			files = append(files, cacheFile{path: p, name: n, size: fi.Size(), nlink: linkCount(fi), since: changeTime(fi),
				entry: ok && fi.Mode().IsRegular() && strings.HasPrefix(e.key, s)})
		}
	}
	return files
}

func isLowerHex(s string) bool {
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// evict keeps what only the cache holds (entries linked once) within the
// cap: past it, the oldest such entries (by when they became the cache's
// alone) are removed until 9/10 of the cap is left. Entries a pulled folder
// still links cost no space and stay. Files in the entry folders that are
// not entries, seals of entries that are gone, and temporary files older
// than tmpMaxAge (left by killed pulls) are removed.
func (c *ContentCache) evict() {
	if c == nil {
		return
	}
	removeOlder(filepath.Join(c.dir, "tmp"), tmpMaxAge)
	var only []cacheFile
	var total int64
	live := map[string]bool{}
	for _, f := range c.scan() {
		switch {
		case !f.entry:
			_ = os.Remove(f.path)
			continue
		case f.nlink <= 1:
			only = append(only, f)
			total += f.size
		}
		live[f.name] = true
	}
	if total > c.max {
		sort.Slice(only, func(i, j int) bool { return only[i].since.Before(only[j].since) })
		for _, f := range only {
			if total <= c.max*9/10 {
				break
			}
			if err := os.Remove(f.path); err == nil || errors.Is(err, fs.ErrNotExist) {
				total -= f.size
				delete(live, f.name)
			}
		}
	}
	seals, _ := readDirNames(filepath.Join(c.dir, "seals"))
	for _, n := range seals {
		if !live[n] {
			_ = os.Remove(filepath.Join(c.dir, "seals", n))
		}
	}
}

// removeOlder removes what in dir was last modified more than age ago.
func removeOlder(dir string, age time.Duration) {
	names, err := readDirNames(dir)
	if err != nil {
		return
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if fi, err := os.Lstat(p); err == nil && time.Since(fi.ModTime()) > age {
			_ = os.RemoveAll(p)
		}
	}
}

// Adopt takes over the folder old of an earlier ckpt's per-machine cache
// (pulled/: hard links of pulled files named by their key; files/: whole
// files for pull --link named <key>-<mode>-x1<hash>) and removes it: a
// cache is a hint, so whatever cannot be taken over is dropped. Regular
// files named like entries are moved in (a rename on the same file system:
// no bytes are copied) without a seal, so each is hashed in full, or
// checked against its chunk IDs when it has no hash, before its first use
// as a whole file. It returns how many entries it moved in. A missing old
// is no error.
func (c *ContentCache) Adopt(old string) (int, error) {
	if _, err := os.Lstat(old); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	moved := 0
	_ = filepath.WalkDir(old, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // whatever cannot be read goes with the folder
		}
		if d.IsDir() {
			if d.Name() == "tmp" {
				return filepath.SkipDir
			}
			return nil
		}
		e, ok := parseEntry(d.Name())
		if !ok || !d.Type().IsRegular() {
			return nil
		}
		dest := c.path(e.String())
		if os.MkdirAll(filepath.Dir(dest), 0o700) != nil {
			return nil
		}
		if _, err := os.Lstat(dest); errors.Is(err, fs.ErrNotExist) && os.Rename(p, dest) == nil {
			moved++
		}
		return nil
	})
	if err := os.RemoveAll(old); err != nil {
		return moved, fmt.Errorf("remove the old cache %s: %w", old, err)
	}
	return moved, nil
}

// DefaultCacheDir is $XDG_CACHE_HOME/ckpt, else ~/.cache/ckpt.
func DefaultCacheDir() (string, error) {
	p, err := DefaultIndexPath()
	if err != nil {
		return "", err
	}
	return filepath.Dir(p), nil
}
