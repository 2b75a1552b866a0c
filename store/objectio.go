package store

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// Reading objects: the engine's side of store/object. Every read holds its
// memory from the transfer budget (budget.go); blobs come from a
// blobSource, the registry or a per-machine cache.

// readObjectBody reads the payload of an object whose header h was just
// read from r (object.ReadBody), into a pooled buffer of StoredCap bytes
// unless it is raw.
func readObjectBody(r io.Reader, h object.Header, dst []byte, want object.ID) ([]byte, error) {
	if h.Codec == object.CodecRaw {
		return object.ReadBody(r, h, dst, want, nil)
	}
	bp := takeBuf(object.StoredCap(int64(h.ContentLen)))
	defer dropBuf(bp)
	return object.ReadBody(r, h, dst, want, *bp)
}

// readManifestObject reads manifest id from the backend. Its header is read
// first: a declared length over MaxManifestContent is refused, and the
// memory to read and decode it is taken from the transfer budget until it
// is decoded. The returned content is the caller's.
func (r *Registry) readManifestObject(ctx context.Context, id object.ID) ([]byte, error) {
	rc, err := r.backend.Get(ctx, object.ManifestKey(id), 0, -1)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }() // read-only
	h, err := object.ReadHeader(rc)
	if err != nil {
		return nil, err
	}
	if err := object.AtMost(object.MaxManifestContent).Check(h.ContentLen); err != nil {
		return nil, err
	}
	cost := h.DecodeCap()
	if h.Codec != object.CodecRaw {
		cost += bufCost(object.StoredCap(int64(h.ContentLen)))
	}
	release, err := transfers.acquire(ctx, cost)
	if err != nil {
		return nil, err
	}
	defer release()
	return readObjectBody(rc, h, make([]byte, 0, h.DecodeCap()), id)
}

// Manifest fetches, verifies and decodes a manifest. A copy in the
// per-machine cache is used when it still hashes to id.
func (r *Registry) Manifest(ctx context.Context, id object.ID) (*manifest.Manifest, error) {
	data, ok := r.index.manifest(id)
	if !ok || object.Hash(data) != id {
		var err error
		if data, err = r.downloadManifest(ctx, id); err != nil {
			return nil, err
		}
	}
	return decodeManifestOf(id, data)
}

// manifestProof is what a manifest read must prove beyond its content.
type manifestProof int

const (
	// manifestExists: the registry still has the object (a stat); its
	// content may come from the per-machine copy, checked against the ID.
	manifestExists manifestProof = iota + 1
	// manifestDownloaded: the content is read from the registry itself.
	manifestDownloaded
)

// provenManifest reads manifest id with the proof a destructive or vouching
// caller (gc, verify) needs: never on the word of the per-machine cache.
func (r *Registry) provenManifest(ctx context.Context, id object.ID, proof manifestProof) (*manifest.Manifest, error) {
	if proof == manifestExists {
		oi, err := r.backend.Stat(ctx, object.ManifestKey(id))
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", id, err)
		}
		return r.listedManifest(ctx, id, oi.Size)
	}
	data, err := r.downloadManifest(ctx, id)
	if err != nil {
		return nil, err
	}
	return decodeManifestOf(id, data)
}

// listedManifest reads manifest id, which the registry just showed (a stat
// or a listing) to hold size bytes: that proves it exists; its content may
// come from the per-machine copy, checked against the ID, else from the
// registry.
func (r *Registry) listedManifest(ctx context.Context, id object.ID, size int64) (*manifest.Manifest, error) {
	if size < object.HeaderSize {
		return nil, fmt.Errorf("manifest %s: %w: %d bytes, shorter than an object header", id, object.ErrCorrupt, size)
	}
	if data, ok := r.index.manifest(id); ok && object.Hash(data) == id {
		return decodeManifestOf(id, data)
	}
	data, err := r.downloadManifest(ctx, id)
	if err != nil {
		return nil, err
	}
	return decodeManifestOf(id, data)
}

// downloadManifest reads manifest id from the registry, checks it and
// caches its content.
func (r *Registry) downloadManifest(ctx context.Context, id object.ID) ([]byte, error) {
	data, err := r.readManifestObject(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", id, err)
	}
	r.index.putManifest(id, data)
	return data, nil
}

func decodeManifestOf(id object.ID, data []byte) (*manifest.Manifest, error) {
	m, err := manifest.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", id, err)
	}
	return m, nil
}

// blobSource gives the verified content of blobs: the registry (Registry),
// or the content cache of earlier pulls on this machine (cacheSource).
type blobSource interface {
	// readBlob appends the content of blob id, which its manifest says is
	// size bytes, to dst, checked against id. The caller holds
	// objectCost(size) of the transfer budget, and dst has room for
	// object.ContentCap(size) bytes. A source that is only a cache fails
	// with errNotHeld when it does not hold the blob intact.
	readBlob(ctx context.Context, id object.ID, size int64, dst []byte) ([]byte, error)
}

// errNotHeld: a cache does not hold a blob, or no longer intact.
var errNotHeld = errors.New("not held here")

// firstHolder reads a blob from the first of its sources that holds it.
type firstHolder []blobSource

func (s firstHolder) readBlob(ctx context.Context, id object.ID, size int64, dst []byte) ([]byte, error) {
	for i, src := range s {
		out, err := src.readBlob(ctx, id, size, dst)
		if err == nil || i == len(s)-1 || !errors.Is(err, errNotHeld) {
			return out, err
		}
	}
	return nil, fmt.Errorf("blob %s: no source", id)
}

// chunkSource is where pulls and ReadRange read chunks: the content
// cache's entries when the index knows one that still holds a chunk intact
// (cacheSource), else the registry.
func (r *Registry) chunkSource() blobSource {
	if r.cache != nil && r.index != nil {
		return firstHolder{cacheSource{r.cache, r.index}, r}
	}
	return r
}

// readBlob reads blob id, whose content the manifest says is size bytes,
// from the backend and appends its verified content to dst (blobSource). The
// caller holds objectCost(size) of the transfer budget; dst should have
// room for object.ContentCap(size) bytes. A header that declares another size is
// refused before anything else is read, and no more of the object is read
// than its codec may need for size bytes.
func (r *Registry) readBlob(ctx context.Context, id object.ID, size int64, dst []byte) ([]byte, error) {
	rc, key, err := r.openBlob(ctx, id)
	if err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			r.index.forgetKnown(r.format.ID, []string{object.BlobKey(id)})
			return nil, fmt.Errorf("blob %s is missing from the registry: %w", id, err)
		}
		return nil, fmt.Errorf("blob %s: %w", id, err)
	}
	defer func() { _ = rc.Close() }() // read-only
	h, err := object.ReadHeader(rc)
	if err == nil {
		err = object.Exactly(size).Check(h.ContentLen)
	}
	var out []byte
	if err == nil && h.Codec == object.CodecDelta {
		out, err = r.readDelta(ctx, rc, h, id, dst) // delta.go
	} else if err == nil {
		out, err = readObjectBody(rc, h, dst, id)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s (%s): %w", id, key, err)
	}
	return out, nil
}

// fetchChunk waits for the memory to hold chunk c (leaseChunk), then
// fetches and verifies its blob from src. The data is valid until the lease
// is done; on error nothing is held.
func fetchChunk(ctx context.Context, src blobSource, c manifest.Chunk) ([]byte, *chunkLease, error) {
	if c.Size < 0 || c.Size > object.MaxBlobContent {
		return nil, nil, fmt.Errorf("blob %s: %w: the manifest gives it %d bytes, over the limit %d", c.ID, object.ErrCorrupt, c.Size, object.MaxBlobContent)
	}
	l, err := leaseChunk(ctx, c.Size)
	if err != nil {
		return nil, nil, err
	}
	data, err := src.readBlob(ctx, c.ID, c.Size, l.buf())
	if err == nil && int64(len(data)) != c.Size {
		err = fmt.Errorf("blob %s has %d bytes, manifest says %d", c.ID, len(data), c.Size)
	}
	if err != nil {
		l.done()
		return nil, nil, err
	}
	return data, l, nil
}
