package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/zeebo/xxh3"
	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// FileCache keeps whole decoded files on local disk, read-only, so that
// `pull --link` can materialize a folder by reflinking or hard-linking them
// instead of copying. Blobs cannot be linked directly: a weights file is
// many chunks, and most are compressed.
//
// An entry is named <key>-<mode>-x1<hash>: key names the content (the
// file's digest and size), mode is the entry's permission bits and hash
// the content hash recorded when the entry was built (contentHash). A hard
// link shares the entry's mode, so each mode class has its own entry: the
// file's recorded mode less the umask, without write bits (hard links are
// read-only), so that a 0600 file never becomes readable by others through
// a link to an entry made for a 0644 one. Reflinks and copies get the exact
// mode.
//
// A hard link shares the entry's bytes with the pulled folder, and a user
// can chmod u+w and edit it in place; a disk can flip a bit. So every entry
// is checked before every link: its type, owner, mode and size, and the
// content hash of all its bytes against its name (the record survives the
// index being deleted). An entry that fails is dropped and the file fetched
// from the registry again. Entries named by their key alone were made by
// earlier versions (mode 0444, no record): they are checked against their
// chunk IDs once and renamed with their record.
type FileCache struct{ c *diskCache }

// OpenFileCache uses dir (created if needed, private to the user) with a
// cap of maxBytes.
func OpenFileCache(dir string, maxBytes int64) (*FileCache, error) {
	c, err := newDiskCache(dir, maxBytes)
	if err != nil {
		return nil, err
	}
	return &FileCache{c}, nil
}

// fileKey names a file's decoded content: its digest and size.
func fileKey(f *manifest.File) object.ID {
	return sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d", f.Digest, f.Size)))
}

// LinkMethod says how a pulled file was materialized.
type LinkMethod string

const (
	LinkReflink  LinkMethod = "reflink"  // copy-on-write clone: the file is independent of the cache
	LinkHardlink LinkMethod = "hardlink" // read-only hard link to the cache entry
	LinkCopy     LinkMethod = "copy"     // a plain copy (different file systems)
)

// hashSegment is the unit contentHash hashes in parallel.
const hashSegment = 16 << 20

// contentHash is the record an entry is checked against: XXH3-128 of the
// size and of the XXH3-64 of each 16 MiB segment of the first size bytes
// of f, the segments hashed in parallel.
func contentHash(ctx context.Context, f *os.File, size int64) ([16]byte, error) {
	n := (size + hashSegment - 1) / hashSegment
	sums := make([]byte, 8+8*n)
	binary.LittleEndian.PutUint64(sums, uint64(size))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range n {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			off := i * hashSegment
			sum, err := hashRange(f, off, min(hashSegment, size-off))
			if err != nil {
				return err
			}
			binary.LittleEndian.PutUint64(sums[8+8*i:], sum)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return [16]byte{}, err
	}
	return xxh3.Hash128(sums).Bytes(), nil
}

// hashRead returns the XXH3-64 of the n bytes of f from off, by reads.
func hashRead(f *os.File, off, n int64) (uint64, error) {
	h := xxh3.New()
	bp := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(bp)
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, off, n), *bp); err != nil {
		return 0, err
	}
	return h.Sum64(), nil
}

var hashBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// entryMode is the mode of the cache entry a file of mode perm is linked
// from: without write bits, and readable by its owner.
func entryMode(perm fs.FileMode) fs.FileMode { return perm.Perm()&^0o222 | 0o400 }

// entryName names the entry of content key with mode perm and record sum.
func entryName(key string, perm fs.FileMode, sum [16]byte) string {
	return fmt.Sprintf("%s-%03o-x1%s", key, perm.Perm(), hex.EncodeToString(sum[:]))
}

// parseEntryName reads an entry name: its key, mode and record (ok false
// for a name ckpt does not make). Entries of earlier versions are named by
// the key alone: mode 0444, no record.
func parseEntryName(name string) (key string, perm fs.FileMode, sum [16]byte, recorded, ok bool) {
	if _, err := object.ParseID(name); err == nil {
		return name, 0o444, sum, false, true
	}
	parts := strings.Split(name, "-")
	if len(parts) != 3 || len(parts[1]) != 3 || !strings.HasPrefix(parts[2], "x1") {
		return "", 0, sum, false, false
	}
	if _, err := object.ParseID(parts[0]); err != nil {
		return "", 0, sum, false, false
	}
	m, err := strconv.ParseUint(parts[1], 8, 32)
	if err != nil {
		return "", 0, sum, false, false
	}
	h := parts[2][2:]
	if len(h) != 32 || strings.ToLower(h) != h {
		return "", 0, sum, false, false
	}
	if _, err := hex.Decode(sum[:], []byte(h)); err != nil {
		return "", 0, sum, false, false
	}
	return parts[0], fs.FileMode(m), sum, true, true
}

// candidates lists the entries that may hold content key in mode perm.
func (fc *FileCache) candidates(key string, perm fs.FileMode) []string {
	entries, err := os.ReadDir(fc.c.shard(key))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if k, m, _, _, ok := parseEntryName(e.Name()); ok && k == key && m == perm {
			out = append(out, e.Name())
		}
	}
	return out
}

// ErrNoFileCache is returned by a pull with PullOptions.Link on a registry
// opened without a FileCache.
var ErrNoFileCache = errors.New("linking needs the per-machine file cache")

// errEntryDamaged marks a cache entry that no longer holds what its name
// and record say.
var errEntryDamaged = errors.New("cache entry changed since it was made")

// openVerified opens the entry name for f in mode perm and checks it: a
// regular file of the user's, of that mode and size, whose bytes match its
// record (or, without one, the file's chunk IDs; the record is then
// written into its name). It returns the open entry and its path.
func openVerified(ctx context.Context, fc *FileCache, f *SourcedFile, name string, perm fs.FileMode) (*os.File, string, error) {
	_, _, sum, recorded, _ := parseEntryName(name)
	p := fc.c.path(name)
	e, err := openFileNoFollow(p)
	if err != nil {
		return nil, "", err
	}
	fail := func(err error) (*os.File, string, error) {
		e.Close()
		return nil, "", err
	}
	in, err := statFile(e)
	switch {
	case err != nil:
		return fail(err)
	case in.kind != kindFile, in.uid >= 0 && in.uid != currentUID(), in.perm != perm, in.size != f.Size:
		return fail(fmt.Errorf("%s: %w (type, owner, mode or size)", p, errEntryDamaged))
	}
	if !recorded {
		if err := checkChunks(ctx, e, f); err != nil {
			return fail(err)
		}
	}
	got, err := contentHash(ctx, e, f.Size)
	if err != nil {
		return fail(err)
	}
	if recorded {
		if got != sum {
			return fail(fmt.Errorf("%s: %w", p, errEntryDamaged))
		}
		return e, p, nil
	}
	np := fc.c.path(entryName(name, perm, got))
	if err := os.Rename(p, np); err != nil {
		return fail(err)
	}
	return e, np, nil
}

// checkChunks checks every chunk of f in the open entry e against its ID.
// Each read holds the chunk's memory from the transfer budget.
func checkChunks(ctx context.Context, e *os.File, f *SourcedFile) error {
	for _, c := range f.Chunks {
		if c.Size > object.MaxBlobContent || c.Offset < 0 || c.Offset+c.Size > f.Size {
			return fmt.Errorf("%s: chunk %s at %d (%d bytes) outside the file", f.Path, c.ID, c.Offset, c.Size)
		}
		l, err := leaseChunk(ctx, c.Size)
		if err != nil {
			return err
		}
		b := l.buf()[:c.Size]
		_, err = e.ReadAt(b, c.Offset)
		ok := err == nil && object.Hash(b) == c.ID
		l.done()
		if !ok {
			return fmt.Errorf("%s: %w (chunk at %d)", e.Name(), errEntryDamaged, c.Offset)
		}
	}
	return nil
}

// cachedEntry returns a verified entry for f in mode perm, open, and its
// path: one already in the cache, else one built from the registry. Entries
// that fail the check are dropped.
func (op *pullOp) cachedEntry(ctx context.Context, fc *FileCache, f *SourcedFile, perm fs.FileMode) (*os.File, string, error) {
	r := op.r
	key := fileKey(&f.File).String()
	for _, name := range fc.candidates(key, perm) {
		e, p, err := openVerified(ctx, fc, f, name, perm)
		if err == nil {
			fc.c.touch(p)
			r.progressAdd(f.Size)
			return e, p, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		os.Remove(fc.c.path(name)) // damaged or unusable: fetch the file again
	}
	return op.buildEntry(ctx, fc, f, key, perm)
}

// buildEntry fetches and verifies every chunk of f into a new entry of
// content key in mode perm, records its content hash in its name, and
// returns it open, with its path.
func (op *pullOp) buildEntry(ctx context.Context, fc *FileCache, f *SourcedFile, key string, perm fs.FileMode) (*os.File, string, error) {
	tmp, err := fc.c.createTemp(key)
	if err != nil {
		return nil, "", err
	}
	err = op.writeChunks(ctx, tmp, f)
	var sum [16]byte
	if err == nil {
		sum, err = contentHash(ctx, tmp, f.Size)
	}
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, "", err
	}
	name := entryName(key, perm, sum)
	if err := fc.c.commit(tmp.Name(), name, f.Size); err != nil {
		tmp.Close()
		return nil, "", err
	}
	return tmp, fc.c.path(name), nil
}

// writeChunks writes every chunk of f into w at its offset, verified.
func (op *pullOp) writeChunks(ctx context.Context, w *os.File, f *SourcedFile) error {
	r := op.r
	if err := w.Truncate(f.Size); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, r.workers/2))
	for _, c := range f.Chunks {
		g.Go(func() error { return op.writeChunk(gctx, w, f, c) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return w.Sync()
}

// materialize makes rel under root from the verified entry e (at path
// entry): a reflink, else a hard link, else a copy. Reflinks and copies get
// mode perm; a hard link has the entry's mode.
func materialize(e *os.File, entry string, root *os.File, rel string, perm fs.FileMode, size int64) (LinkMethod, error) {
	dir, name, err := openParentOf(root, rel, true)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	if err := createFrom(dir, name, perm, func(out *os.File) error { return cloneFile(out, e) }); err == nil {
		return LinkReflink, nil
	}
	if err := linkAt(entry, dir, name); err == nil {
		// The link must be to the very file just checked.
		want, err1 := statFile(e)
		got, err2 := lstatAt(dir, name)
		if err1 == nil && err2 == nil && want.dev == got.dev && want.ino == got.ino {
			return LinkHardlink, nil
		}
		if err := removeAt(dir, name); err != nil {
			return "", err
		}
	}
	err = createFrom(dir, name, perm, func(out *os.File) error {
		if _, err := io.Copy(out, io.NewSectionReader(e, 0, size)); err != nil {
			return err
		}
		return out.Sync()
	})
	if err != nil {
		return "", err
	}
	return LinkCopy, nil
}

// createFrom creates name in dir (which must not exist), fills it, and
// gives it mode perm exactly; it removes it again if filling fails.
func createFrom(dir *os.File, name string, perm fs.FileMode, fill func(out *os.File) error) error {
	out, err := openAt(dir, name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = fill(out)
	if err == nil {
		err = out.Chmod(perm)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		removeAt(dir, name)
		return err
	}
	return nil
}

// linkFiles materializes files under root from the file cache, each
// checked just before it is linked, and counts the methods used. Files get
// their recorded mode less the umask (hard links: without write bits).
func (op *pullOp) linkFiles(ctx context.Context, root *os.File, fc *FileCache, files []SourcedFile) (map[LinkMethod]int, error) {
	r := op.r
	if fc == nil {
		return nil, ErrNoFileCache
	}
	var total int64
	for _, f := range files {
		if _, err := targetPath(root.Name(), f.Path); err != nil {
			return nil, err
		}
		total += f.Size
	}
	r.progressStart("pull", total)
	defer r.progressFinish()
	var mu sync.Mutex
	methods := map[LinkMethod]int{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, r.workers/2))
	for i := range files {
		f := &files[i]
		g.Go(func() error {
			perm := fs.FileMode(f.Mode).Perm() &^ op.umask
			e, p, err := op.cachedEntry(gctx, fc, f, entryMode(perm))
			if err != nil {
				return err
			}
			defer e.Close()
			m, err := materialize(e, p, root, f.Path, perm, f.Size)
			if err != nil {
				return fmt.Errorf("%s: %w", f.Path, err)
			}
			mu.Lock()
			methods[m]++
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return methods, nil
}
