package store

import (
	"context"
	"io"

	"github.com/ckptdev/ckpt/store/object"
)

// readObject reads a stored object from r and appends its verified content
// to dst: the header first, whose declared length must be within limit,
// then the payload, read (for a codec other than raw) into a buffer of the
// transfer pool. The caller holds that memory from the transfer budget
// (objectCost).
func readObject(r io.Reader, dst []byte, want object.ID, limit object.Limit) ([]byte, error) {
	h, err := object.ReadHeader(r)
	if err != nil {
		return nil, err
	}
	if err := limit.Check(h.ContentLen); err != nil {
		return nil, err
	}
	return readObjectBody(r, h, dst, want)
}

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
	defer rc.Close()
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
