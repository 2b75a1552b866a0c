package object

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

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
	// CodecDelta (3, delta.go): payload names a reference blob and codes the
	// content against its content.
)

func (c Codec) String() string {
	switch c {
	case CodecRaw:
		return "raw"
	case CodecZstd:
		return "zstd"
	case CodecPlanes:
		return "planes"
	case CodecDelta:
		return "delta"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

const (
	objectMagic   = "CKPT"
	objectVersion = 1
	// HeaderSize is the length of the fixed header before every payload.
	HeaderSize = 16

	// MaxChunkSize is the largest chunk a writer cuts from anything but a
	// safetensors header: big tensors and big non-weights files are cut at
	// this size. 8 MiB keeps a worker's buffers small, a blob under S3's
	// single-PUT size, and an upload fine-grained enough to spread over
	// parallel connections.
	MaxChunkSize = 8 << 20
	// maxSafetensorsHeader is the largest safetensors header (the
	// safetensors limit, layout.MaxSafetensorsHeader).
	maxSafetensorsHeader = 100_000_000
	// MaxBlobContent is the largest content a blob may declare: the largest
	// chunk a writer produces, which is the header chunk of a safetensors
	// file (its 8-byte length and a header of at most 100,000,000 bytes,
	// layout.MaxSafetensorsHeader); every other chunk is at most
	// MaxChunkSize.
	MaxBlobContent = 8 + maxSafetensorsHeader
	// MaxManifestContent is the largest manifest JSON a writer produces or a
	// reader accepts: 64 MiB, twice the 30 MB of a generated manifest shaped
	// like a 671B-parameter model's (163 shards, 91,000 tensors, 84,000
	// chunks).
	MaxManifestContent = 64 << 20
	// MaxObjectContent bounds the declared content length of any object,
	// blob or manifest, so a corrupt or hostile header cannot make a reader
	// allocate without limit. Readers that know more bound it further: a
	// chunk's size is in its manifest.
	MaxObjectContent = max(MaxBlobContent, MaxManifestContent)

	// zstdBlockMax is the most a zstd block decodes to (RFC 8878, 3.1.1.2.4).
	zstdBlockMax = 128 << 10
	// zstdSlack is the room past the declared length that a zstd decode
	// needs in its destination, so that the block that crosses the declared
	// length is decoded in place and refused, instead of growing (copying)
	// the destination first.
	zstdSlack = zstdBlockMax + 64
)

// MaxPayload is the longest payload an object of n content bytes may have:
// n for raw, at most n + n/128 + 4 KiB for zstd and planes (more than any
// encoder needs for incompressible input: zstd adds 3 bytes per 128 KiB
// block, planes one byte per block of at least 1 KiB). Readers stop reading
// an object there.
func MaxPayload(n int64) int64 { return n + n/128 + 4096 }

// ContentCap is the capacity a destination needs to decode an object of n
// content bytes without growing.
func ContentCap(n int64) int64 { return n + zstdSlack }

// StoredCap is the capacity that holds the stored form of an object of n
// content bytes (header and longest payload) and one byte more, by which a
// reader tells that an object is longer than that.
func StoredCap(n int64) int64 { return HeaderSize + MaxPayload(n) + 1 }

// ErrCorrupt marks an object whose bytes do not decode to content with the
// ID it is stored under.
var ErrCorrupt = errors.New("corrupt object")

var (
	zstdFast, _    = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	zstdDefault, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	// zstdDecoder decodes only into the capacity it is given (decodeZstd
	// sizes it by the declared length).
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(uint64(ContentCap(MaxObjectContent))))
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

// Encode appends to dst the stored form of content: the 16-byte header
// followed by the payload of the cheapest codec that pays.
func Encode(dst, content []byte, hint EncodeHint) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
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
	putHeader(dst[start:start+HeaderSize], codec, param, len(content))
	return dst
}

// EncodeBelow appends to dst what Encode would append, when that is
// shorter than limit bytes, and reports whether it did; otherwise it
// returns dst unchanged. Where only a planes coding could be that short,
// it stops as soon as the coding reaches limit (planes.EncodeBelow): a
// caller holding a coding of limit bytes (a delta) spares most of the
// work of a standalone coding that would lose to it.
func EncodeBelow(dst, content []byte, hint EncodeHint, limit int) ([]byte, bool) {
	if HeaderSize+len(content) < limit || hint.ElemSize < 1 || len(content) < 64 {
		if out := Encode(dst, content, hint); len(out)-len(dst) < limit {
			return out, true
		}
		return dst, false
	}
	// Stored raw it would not be shorter: only a planes coding can be.
	start := len(dst)
	payloadLimit := min(limit-HeaderSize, int(float64(len(content))*(1-minSaving)))
	out, err := planes.EncodeBelow(append(dst, make([]byte, HeaderSize)...), content, hint.ElemSize, payloadLimit)
	if err != nil {
		return dst[:start], false
	}
	putHeader(out[start:start+HeaderSize], CodecPlanes, byte(hint.ElemSize), len(content))
	return out, true
}

// putHeader writes an object header into h.
func putHeader(h []byte, codec Codec, param byte, n int) {
	copy(h, objectMagic)
	h[4] = objectVersion
	h[5] = byte(codec)
	h[6] = param
	h[7] = 0
	binary.LittleEndian.PutUint64(h[8:], uint64(n))
}

// Header is the decoded fixed header of a stored object.
type Header struct {
	Codec      Codec
	Param      byte
	ContentLen int
}

// ParseHeader checks and decodes the first 16 bytes of an object. The
// declared content length is at most MaxObjectContent.
func ParseHeader(obj []byte) (Header, error) {
	if len(obj) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than the header", ErrCorrupt, len(obj))
	}
	if string(obj[:4]) != objectMagic {
		return Header{}, fmt.Errorf("%w: bad magic %q", ErrCorrupt, obj[:4])
	}
	if obj[4] != objectVersion {
		return Header{}, fmt.Errorf("object format version %d is newer than this ckpt understands (%d): upgrade ckpt", obj[4], objectVersion)
	}
	n := binary.LittleEndian.Uint64(obj[8:16])
	if n > MaxObjectContent {
		return Header{}, fmt.Errorf("%w: declared size %d over the limit %d", ErrCorrupt, n, MaxObjectContent)
	}
	return Header{Codec: Codec(obj[5]), Param: obj[6], ContentLen: int(n)}, nil
}

// Limit is what a reader knows of an object's content length before it
// reads the object: at most max bytes, and exactly exact bytes when exact
// >= 0 (a chunk, whose size its manifest gives).
type Limit struct{ exact, max int64 }

// Exactly is the limit of an object whose content is n bytes.
func Exactly(n int64) Limit { return Limit{exact: n, max: n} }

// AtMost is the limit of an object whose content is at most n bytes.
func AtMost(n int64) Limit { return Limit{exact: -1, max: n} }

// Check refuses a declared length outside the limit.
func (l Limit) Check(declared int) error {
	n := int64(declared)
	if l.exact >= 0 && n != l.exact {
		return fmt.Errorf("%w: header declares %d bytes, the manifest says %d", ErrCorrupt, n, l.exact)
	}
	if n > l.max {
		return fmt.Errorf("%w: header declares %d bytes, over the limit %d for this object", ErrCorrupt, n, l.max)
	}
	return nil
}

// Decode appends the content of a stored object to dst and checks
// that it hashes to want. Errors wrap ErrCorrupt when the bytes are damaged.
// It allocates at most the declared length (and zstdSlack) beyond dst's
// capacity, only after the payload's framing has been checked, and refuses
// the object as soon as decoding passes the declared length.
func Decode(dst, obj []byte, want ID) ([]byte, error) {
	return decode(dst, obj, want, AtMost(MaxObjectContent))
}

// DecodeSize is Decode for an object whose content length the reader knows
// (a chunk's size in its manifest): a header declaring any other length is
// refused before anything is decoded or allocated.
func DecodeSize(dst, obj []byte, want ID, size int64) ([]byte, error) {
	return decode(dst, obj, want, Exactly(size))
}

func decode(dst, obj []byte, want ID, limit Limit) ([]byte, error) {
	h, err := ParseHeader(obj)
	if err != nil {
		return dst, err
	}
	if err := limit.Check(h.ContentLen); err != nil {
		return dst, err
	}
	return decodePayload(dst, h, obj[HeaderSize:], want, true)
}

// decodePayload appends the content that payload encodes under header h to
// dst and checks it against the declared length and, when verify is set,
// want.
func decodePayload(dst []byte, h Header, payload []byte, want ID, verify bool) ([]byte, error) {
	if h.Codec == CodecDelta {
		return dst, ErrNeedsReference
	}
	n := int64(h.ContentLen)
	if h.Codec != CodecRaw && int64(len(payload)) > MaxPayload(n) {
		return dst, fmt.Errorf("%w: %s payload of %d bytes for %d bytes of content, over the limit %d", ErrCorrupt, h.Codec, len(payload), n, MaxPayload(n))
	}
	start := len(dst)
	var err error
	switch h.Codec {
	case CodecRaw:
		if int64(len(payload)) != n {
			return dst, fmt.Errorf("%w: raw payload of %d bytes, header says %d", ErrCorrupt, len(payload), n)
		}
		dst = append(dst, payload...)
	case CodecZstd:
		dst, err = decodeZstd(dst, payload, n)
	case CodecPlanes:
		dst, err = decodePlanes(dst, payload, n)
	default:
		return dst, fmt.Errorf("unknown codec %d: upgrade ckpt", h.Codec)
	}
	if err != nil {
		return dst[:start], fmt.Errorf("%w: %s payload: %v", ErrCorrupt, h.Codec, err)
	}
	if got := int64(len(dst) - start); got != n {
		return dst[:start], fmt.Errorf("%w: decoded %d bytes, header says %d", ErrCorrupt, got, n)
	}
	if !verify {
		return dst, nil
	}
	if got := Hash(dst[start:]); got != want {
		return dst[:start], fmt.Errorf("%w: content hashes to %s, want %s", ErrCorrupt, got, want)
	}
	return dst, nil
}

// decodeZstd appends the n bytes that the zstd frame in payload decodes to.
// The frame's structure is checked first (checkZstdFrame), then it is
// decoded into a destination of capacity ContentCap(n): the decoder refuses
// the frame right after the block that passes n, which still fits.
func decodeZstd(dst, payload []byte, n int64) ([]byte, error) {
	if err := checkZstdFrame(payload, n); err != nil {
		return dst, err
	}
	start := len(dst)
	dst = slices.Grow(dst, int(ContentCap(n)))
	out, err := zstdDecoder.DecodeAll(payload, dst[start:start:start+int(ContentCap(n))])
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrFrameSizeExceeded) {
			err = fmt.Errorf("decodes to more than the declared %d bytes", n)
		}
		return dst[:start], err
	}
	if len(out) > 0 && &out[0] != &dst[start : start+1][0] {
		return append(dst[:start], out...), nil // decoded elsewhere (not expected)
	}
	return dst[:start+len(out)], nil
}

// zstdMagic starts every zstd frame (RFC 8878, 3.1.1).
const zstdMagic = 0xFD2FB528

// checkZstdFrame checks that payload is exactly one zstd frame, that its
// header declares n as its content size (frames of content up to one block
// may omit it), and that its blocks could produce n bytes at all. It reads
// only the frame and block headers.
func checkZstdFrame(payload []byte, n int64) error {
	if len(payload) < 5 || binary.LittleEndian.Uint32(payload) != zstdMagic {
		return errors.New("not a zstd frame")
	}
	fhd := payload[4]
	if fhd&0x08 != 0 {
		return errors.New("reserved bit set in the frame header")
	}
	single := fhd&0x20 != 0
	pos := 5
	if !single {
		pos++ // window descriptor
	}
	pos += [4]int{0, 1, 2, 4}[fhd&3] // dictionary ID
	fcsLen := [4]int{0, 2, 4, 8}[fhd>>6]
	if fcsLen == 0 && single {
		fcsLen = 1
	}
	if pos+fcsLen > len(payload) {
		return errors.New("truncated frame header")
	}
	fcs := int64(-1)
	switch fcsLen {
	case 1:
		fcs = int64(payload[pos])
	case 2:
		fcs = int64(binary.LittleEndian.Uint16(payload[pos:])) + 256
	case 4:
		fcs = int64(binary.LittleEndian.Uint32(payload[pos:]))
	case 8:
		if v := binary.LittleEndian.Uint64(payload[pos:]); v <= math.MaxInt64 {
			fcs = int64(v)
		} else {
			fcs = math.MaxInt64
		}
	}
	pos += fcsLen
	switch {
	case fcs < 0 && n > zstdBlockMax:
		return fmt.Errorf("frame of %d bytes does not declare its content size", n)
	case fcs >= 0 && fcs != n:
		return fmt.Errorf("frame declares %d bytes of content, the header %d", fcs, n)
	}
	var most int64 // the most the blocks can decode to
	for {
		if pos+3 > len(payload) {
			return errors.New("truncated block header")
		}
		bh := uint32(payload[pos]) | uint32(payload[pos+1])<<8 | uint32(payload[pos+2])<<16
		pos += 3
		size := int(bh >> 3)
		if size > zstdBlockMax {
			return fmt.Errorf("block of %d bytes, over the zstd maximum", size)
		}
		switch bh >> 1 & 3 {
		case 0: // raw
			pos += size
			most += int64(size)
		case 1: // rle
			pos++
			most += int64(size)
		case 2: // compressed
			pos += size
			most += zstdBlockMax
		default:
			return errors.New("reserved block type")
		}
		if pos > len(payload) {
			return errors.New("truncated block")
		}
		if bh&1 != 0 {
			break
		}
	}
	if fhd&0x04 != 0 {
		pos += 4 // content checksum
	}
	if pos != len(payload) {
		return fmt.Errorf("%d bytes after the frame, want none", len(payload)-pos)
	}
	if most < n {
		return fmt.Errorf("blocks decode to at most %d bytes, the header says %d", most, n)
	}
	return nil
}

// decodePlanes appends the n bytes that the planes payload decodes to. The
// planes header must declare n; planes.Decode checks all framing before it
// allocates and never writes past its declared length.
func decodePlanes(dst, payload []byte, n int64) ([]byte, error) {
	if got, err := planes.DecodedLen(payload); err != nil {
		return dst, err
	} else if int64(got) != n {
		return dst, fmt.Errorf("declares %d bytes of content, the header %d", got, n)
	}
	return planes.Decode(dst, payload, int(n))
}

// DecodeCap is the capacity that decoding this object's payload needs.
func (h Header) DecodeCap() int64 {
	if h.Codec == CodecZstd {
		return ContentCap(int64(h.ContentLen))
	}
	return int64(h.ContentLen)
}

// Read reads a stored object from r and appends its verified content to
// dst: the header first, whose declared length must be within limit, then
// the payload (ReadBody, with scratch).
func Read(r io.Reader, dst []byte, want ID, limit Limit, scratch []byte) ([]byte, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	if err := limit.Check(h.ContentLen); err != nil {
		return nil, err
	}
	return ReadBody(r, h, dst, want, scratch)
}

// ReadHeader reads and checks the 16-byte header at the start of r.
func ReadHeader(r io.Reader) (Header, error) {
	var hdr [HeaderSize]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, fmt.Errorf("%w: %d bytes, shorter than the header", ErrCorrupt, n)
		}
		return Header{}, err
	}
	return ParseHeader(hdr[:])
}

// errObjectTooLong is returned by readFull when the reader holds more than
// its limit.
var errObjectTooLong = errors.New("longer than its codec allows")

// ReadBody reads the payload of an object whose header h was just read from
// r, and appends the content it encodes to dst (growing dst to
// h.DecodeCap() if it has less room). A raw payload is read straight into
// dst; any other into scratch, reading no more than MaxPayload: scratch
// should have a capacity of StoredCap(h.ContentLen) (it is grown, by
// allocation, to at most that when it has less), and the caller accounts
// for that memory. scratch may be nil for a raw object.
func ReadBody(r io.Reader, h Header, dst []byte, want ID, scratch []byte) ([]byte, error) {
	return readBody(r, h, dst, want, scratch, true)
}

// ReadBodyUnverified is ReadBody without the check of the content's hash,
// for a delta's reference: the delta's own content hash (DecodeDelta)
// verifies what is decoded against it, so only a delta that then fails to
// check needs the reference hashed (to say which of the two is damaged).
// Every other check (lengths, payload bounds, codec structure) is made.
func ReadBodyUnverified(r io.Reader, h Header, dst []byte, scratch []byte) ([]byte, error) {
	return readBody(r, h, dst, ID{}, scratch, false)
}

func readBody(r io.Reader, h Header, dst []byte, want ID, scratch []byte, verify bool) ([]byte, error) {
	n := int64(h.ContentLen)
	switch h.Codec {
	case CodecRaw:
		start := len(dst)
		dst = slices.Grow(dst, int(n))[:start+int(n)]
		if _, err := io.ReadFull(r, dst[start:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: raw payload shorter than the declared %d bytes", ErrCorrupt, n)
			}
			return nil, err
		}
		var extra [1]byte
		if k, err := io.ReadFull(r, extra[:]); k > 0 {
			return nil, fmt.Errorf("%w: raw payload longer than the declared %d bytes", ErrCorrupt, n)
		} else if !errors.Is(err, io.EOF) {
			return nil, err
		}
		if !verify {
			return dst, nil
		}
		if got := Hash(dst[start:]); got != want {
			return nil, fmt.Errorf("%w: content hashes to %s, want %s", ErrCorrupt, got, want)
		}
		return dst, nil
	case CodecZstd, CodecPlanes:
	case CodecDelta:
		return nil, ErrNeedsReference
	default:
		return nil, fmt.Errorf("unknown codec %d: upgrade ckpt", h.Codec)
	}
	payload, err := readFull(r, scratch[:0], MaxPayload(n))
	if errors.Is(err, errObjectTooLong) {
		return nil, fmt.Errorf("%w: %s payload for %d bytes of content is %w (%d bytes)", ErrCorrupt, h.Codec, n, err, MaxPayload(n))
	}
	if err != nil {
		return nil, err
	}
	dst = slices.Grow(dst, int(h.DecodeCap()))
	out, err := decodePayload(dst, h, payload, want, verify)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readFull reads r to its end into the spare capacity of dst, and fails
// with errObjectTooLong once r holds more than limit bytes; dst grows only
// up to limit+1 bytes past its length.
func readFull(r io.Reader, dst []byte, limit int64) ([]byte, error) {
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			room := min(max(int64(cap(dst)-start), 4096), limit+1-int64(len(dst)-start))
			dst = slices.Grow(dst, int(room))
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if int64(len(dst)-start) > limit {
			return nil, errObjectTooLong
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
