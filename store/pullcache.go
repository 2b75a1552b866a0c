package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ckptdev/ckpt/store/object"
)

// The pull side of the content cache (ContentCache): every pull records in
// the per-machine index where the chunks of its files lie in the cache's
// entries, and every pull reads chunks from there before it downloads
// them. A plain pull feeds the cache with the files it wrote, by hard
// links: measured on a 1 GiB bf16 folder against MinIO, a blob cache that
// wrote every downloaded object to disk again made pulls 1.1x (1 GiB) to
// 1.8x (4 GiB) slower than rclone, all of it extra disk writes; hard links
// cost nothing. Where the cache is on another file system, files up to
// MaxChunkSize are copied in (config, tokenizer), larger ones are not
// cached.

var bucketChunks = []byte("pulled-chunks")

// encodeLocation is the index value of a chunk: the content key of an
// entry holding it (32 bytes), the chunk's offset and size in it.
func encodeLocation(key object.ID, off, size int64) []byte {
	v := append([]byte(nil), key[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(off))
	return binary.BigEndian.AppendUint64(v, uint64(size))
}

func decodeLocation(v []byte) (key object.ID, off, size int64, ok bool) {
	if len(v) != 48 {
		return key, 0, 0, false
	}
	copy(key[:], v[:32])
	return key, int64(binary.BigEndian.Uint64(v[32:40])), int64(binary.BigEndian.Uint64(v[40:48])), true
}

// cacheSource reads chunks from the content cache where the index says an
// entry holds them (blobSource).
type cacheSource struct {
	c  *ContentCache
	ix *Index
}

// readBlob appends chunk id, of size bytes, to dst from an entry of the
// content cache, if one holds it intact; else it fails with errNotHeld.
func (s cacheSource) readBlob(_ context.Context, id object.ID, size int64, dst []byte) ([]byte, error) {
	if out, ok := s.read(id, size, dst); ok {
		return out, nil
	}
	return nil, fmt.Errorf("blob %s in the content cache: %w", id, errNotHeld)
}

// read appends chunk id, of size bytes, to dst from an entry holding it
// intact (its bytes hash to id).
func (s cacheSource) read(id object.ID, size int64, dst []byte) ([]byte, bool) {
	var loc []byte
	_ = s.ix.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketChunks); b != nil {
			loc = append([]byte(nil), b.Get(id[:])...)
		}
		return nil
	})
	key, off, n, ok := decodeLocation(loc)
	if !ok || n != size || off < 0 {
		return dst, false // a location of another size is damaged: download instead
	}
	for _, e := range s.c.entries(key.String()) {
		f, err := openFileNoFollow(s.c.path(e.String()))
		if err != nil {
			continue
		}
		out := slices.Grow(dst, int(size))[:len(dst)+int(size)] // read over, not cleared first
		_, err = f.ReadAt(out[len(dst):], off)
		_ = f.Close() // read-only
		if err == nil && object.Hash(out[len(dst):]) == id {
			return out, true
		}
		// Edited or truncated since: try another entry, else download.
	}
	return dst, false
}

// remember records in the index where the chunks of files lie: in the
// entries of their content, for the files the cache holds. Failures only
// make the cache less useful.
func (c *ContentCache) remember(ix *Index, files []SourcedFile) {
	if c == nil || ix == nil {
		return
	}
	locs := map[object.ID][]byte{}
	for i := range files {
		f := &files[i]
		key := fileKey(&f.File)
		if len(f.Chunks) == 0 || len(c.entries(key.String())) == 0 {
			continue
		}
		for _, ch := range f.Chunks {
			locs[ch.ID] = encodeLocation(key, ch.Offset, ch.Size)
		}
	}
	// Most pulls repeat what the index knows: write (and sync) it only for
	// what it does not.
	_ = ix.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketChunks); b != nil {
			for id, v := range locs {
				if bytes.Equal(b.Get(id[:]), v) {
					delete(locs, id)
				}
			}
		}
		return nil
	})
	if len(locs) == 0 {
		return
	}
	_ = ix.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketChunks)
		if err != nil {
			return err
		}
		for id, v := range locs {
			if err := b.Put(id[:], v); err != nil {
				return err
			}
		}
		return nil
	})
}

// feedCache adds the files a plain pull just wrote into its build folder
// b (private, not yet renamed into place), each verified against its chunk
// IDs as it was written, to the content cache, where it holds no entry of
// the file's content and mode class yet: each is hard-linked in under its
// mode, as an entry without a content hash, sealed (its bytes are the ones
// checked against their chunk IDs as they were written); where a link cannot be made
// (another file system), a file up to MaxChunkSize is copied into a
// read-only, hashed and sealed entry instead. Failures only make the cache
// smaller.
func (op *pullOp) feedCache(ctx context.Context, b *buildDir, files []SourcedFile) {
	c := op.r.cache
	if c == nil {
		return
	}
	for i := range files {
		if ctx.Err() != nil {
			return
		}
		f := &files[i]
		h, err := openBuilt(b.dir, f.Path)
		if err != nil {
			continue
		}
		_ = c.feed(ctx, h, filepath.Join(b.path(), filepath.FromSlash(f.Path)), f)
		_ = h.Close() // read-only
	}
}

// openBuilt opens the regular file rel under root for reading, following
// no link on the way.
func openBuilt(root *os.File, rel string) (*os.File, error) {
	dir, name, err := openParentOf(root, rel, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = dir.Close() }() // a directory handle: nothing buffered
	h, err := openAt(dir, name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	if in, err := statFile(h); err != nil || in.kind != kindFile {
		_ = h.Close() // read-only
		return nil, fmt.Errorf("%s: %w (not a regular file)", rel, errUntrusted)
	}
	return h, nil
}

// feed adds the open file h, at path p, holding the verified content of f,
// to the cache, unless an entry of its content and mode class is there.
func (c *ContentCache) feed(ctx context.Context, h *os.File, p string, f *SourcedFile) error {
	in, err := statFile(h)
	if err != nil {
		return err
	}
	if in.size != f.Size {
		return fmt.Errorf("%s: %d bytes, want %d", p, in.size, f.Size)
	}
	key := fileKey(&f.File).String()
	for _, e := range c.entries(key) {
		if e.bare || modeClass(e.perm) == modeClass(in.perm) {
			return nil // one of its class is there: it is checked when used
		}
	}
	dest := filepath.Join(c.dir, "tmp", key[:16]+"-link-"+randomHex(8))
	if err := os.Link(p, dest); err != nil {
		if f.Size > object.MaxChunkSize {
			return err
		}
		return c.feedCopy(ctx, h, f, key, modeClass(in.perm))
	}
	// The link must be to the very file verified. It is named without a
	// content hash: hashing 1 GiB with XXH3 cost a pull 0.4 s of CPU (and
	// as much again to read it back) for an entry that may never be used
	// as a whole file. A link or copy from it checks it against the file's
	// chunk IDs first and names it with its hash then (openChecked); chunk
	// reads check every chunk against its ID anyway.
	fi, err := os.Lstat(dest)
	hi, herr := h.Stat()
	if err != nil || herr != nil || !os.SameFile(fi, hi) {
		_ = os.Remove(dest)
		return errEntryDamaged
	}
	// Its bytes are the ones checked as they were written: seal them, so
	// that a link from it needs no check while its inode is unchanged.
	st0, stamped := inodeStamp(h)
	e := entry{key: key, perm: in.perm}
	if _, err := c.commit(dest, e); err != nil {
		_ = os.Remove(dest)
		return err
	}
	if stamped {
		st1, ok := inodeStamp(h) // the rename may have moved its ctime
		if ok && st1.Ino == st0.Ino && st1.Size == st0.Size && st1.MtimeNs == st0.MtimeNs {
			_ = c.writeSeal(e, seal{stamp: st1, verified: time.Now()})
		}
	}
	return nil
}

// feedCopy copies the open file h, holding the verified content of f,
// into a new read-only entry of mode class class.
func (c *ContentCache) feedCopy(ctx context.Context, h *os.File, f *SourcedFile, key string, class fs.FileMode) error {
	tmp, err := c.createTemp(key)
	if err != nil {
		return err
	}
	defer func() { _ = tmp.Close() }() // its bytes are hashed through it before it is committed
	err = copyRange(tmp, h, f.Size)
	var sum [16]byte
	if err == nil {
		sum, err = contentHash(ctx, tmp, f.Size)
	}
	if err == nil {
		err = tmp.Chmod(class)
	}
	if err != nil {
		_ = os.Remove(tmp.Name()) // best effort: tmp/ is cleared of what is an hour old
		return err
	}
	e := entry{key: key, perm: class, sum: sum, recorded: true}
	if _, err := c.commit(tmp.Name(), e); err != nil {
		return err
	}
	if st, ok := inodeStamp(tmp); ok {
		_ = c.writeSeal(e, seal{stamp: st, verified: time.Now()})
	}
	return nil
}

// copyRange copies the first n bytes of src into dst.
func copyRange(dst, src *os.File, n int64) error {
	_, err := io.Copy(io.NewOffsetWriter(dst, 0), io.NewSectionReader(src, 0, n))
	return err
}
