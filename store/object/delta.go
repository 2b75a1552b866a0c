package object

import (
	"errors"
	"fmt"
	"io"

	"github.com/ckptdev/ckpt/store/planes"
)

// Delta objects (codec delta, docs/format.md section 4): a blob whose
// payload codes its content against the decoded content of one other blob,
// its reference. The payload is
//
//	offset  size  field
//	0       1     r, the number of references: 1
//	1       32    the reference's blob ID (SHA-256 of its content)
//	33      ...   a planes delta payload (store/planes, "Delta payloads")
//	              of form "same": the reference is exactly as long as the
//	              content
//
// A reference is never itself a delta (depth 1): a reader holds at most the
// delta's payload, the reference and the content, and decodes two objects.

// CodecDelta is the codec of a delta object; its parameter byte is the
// element size of the delta's planes.
const CodecDelta Codec = 3

// deltaRefsLen is the length of the reference list before the planes delta
// payload: the count byte and one ID.
const deltaRefsLen = 1 + 32

// ErrNeedsReference is returned by the decoders that have no way to fetch
// other objects (Decode, ReadBody) for a delta object: its content needs
// its reference's (ReadPayload, DeltaReference, DecodeDelta).
var ErrNeedsReference = errors.New("delta object: decoding needs its reference blob")

// ErrNotDelta is returned by EncodeDelta when the delta does not pay: it
// is not smaller than the standalone coding.
var ErrNotDelta = errors.New("delta coding does not pay")

// MaxStoredPayload is the longest payload an object with header h may
// have: MaxPayload of its content, plus the reference list of a delta.
func (h Header) MaxStoredPayload() int64 {
	n := MaxPayload(int64(h.ContentLen))
	if h.Codec == CodecDelta {
		n += deltaRefsLen
	}
	return n
}

// EncodeDelta appends to dst the stored form of content as a delta against
// ref, the content of blob refID (as long as content), when that is
// shorter than standalone bytes (the length of the stored form Encode gave
// it, or of another coding to beat); else it returns dst unchanged and
// ErrNotDelta, having stopped coding as soon as it knew. elemSize is the
// element width of the tensor data (1, 2, 4 or 8).
func EncodeDelta(dst, content, ref []byte, refID ID, elemSize int, standalone int) ([]byte, error) {
	if len(ref) != len(content) {
		return dst, fmt.Errorf("delta: reference of %d bytes for %d bytes of content", len(ref), len(content))
	}
	start := len(dst)
	out := append(dst, make([]byte, HeaderSize)...)
	out = append(out, 1)
	out = append(out, refID[:]...)
	// The planes coding stops as soon as it cannot beat standalone.
	out, err := planes.EncodeDeltaBelow(out, content, ref, elemSize, standalone-(len(out)-start))
	if errors.Is(err, planes.ErrNotBelow) {
		return dst[:start], ErrNotDelta
	}
	if err != nil {
		return dst[:start], fmt.Errorf("delta: %w", err)
	}
	putHeader(out[start:start+HeaderSize], CodecDelta, byte(elemSize), len(content))
	return out, nil
}

// DeltaReference returns the reference blob ID a delta object's payload
// names, after checking the reference list and the delta header: the
// delta must decode to the header's declared length against a reference
// of that same length.
func DeltaReference(h Header, payload []byte) (ID, error) {
	var id ID
	if h.Codec != CodecDelta {
		return id, fmt.Errorf("%w: %s object has no reference", ErrCorrupt, h.Codec)
	}
	if len(payload) < deltaRefsLen {
		return id, fmt.Errorf("%w: delta payload of %d bytes, shorter than its reference list", ErrCorrupt, len(payload))
	}
	if payload[0] != 1 {
		return id, fmt.Errorf("%w: delta names %d references, want 1", ErrCorrupt, payload[0])
	}
	copy(id[:], payload[1:deltaRefsLen])
	info, err := planes.ParseDelta(payload[deltaRefsLen:])
	if err != nil {
		return id, fmt.Errorf("%w: delta payload: %v", ErrCorrupt, err)
	}
	if info.N != h.ContentLen || info.RefLen != h.ContentLen || info.Form != planes.RefSame {
		return id, fmt.Errorf("%w: delta of %d bytes against %d reference bytes (form %s), the header says %d", ErrCorrupt, info.N, info.RefLen, info.Form, h.ContentLen)
	}
	if info.ElemSize != int(h.Param) {
		return id, fmt.Errorf("%w: delta of %d-byte elements, the header says %d", ErrCorrupt, info.ElemSize, h.Param)
	}
	return id, nil
}

// DecodeDelta appends to dst the content that the payload of delta object
// h codes against ref, the verified content of the reference blob
// (DeltaReference), and checks that it hashes to want. It grows dst by at
// most the declared length and uses the planes decoder's pooled scratch.
func DecodeDelta(dst []byte, h Header, payload, ref []byte, want ID) ([]byte, error) {
	if _, err := DeltaReference(h, payload); err != nil {
		return dst, err
	}
	if int64(len(payload)) > h.MaxStoredPayload() {
		return dst, fmt.Errorf("%w: delta payload of %d bytes for %d bytes of content, over the limit %d", ErrCorrupt, len(payload), h.ContentLen, h.MaxStoredPayload())
	}
	start := len(dst)
	out, err := planes.DecodeDelta(dst, payload[deltaRefsLen:], ref, h.ContentLen)
	if err != nil {
		return dst[:start], fmt.Errorf("%w: delta payload: %v", ErrCorrupt, err)
	}
	if got := Hash(out[start:]); got != want {
		return dst[:start], fmt.Errorf("%w: content hashes to %s, want %s", ErrCorrupt, got, want)
	}
	return out, nil
}

// ReadPayload reads the rest of an object whose header h was just read from
// r into the spare capacity of scratch, reading no more than the codec's
// payload bound (MaxStoredPayload). scratch should have a capacity of
// StoredCap(h.ContentLen)+deltaRefsLen; it grows to at most that.
func ReadPayload(r io.Reader, h Header, scratch []byte) ([]byte, error) {
	payload, err := readFull(r, scratch[:0], h.MaxStoredPayload())
	if errors.Is(err, errObjectTooLong) {
		return nil, fmt.Errorf("%w: %s payload for %d bytes of content is %w (%d bytes)", ErrCorrupt, h.Codec, h.ContentLen, err, h.MaxStoredPayload())
	}
	return payload, err
}

// DeltaStoredCap is the buffer capacity that holds a delta object's
// payload for n content bytes and one byte more (ReadPayload).
func DeltaStoredCap(n int64) int64 { return StoredCap(n) + deltaRefsLen }
