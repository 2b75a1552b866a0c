package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"

	"github.com/ckptdev/ckpt/store/planes"
)

// Codec says how an object's payload encodes its content. It is recorded in
// every object's header, so objects written with any codec stay readable.
type Codec uint8

const (
	CodecRaw    Codec = 0 // payload is the content
	CodecZstd   Codec = 1 // payload is one zstd frame (RFC 8878)
	CodecPlanes Codec = 2 // payload is the byte-plane weights codec of store/planes; the header's param byte is the element size
)

func (c Codec) String() string {
	switch c {
	case CodecRaw:
		return "raw"
	case CodecZstd:
		return "zstd"
	case CodecPlanes:
		return "planes"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

const (
	objectMagic      = "CKPT"
	objectVersion    = 1
	objectHeaderSize = 16
	// MaxObjectContent bounds the declared decoded size of any object, so a
	// corrupt or hostile header cannot make a reader allocate without limit.
	MaxObjectContent = 256 << 20
)

// ErrCorrupt marks an object whose bytes do not decode to content with the
// ID it is stored under.
var ErrCorrupt = errors.New("corrupt object")

var (
	zstdFast, _    = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	zstdDefault, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxObjectContent))
)

// EncodeHint tells the encoder what the content is, so it can pick a codec.
type EncodeHint struct {
	// ElemSize is the element width in bytes of a run of same-dtype tensor
	// data (1 for F8, 2 for BF16/F16, 4 for F32), or 0 when the content is
	// not weights. Weights go to the byte-plane codec: even a single plane
	// (F8) is Huffman-coded better than by fast zstd (0.81 vs 1.00 of raw on
	// scaled normal E4M3 values).
	ElemSize int
	// Text marks small structured files (JSON, tokenizer vocabularies), for
	// which a slower, stronger zstd level pays.
	Text bool
}

// minSaving is the fraction a codec must save for its output to be kept;
// otherwise the content is stored raw, which is cheapest to read.
const minSaving = 0.02

// EncodeObject appends to dst the stored form of content: the 16-byte header
// followed by the payload of the cheapest codec that pays.
func EncodeObject(dst, content []byte, hint EncodeHint) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, objectHeaderSize)...)
	codec, param := CodecRaw, byte(0)
	limit := int(float64(len(content)) * (1 - minSaving))
	if len(content) >= 64 {
		switch {
		case hint.ElemSize >= 1:
			if out, err := planes.Encode(dst, content, hint.ElemSize); err == nil && len(out)-len(dst) < limit {
				dst, codec, param = out, CodecPlanes, byte(hint.ElemSize)
			}
		default:
			enc := zstdFast
			if hint.Text {
				enc = zstdDefault
			}
			if out := enc.EncodeAll(content, dst); len(out)-len(dst) < limit {
				dst, codec = out, CodecZstd
			}
		}
	}
	if codec == CodecRaw {
		dst = append(dst, content...)
	}
	h := dst[start : start+objectHeaderSize]
	copy(h, objectMagic)
	h[4] = objectVersion
	h[5] = byte(codec)
	h[6] = param
	h[7] = 0
	binary.LittleEndian.PutUint64(h[8:], uint64(len(content)))
	return dst
}

// ObjectHeader is the decoded fixed header of a stored object.
type ObjectHeader struct {
	Codec      Codec
	Param      byte
	ContentLen int
}

// ParseObjectHeader checks and decodes the first 16 bytes of an object.
func ParseObjectHeader(obj []byte) (ObjectHeader, error) {
	if len(obj) < objectHeaderSize {
		return ObjectHeader{}, fmt.Errorf("%w: %d bytes, shorter than the header", ErrCorrupt, len(obj))
	}
	if string(obj[:4]) != objectMagic {
		return ObjectHeader{}, fmt.Errorf("%w: bad magic %q", ErrCorrupt, obj[:4])
	}
	if obj[4] != objectVersion {
		return ObjectHeader{}, fmt.Errorf("object format version %d is newer than this ckpt understands (%d): upgrade ckpt", obj[4], objectVersion)
	}
	n := binary.LittleEndian.Uint64(obj[8:16])
	if n > MaxObjectContent {
		return ObjectHeader{}, fmt.Errorf("%w: declared size %d over the limit %d", ErrCorrupt, n, MaxObjectContent)
	}
	return ObjectHeader{Codec: Codec(obj[5]), Param: obj[6], ContentLen: int(n)}, nil
}

// DecodeObject appends the content of a stored object to dst and checks
// that it hashes to want. Errors wrap ErrCorrupt when the bytes are damaged.
func DecodeObject(dst, obj []byte, want ID) ([]byte, error) {
	h, err := ParseObjectHeader(obj)
	if err != nil {
		return dst, err
	}
	payload := obj[objectHeaderSize:]
	start := len(dst)
	switch h.Codec {
	case CodecRaw:
		dst = append(dst, payload...)
	case CodecZstd:
		dst, err = zstdDecoder.DecodeAll(payload, dst)
	case CodecPlanes:
		dst, err = planes.Decode(dst, payload, h.ContentLen)
	default:
		return dst, fmt.Errorf("unknown codec %d: upgrade ckpt", h.Codec)
	}
	if err != nil {
		return dst[:start], fmt.Errorf("%w: %s payload: %v", ErrCorrupt, h.Codec, err)
	}
	if got := len(dst) - start; got != h.ContentLen {
		return dst[:start], fmt.Errorf("%w: decoded %d bytes, header says %d", ErrCorrupt, got, h.ContentLen)
	}
	if got := Hash(dst[start:]); got != want {
		return dst[:start], fmt.Errorf("%w: content hashes to %s, want %s", ErrCorrupt, got, want)
	}
	return dst, nil
}

// freeBufs recycles chunk-sized buffers across workers. Unlike a sync.Pool
// it survives garbage collections, so a transfer running near the memory
// limit does not reallocate 8 MiB buffers after every cycle; it holds at
// most its capacity (two buffers for each of 8 workers), the rest is left
// to the collector.
var freeBufs = make(chan *[]byte, 16)

func getBuf() *[]byte {
	select {
	case b := <-freeBufs:
		return b
	default:
		b := make([]byte, 0, MaxChunkSize+MaxChunkSize/8+objectHeaderSize)
		return &b
	}
}

// keepBuf remembers b in bp if appending grew it past bp's capacity, so
// the pool keeps the larger buffer. A nil b (an error path) changes nothing.
func keepBuf(bp *[]byte, b []byte) {
	if cap(b) > cap(*bp) {
		*bp = b
	}
}

// sized returns a slice of length n backed by bp, growing it if needed.
func sized(bp *[]byte, n int64) []byte {
	if int64(cap(*bp)) < n {
		*bp = make([]byte, n)
	}
	return (*bp)[:n]
}

func putBuf(bp *[]byte) {
	*bp = (*bp)[:0]
	select {
	case freeBufs <- bp:
	default:
	}
}
