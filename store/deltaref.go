package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	bolt "go.etcd.io/bbolt"

	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// Where a delta's reference is read from. Coding a chunk as a delta (push)
// or decoding a delta blob (pull) needs the reference's content, which is
// usually on this machine already: a push of the next checkpoint of a run
// follows the push of the previous one from the same machine, whose folder
// is still there, and a pull of the newest checkpoint follows a pull of an
// earlier one, whose files the content cache holds. So the reference is
// read, in this order, from
//
//  1. (push) the folder an earlier version of the push's references was
//     pushed from, where its record names this host: a file the stat cache
//     still knows, unchanged, with the file's digest, at the chunk's
//     offset;
//  2. the content cache of earlier pulls (the pulled-chunks index);
//  3. the registry.
//
// A cache is a hint, never a verdict: a push uses bytes read from 1 or 2
// only when their SHA-256 is the reference's ID, and anything else falls
// back to the next source. A pull decodes the delta against the content
// cache's bytes and keeps the result only when it hashes to the delta's
// own ID (which a wrong reference cannot give), else it decodes again
// against the registry's reference. A push that reads a reference locally
// still reads the reference's header from the registry (a few bytes): the
// reference must be there under its own key (not only as a rescue copy),
// and must not itself be a delta (depth 1).

// localChunk is where a chunk of a file pushed from this machine lies.
type localChunk struct {
	abs       string
	off, size int64
}

// localChunks is the index of the chunks of earlier pushes' folders that
// are still on this machine, unchanged (step 1 above). It is built before
// the push's workers start and only read by them.
type localChunks struct {
	at map[object.ID]localChunk
}

// sourceFolder returns the folder a record was pushed from, when it was
// pushed from this host.
func sourceFolder(rec *refs.Record) (string, bool) {
	host, dir, ok := strings.Cut(rec.Source, ":")
	if !ok || host == "" || !filepath.IsAbs(dir) {
		return "", false
	}
	if me, err := os.Hostname(); err != nil || me != host {
		return "", false
	}
	return dir, true
}

// addFolder indexes the chunks of manifest m's files as they lie in dir,
// the folder m was pushed from, for the files the stat cache says are
// unchanged since they were pushed with the content m records.
func (l *localChunks) addFolder(ix *Index, dir string, m *manifest.Manifest) {
	if ix == nil {
		return
	}
	for i := range m.Files {
		f := &m.Files[i]
		if len(f.Chunks) == 0 {
			continue
		}
		rel := filepath.FromSlash(f.Path)
		if !filepath.IsLocal(rel) {
			continue
		}
		abs := filepath.Join(dir, rel)
		fi, err := os.Stat(abs)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		cached, ok := ix.lookupFile(abs, fi)
		if !ok || cached.Digest != f.Digest || cached.Size != f.Size {
			continue
		}
		if l.at == nil {
			l.at = map[object.ID]localChunk{}
		}
		for _, c := range cached.Chunks {
			l.at[c.ID] = localChunk{abs: abs, off: c.Offset, size: c.Size}
		}
	}
}

// read appends chunk id of size bytes to dst from the local file that
// holds it, if its bytes there hash to id.
func (l *localChunks) read(id object.ID, size int64, dst []byte) ([]byte, bool) {
	if l == nil {
		return dst, false
	}
	loc, ok := l.at[id]
	if !ok || loc.size != size {
		return dst, false
	}
	out, err := readLocalChunk(loc, dst)
	if err != nil || object.Hash(out[len(dst):]) != id {
		return dst, false // changed since (or damaged): the registry has it
	}
	return out, true
}

// readLocalChunk appends the bytes of loc to dst. The file must be a
// regular file (opened without blocking, so a FIFO put in its place cannot
// hang the push).
func readLocalChunk(loc localChunk, dst []byte) ([]byte, error) {
	f, err := os.OpenFile(loc.abs, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read-only
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() < loc.off+loc.size {
		return nil, fmt.Errorf("%s: not a regular file of at least %d bytes", loc.abs, loc.off+loc.size)
	}
	out := slices.Grow(dst, int(loc.size))[:len(dst)+int(loc.size)] // read over, not cleared first
	if _, err := f.ReadAt(out[len(dst):], loc.off); err != nil {
		return nil, err
	}
	return out, nil
}

// localReferences indexes the local chunks of the records a push codes
// against (prev and base), where they were pushed from this host.
func (r *Registry) localReferences(recs []*refs.Record, manifests []*manifest.Manifest) *localChunks {
	l := &localChunks{}
	for i, rec := range recs {
		if rec == nil || manifests[i] == nil {
			continue
		}
		if dir, ok := sourceFolder(rec); ok {
			l.addFolder(r.index, dir, manifests[i])
		}
	}
	return l
}

// cachedReference appends reference id of size bytes to dst from the
// content cache of earlier pulls, if an entry holds it intact.
func (r *Registry) cachedReference(id object.ID, size int64, dst []byte) ([]byte, bool) {
	if r.cache == nil || r.index == nil {
		return dst, false
	}
	return cacheSource{r.cache, r.index}.read(id, size, dst)
}

// pushReference reads candidate k, a reference of size bytes for a delta a
// push codes (into dst): from the folder of an earlier push or the content
// cache when they hold it intact, else from the registry (readKeyframe: the
// blob itself, never its rescue copy). Read locally, the reference is still
// checked to exist in the registry, under its own key, as a blob of size
// bytes that is no delta: by the header keyframesFor read, else by reading
// it now.
func (op *pushOp) pushReference(ctx context.Context, k refCandidate, size int64, dst []byte) ([]byte, error) {
	r := op.r
	var local *localChunks
	if op.deltas != nil {
		local = op.deltas.local
	}
	out, ok := local.read(k.id, size, dst)
	if !ok {
		out, ok = r.cachedReference(k.id, size, dst)
	}
	if !ok {
		return r.readKeyframe(ctx, k.id, size, dst)
	}
	var h object.Header
	var err error
	if k.header != nil {
		h = *k.header
	} else {
		h, _, err = r.blobHeaderRef(ctx, k.id)
	}
	if err == nil {
		err = object.Exactly(size).Check(h.ContentLen)
	}
	if err == nil && h.Codec == object.CodecDelta {
		err = fmt.Errorf("%w: %w", object.ErrCorrupt, errReferenceIsDelta)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", object.BlobKey(k.id), err)
	}
	return out, nil
}

// cachedReferenceBytes appends to dst the size bytes the content cache
// holds where the pulled-chunks index says chunk id lies, without checking
// them: a pull decodes a delta against them and checks the content's ID,
// which holds only if they are the reference's bytes (readDelta), so
// hashing them first would only double the work.
func (r *Registry) cachedReferenceBytes(id object.ID, size int64, dst []byte) ([]byte, bool) {
	if r.cache == nil || r.index == nil {
		return dst, false
	}
	var loc []byte
	_ = r.index.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketChunks); b != nil {
			loc = append([]byte(nil), b.Get(id[:])...)
		}
		return nil
	})
	key, off, n, ok := decodeLocation(loc)
	if !ok || n != size || off < 0 {
		return dst, false
	}
	for _, e := range r.cache.entries(key.String()) {
		f, err := openFileNoFollow(r.cache.path(e.String()))
		if err != nil {
			continue
		}
		out := slices.Grow(dst, int(size))[:len(dst)+int(size)] // read over, not cleared first
		_, err = f.ReadAt(out[len(dst):], off)
		_ = f.Close() // read-only
		if err == nil {
			return out, true
		}
	}
	return dst, false
}

// baseRecord is the record of base, for its source folder; nil when it
// cannot be read.
func (r *Registry) baseRecord(ctx context.Context, base *refs.BaseRef) *refs.Record {
	c, err := r.Catalog(ctx, base.Name)
	if err != nil {
		return nil
	}
	for i, rec := range c.Records[base.Name] {
		if rec.Version == base.Version && rec.Manifest == base.Manifest {
			return &c.Records[base.Name][i]
		}
	}
	return nil
}

// newPooledBudget is a memory budget whose grants are made of pooled
// buffers only (deltaBudget): a grant of several of them is no large
// object, so it leaves the transfer budget's free list alone.
func newPooledBudget(size int64) *memBudget {
	b := newMemBudget(size)
	b.pooled = true
	return b
}
