package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/zeebo/xxh3"
	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/store/object"
)

// Linking pulled files from the content cache (ContentCache), and the
// seals that let a link skip hashing the entry again.
//
// Why a seal is a sound check (Linux, macOS): an entry's bytes were hashed
// and matched its name's hash (or, for an entry a plain pull made, without
// a hash, were checked against their chunk IDs as the pull wrote them, in
// its private build folder); right after, the seal records the inode's
// device, number, size, mtime and ctime (ns). Writing the file through any
// of its hard links (a pulled folder's, a --link folder's, the cache's
// own) changes the shared inode's mtime and ctime; so do truncating it,
// chmod, and restoring its mtime (utimes sets the ctime to now), and no
// user can set a ctime to a chosen value; a file replaced by another has
// another inode. So an entry whose inode still shows the sealed stamp holds
// the bytes that were hashed. On kernels with multigrain time stamps
// (Linux 6.13 and later) a change made after the stamp was read always
// gets a later ctime; on older ones, a change inside the same clock tick
// (a few ms) as the link that was sealed could keep both time stamps: a
// residual race only an edit made within milliseconds of a pull can hit.
// A seal does not see bit rot below the file system (no time stamp
// changes), so it is trusted for sealMaxAge, after which the entry is
// hashed again. Linking an entry changes its ctime: the seal is then
// renewed only if its mtime and size did not change meanwhile. Where the
// system has no such ctime (inodeStamp not ok), every entry is hashed in
// full before every use.

// sealMaxAge is how long a seal is trusted before its entry is hashed
// again, against bit rot that changes no time stamp.
const sealMaxAge = 24 * time.Hour

// stamp is what a seal records of an entry's inode.
type stamp struct {
	Dev, Ino         uint64
	Size             int64
	MtimeNs, CtimeNs int64
}

// seal is an entry's stamp when its bytes last matched its hash (an entry
// without one: the chunk IDs of its file, as a plain pull wrote them), and
// when that was.
type seal struct {
	stamp
	verified time.Time
}

const sealMagic = "ckpt-seal/1"

func (c *ContentCache) sealPath(e entry) string {
	return filepath.Join(c.dir, "seals", e.String())
}

// readSeal reads the seal of e; a missing or damaged one is an error (the
// entry is then hashed).
func (c *ContentCache) readSeal(e entry) (seal, error) {
	b, err := os.ReadFile(c.sealPath(e))
	if err != nil {
		return seal{}, err
	}
	s, ok := parseSeal(b)
	if !ok {
		return s, fmt.Errorf("seal of %s: unreadable", e)
	}
	return s, nil
}

// parseSeal reads a seal's one line (ok false for anything else).
func parseSeal(b []byte) (s seal, ok bool) {
	if len(b) > 200 {
		return s, false
	}
	var magic string
	var verified int64
	n, err := fmt.Sscanf(string(b), "%s %d %d %d %d %d %d\n", &magic, &s.Dev, &s.Ino, &s.Size, &s.MtimeNs, &s.CtimeNs, &verified)
	if err != nil || n != 7 || magic != sealMagic {
		return seal{}, false
	}
	s.verified = time.Unix(0, verified)
	return s, true
}

// formatSeal is the line parseSeal reads.
func formatSeal(s seal) string {
	return fmt.Sprintf("%s %d %d %d %d %d %d\n", sealMagic, s.Dev, s.Ino, s.Size, s.MtimeNs, s.CtimeNs, s.verified.UnixNano())
}

// writeSeal records s as the seal of e (atomically: a seal half written
// is unreadable, and the entry is then hashed).
func (c *ContentCache) writeSeal(e entry, s seal) error {
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "seal-*")
	if err != nil {
		return err
	}
	_, werr := tmp.WriteString(formatSeal(s))
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		_ = os.Remove(tmp.Name()) // best effort: tmp/ is cleared of what is an hour old
		return errors.Join(werr, cerr)
	}
	if err := os.Rename(tmp.Name(), c.sealPath(e)); err != nil {
		_ = os.Remove(tmp.Name()) // best effort: tmp/ is cleared of what is an hour old
		return err
	}
	return nil
}

// trusts tells whether the seal s vouches for an inode showing st now.
func (s seal) trusts(st stamp) bool {
	return s.stamp == st && time.Since(s.verified) < sealMaxAge && !s.verified.After(time.Now())
}

// LinkMethod says how a pulled file was materialized.
type LinkMethod string

const (
	LinkReflink  LinkMethod = "reflink"  // copy-on-write clone: the file is independent of the cache
	LinkHardlink LinkMethod = "hardlink" // hard link to the cache entry
	LinkCopy     LinkMethod = "copy"     // a plain copy (different file systems)
)

// hashSegment is the unit contentHash hashes in parallel.
const hashSegment = 16 << 20

// contentHash is the hash an entry is named by: XXH3-128 of the size and
// of the XXH3-64 of each 16 MiB segment of the first size bytes of f, the
// segments hashed in parallel.
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

// ErrNoCache is returned by a pull with PullOptions.Link on a registry
// opened without a ContentCache.
var ErrNoCache = errors.New("linking needs the per-machine content cache")

// errEntryDamaged marks a cache entry that no longer holds what its name
// and seal say.
var errEntryDamaged = errors.New("cache entry changed since it was made")

// errOtherClass marks an intact entry of another mode class.
var errOtherClass = errors.New("cache entry of another mode class")

// openChecked opens the entry e for f and checks it: a regular file of the
// user's, of f's size, of mode class class, whose inode still shows its
// seal, else whose bytes hash to its name's hash (or, without one, match
// f's chunk IDs: the entry is then renamed with its hash). It then seals
// the entry, and returns it open, with its (new) name and seal.
func (c *ContentCache) openChecked(ctx context.Context, e entry, f *SourcedFile, class fs.FileMode) (*os.File, entry, seal, error) {
	p := c.path(e.String())
	h, err := openFileNoFollow(p)
	if err != nil {
		return nil, e, seal{}, err
	}
	fail := func(err error) (*os.File, entry, seal, error) {
		_ = h.Close() // read-only
		return nil, e, seal{}, err
	}
	in, err := statFile(h)
	switch {
	case err != nil:
		return fail(err)
	case in.kind != kindFile, in.uid >= 0 && in.uid != currentUID(), in.size != f.Size:
		return fail(fmt.Errorf("%s: %w (type, owner or size)", p, errEntryDamaged))
	case class != 0 && modeClass(in.perm) != class:
		return fail(errOtherClass)
	}
	st0, stamped := inodeStamp(h)
	if stamped {
		if s, err := c.readSeal(e); err == nil && s.trusts(st0) {
			return h, e, s, nil
		}
	}
	if !e.recorded {
		if err := checkChunks(ctx, h, f); err != nil {
			return fail(err)
		}
	}
	sum, err := contentHash(ctx, h, f.Size)
	if err != nil {
		return fail(err)
	}
	if e.recorded && sum != e.sum {
		return fail(fmt.Errorf("%s: %w", p, errEntryDamaged))
	}
	if !e.recorded {
		ne := entry{key: e.key, perm: in.perm, sum: sum, recorded: true}
		if err := os.Rename(p, c.path(ne.String())); err != nil {
			return fail(err)
		}
		e = ne
	}
	s := seal{verified: time.Now()}
	if stamped {
		st1, ok := inodeStamp(h)
		if !ok || st1.Ino != st0.Ino || st1.Size != st0.Size || st1.MtimeNs != st0.MtimeNs {
			return fail(fmt.Errorf("%s: %w (written while it was checked)", p, errEntryDamaged))
		}
		s.stamp = st1
		_ = c.writeSeal(e, s)
	}
	return h, e, s, nil
}

// confirm checks, after a file was materialized from the open entry h
// sealed as s, that nothing wrote the entry meanwhile (its mtime and size
// are the sealed ones; a copy or reflink leaves even its ctime), and
// renews the seal for the ctime a hard link gave it.
func (c *ContentCache) confirm(h *os.File, e entry, s seal, m LinkMethod) error {
	st, ok := inodeStamp(h)
	if !ok || s.stamp == (stamp{}) {
		return nil // nothing to compare: the entry was hashed just now
	}
	if st.Ino != s.Ino || st.Size != s.Size || st.MtimeNs != s.MtimeNs || (m != LinkHardlink && st.CtimeNs != s.CtimeNs) {
		return fmt.Errorf("%s: %w (written while it was linked)", c.path(e.String()), errEntryDamaged)
	}
	if st != s.stamp {
		s.stamp = st
		_ = c.writeSeal(e, s)
	}
	return nil
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

// cachedEntry returns a checked entry for f of mode class class, open,
// with its name and seal: one already in the cache, else one built from
// chunks. Entries that fail the check are dropped.
func (op *pullOp) cachedEntry(ctx context.Context, c *ContentCache, f *SourcedFile, class fs.FileMode) (*os.File, entry, seal, error) {
	key := fileKey(&f.File).String()
	for _, e := range c.entries(key) {
		h, ne, s, err := c.openChecked(ctx, e, f, class)
		if err == nil {
			op.r.progressAdd(f.Size)
			return h, ne, s, nil
		}
		if ctx.Err() != nil {
			return nil, e, seal{}, ctx.Err()
		}
		if errors.Is(err, errEntryDamaged) {
			c.drop(e) // fetch the file again
		}
	}
	return op.buildEntry(ctx, c, f, key, class)
}

// buildEntry writes every chunk of f (verified; from the cache's entries
// where the index knows them, else the registry) into a new read-only
// entry of content key in mode class, hashes and seals it, and returns it
// open, with its name and seal.
func (op *pullOp) buildEntry(ctx context.Context, c *ContentCache, f *SourcedFile, key string, class fs.FileMode) (*os.File, entry, seal, error) {
	tmp, err := c.createTemp(key)
	if err != nil {
		return nil, entry{}, seal{}, err
	}
	fail := func(err error) (*os.File, entry, seal, error) {
		_ = tmp.Close()           // giving up on it: err is the one to report
		_ = os.Remove(tmp.Name()) // best effort: tmp/ is cleared of what is an hour old
		return nil, entry{}, seal{}, err
	}
	if err := op.writeChunks(ctx, tmp, f); err != nil {
		return fail(err)
	}
	sum, err := contentHash(ctx, tmp, f.Size)
	if err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(class); err != nil {
		return fail(err)
	}
	e := entry{key: key, perm: class, sum: sum, recorded: true}
	if _, err := c.commit(tmp.Name(), e); err != nil {
		_ = tmp.Close() // synced above; err is the one to report
		return nil, e, seal{}, err
	}
	s := seal{verified: time.Now()}
	if st, ok := inodeStamp(tmp); ok {
		s.stamp = st
		_ = c.writeSeal(e, s)
	}
	return tmp, e, s, nil
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

// materialize makes rel under root from the checked entry e (at path
// entry): a reflink, else a hard link, else a copy. Reflinks and copies get
// mode perm; a hard link has the entry's mode (of the same mode class).
func materialize(e *os.File, entry string, root *os.File, rel string, perm fs.FileMode, size int64) (LinkMethod, error) {
	dir, name, err := openParentOf(root, rel, true)
	if err != nil {
		return "", err
	}
	defer func() { _ = dir.Close() }() // a directory handle: nothing buffered
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
		_ = removeAt(dir, name) // best effort: the build folder goes when the pull fails
		return err
	}
	return nil
}

// unmaterialize removes rel under root again (its entry changed while it
// was linked).
func unmaterialize(root *os.File, rel string) error {
	dir, name, err := openParentOf(root, rel, false)
	if err != nil {
		return err
	}
	defer func() { _ = dir.Close() }() // a directory handle: nothing buffered
	return removeAt(dir, name)
}

// linkFiles materializes files under root from the content cache, each
// entry checked (its seal, else its hash) just before it is linked, and
// counts the methods used. Files get their recorded mode less the umask;
// hard links get the mode of their entry, of the same mode class.
func (op *pullOp) linkFiles(ctx context.Context, root *os.File, files []SourcedFile) (map[LinkMethod]int, error) {
	r := op.r
	c := r.cache
	if c == nil {
		return nil, ErrNoCache
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
			m, err := op.linkFile(gctx, c, root, f)
			if err != nil {
				return err
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

// linkFile materializes f under root from a checked entry; when the entry
// is written while it is linked, the file is removed, the entry dropped,
// and the file linked from another entry (in the end, one built from the
// registry).
func (op *pullOp) linkFile(ctx context.Context, c *ContentCache, root *os.File, f *SourcedFile) (LinkMethod, error) {
	perm := fs.FileMode(f.Mode).Perm() &^ op.umask
	for attempt := 0; ; attempt++ {
		h, e, s, err := op.cachedEntry(ctx, c, f, modeClass(perm))
		if err != nil {
			return "", err
		}
		m, err := materialize(h, c.path(e.String()), root, f.Path, perm, f.Size)
		if err == nil {
			err = c.confirm(h, e, s, m)
			if err != nil {
				if rerr := unmaterialize(root, f.Path); rerr != nil {
					err = rerr
				} else {
					c.drop(e)
				}
			}
		}
		_ = h.Close() // read-only
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, errEntryDamaged) || attempt >= 2 {
			return "", fmt.Errorf("%s: %w", f.Path, err)
		}
	}
}
