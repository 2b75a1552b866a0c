package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ckptdev/ckpt/store/object"
)

// PullCache lets a pull read chunks from the files of earlier pulls on this
// machine instead of downloading them, at no cost in disk writes: after a
// pull, each pulled file is hard-linked into the cache folder (named by the
// file's digest and size), and the index records where each of its chunks
// lies. A second pull of a checkpoint that shares blobs with an earlier one
// (config, tokenizer, frozen tensors) then downloads only the new blobs.
//
// The cache shares inodes with the pulled folders, so a user who edits a
// pulled file in place edits the cache entry too: every read is checked
// against the chunk's ID, and a mismatch only makes the chunk download
// again. Entries only the cache still holds (their pulled folder deleted)
// count against the size cap and are evicted oldest first. Where the target
// is on another file system than the cache, files up to MaxChunkSize are
// copied in instead (config and tokenizer), larger ones are not cached.
//
// Measured on a 1 GiB bf16 folder against MinIO: a blob cache that wrote
// every downloaded object to disk again made pulls 1.1x (1 GiB) to 1.8x
// (4 GiB) slower than rclone, all of it extra disk writes; links cost
// nothing.
//
// A PullCache is a blobSource; a Registry binds it to its Index (Open), where
// it records the chunks' locations.
type PullCache struct {
	c  *diskCache
	ix *Index
}

// OpenPullCache uses dir (created if needed) with a cap of maxBytes on the
// data only the cache holds.
func OpenPullCache(dir string, maxBytes int64) (*PullCache, error) {
	c, err := newDiskCache(dir, maxBytes)
	if err != nil {
		return nil, err
	}
	return &PullCache{c: c}, nil
}

// withIndex returns p bound to the index ix (nil p stays nil).
func (p *PullCache) withIndex(ix *Index) *PullCache {
	if p == nil {
		return nil
	}
	return &PullCache{c: p.c, ix: ix}
}

var bucketChunks = []byte("pulled-chunks")

// chunkLocation is the index value: the cache entry's key (32 bytes), the
// chunk's offset and size in it.
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

// readBlob appends chunk id, of size bytes, to dst from an earlier pull's
// file, if one still holds it intact; else it fails with errNotHeld
// (blobSource).
func (p *PullCache) readBlob(_ context.Context, id object.ID, size int64, dst []byte) ([]byte, error) {
	out, ok := p.read(id, size, dst)
	if !ok {
		return nil, fmt.Errorf("blob %s in the pull cache: %w", id, errNotHeld)
	}
	return out, nil
}

// read appends chunk id, of size bytes, to dst from an earlier pull's file,
// if one still holds it intact.
func (p *PullCache) read(id object.ID, size int64, dst []byte) ([]byte, bool) {
	if p == nil || p.ix == nil {
		return dst, false
	}
	ix := p.ix
	var loc []byte
	_ = ix.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketChunks); b != nil {
			loc = append([]byte(nil), b.Get(id[:])...)
		}
		return nil
	})
	key, off, n, ok := decodeLocation(loc)
	if !ok || n != size {
		return dst, false // a location of another size is damaged: download instead
	}
	f, err := openFileNoFollow(p.c.path(key.String()))
	if err != nil {
		return dst, false
	}
	defer f.Close()
	out := append(dst, make([]byte, size)...)
	if _, err := f.ReadAt(out[len(dst):], off); err != nil || object.Hash(out[len(dst):]) != id {
		return dst, false // edited or truncated since: download instead
	}
	return out, true
}

// remember links the files just pulled into root into the cache and
// records where their chunks are. Failures only make the cache smaller.
func (p *PullCache) remember(root string, files []SourcedFile) {
	if p == nil || p.ix == nil {
		return
	}
	ix := p.ix
	locs := map[object.ID][]byte{}
	for i := range files {
		f := &files[i]
		if len(f.Chunks) == 0 {
			continue
		}
		key := fileKey(&f.File)
		entry := p.c.path(key.String())
		if _, err := os.Stat(entry); err != nil {
			if err := p.adopt(filepath.Join(root, filepath.FromSlash(f.Path)), entry, f.Size); err != nil {
				continue
			}
		}
		for _, c := range f.Chunks {
			locs[c.ID] = encodeLocation(key, c.Offset, c.Size)
		}
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
	p.evict()
}

// adopt hard-links src into the cache at entry, or copies it when it is
// small and on another file system.
func (p *PullCache) adopt(src, entry string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(entry), 0o700); err != nil {
		return err
	}
	err := os.Link(src, entry)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return nil
	}
	if size > object.MaxChunkSize {
		return err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp, err := p.c.createTemp(filepath.Base(entry))
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return errors.Join(werr, cerr)
	}
	return os.Rename(tmp.Name(), entry)
}

// evict removes entries that only the cache holds (link count 1), oldest
// first by the time they became so (ctime), until they fit the cap.
func (p *PullCache) evict() {
	type owned struct {
		path  string
		size  int64
		since time.Time
	}
	var only []owned
	var total int64
	for _, f := range p.c.list() {
		fi, err := os.Stat(f.path)
		if err != nil {
			continue
		}
		if linkCount(fi) > 1 {
			continue // a pulled folder still holds it: it costs no space
		}
		only = append(only, owned{f.path, fi.Size(), changeTime(fi)})
		total += fi.Size()
	}
	if total <= p.c.max {
		return
	}
	sort.Slice(only, func(i, j int) bool { return only[i].since.Before(only[j].since) })
	for _, o := range only {
		if total <= p.c.max*9/10 {
			break
		}
		if os.Remove(o.path) == nil {
			total -= o.size
		}
	}
}
