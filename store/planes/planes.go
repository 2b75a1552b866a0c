package planes

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
)

// Format constants; doc.go describes how they are laid out.
const (
	// Version is the format version byte that Encode writes and the only
	// one Decode accepts.
	Version = 1
	// streamVersion2 is the version byte of the stream inside a delta
	// payload: version 1 plus block kind 4 (sparse). Decode refuses it;
	// only DecodeDelta reads it.
	streamVersion2 = 2

	transformNone = 0 // planes hold the element bytes as they are
	transformRot  = 1 // top 16 bits of each element rotated left by one

	minBlockLog     = 10
	maxBlockLog     = 17 // 128 KiB, below huff0.BlockSizeMax (256 KiB - 1)
	defaultBlockLog = 17
	maxPlanes       = 8
	// minRotElems is the fewest elements for which Encode considers the
	// rot16 transform; below it the gain is a few bytes at most.
	minRotElems = 256

	planeRaw     = 0
	planeConst   = 1
	planeBlocked = 2

	blockRaw    = 0
	blockRLE    = 1
	blockHuff   = 2
	blockZstd   = 3
	blockSparse = 4 // version 2 only
)

var (
	// ErrCorrupt is returned (wrapped, with details) by Decode and DecodedLen
	// for input that is not a valid encoding.
	ErrCorrupt = errors.New("planes: corrupt input")
	// ErrTooLarge is returned (wrapped) by Decode when the declared decoded
	// length exceeds maxSize.
	ErrTooLarge = errors.New("planes: decoded size exceeds limit")
	// ErrElemSize is returned by Encode for an element size other than 1,
	// 2, 4 or 8.
	ErrElemSize = errors.New("planes: element size must be 1, 2, 4 or 8")
)

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

func validElemSize(es int) bool {
	return es == 1 || es == 2 || es == 4 || es == 8
}

// planeDesc is one parsed plane entry of the header.
type planeDesc struct {
	method byte
	data   []byte // the plane's payload inside enc
}

// header is a parsed and structurally validated encoding.
type header struct {
	version  byte
	es       int
	rot      bool
	blockLog uint
	n        int // decoded length
	nElems   int
	nPlanes  int
	planes   [maxPlanes]planeDesc
	tail     []byte
}

func (h *header) blockLen() int { return 1 << h.blockLog }

func (h *header) numBlocks() int {
	return (h.nElems + h.blockLen() - 1) >> h.blockLog
}

// parsePrefix reads the fixed fields and the decoded length of a stream
// whose version byte must be version. It returns the number of bytes
// consumed.
func parsePrefix(enc []byte, h *header, version byte) (int, error) {
	if len(enc) < 5 {
		return 0, corrupt("%d bytes is too short for a header", len(enc))
	}
	if enc[0] != version {
		return 0, corrupt("unknown format version %d", enc[0])
	}
	h.version = version
	h.es = int(enc[1])
	if !validElemSize(h.es) {
		return 0, corrupt("element size %d", h.es)
	}
	switch enc[2] {
	case transformNone:
	case transformRot:
		if h.es < 2 {
			return 0, corrupt("transform %d needs element size >= 2", enc[2])
		}
		h.rot = true
	default:
		return 0, corrupt("unknown transform %d", enc[2])
	}
	h.blockLog = uint(enc[3])
	if h.blockLog < minBlockLog || h.blockLog > maxBlockLog {
		return 0, corrupt("block size log %d out of range [%d, %d]", h.blockLog, minBlockLog, maxBlockLog)
	}
	n, k := binary.Uvarint(enc[4:])
	if k <= 0 || n > math.MaxInt {
		return 0, corrupt("bad decoded length")
	}
	h.n = int(n)
	h.nElems = h.n / h.es
	return 4 + k, nil
}

// DecodedLen returns the decoded length declared by the header of enc
// without decoding (or validating) the rest.
func DecodedLen(enc []byte) (int, error) {
	var h header
	if _, err := parsePrefix(enc, &h, Version); err != nil {
		return 0, err
	}
	return h.n, nil
}

// parseHeader parses the whole header of a stream of the given version,
// checks that the plane payloads and the tail exactly fill enc and that each
// plane's block structure is consistent with the declared length. It
// allocates nothing.
func parseHeader(enc []byte, h *header, maxSize int, version byte) error {
	pos, err := parsePrefix(enc, h, version)
	if err != nil {
		return err
	}
	if h.n > maxSize {
		return fmt.Errorf("%w: declared %d bytes, limit %d", ErrTooLarge, h.n, maxSize)
	}
	if pos >= len(enc) {
		return corrupt("truncated header")
	}
	h.nPlanes = int(enc[pos])
	pos++
	want := h.es
	if h.nElems == 0 {
		want = 0
	}
	if h.nPlanes != want {
		return corrupt("%d planes, want %d", h.nPlanes, want)
	}
	var lens [maxPlanes]int
	for k := 0; k < h.nPlanes; k++ {
		if pos >= len(enc) {
			return corrupt("truncated plane table")
		}
		h.planes[k].method = enc[pos]
		pos++
		l, n := binary.Uvarint(enc[pos:])
		if n <= 0 || l > uint64(len(enc)) {
			return corrupt("bad length of plane %d", k)
		}
		pos += n
		lens[k] = int(l)
	}
	for k := 0; k < h.nPlanes; k++ {
		if lens[k] > len(enc)-pos {
			return corrupt("plane %d truncated", k)
		}
		h.planes[k].data = enc[pos : pos+lens[k]]
		pos += lens[k]
	}
	tailLen := h.n - h.nElems*h.es
	if len(enc)-pos != tailLen {
		return corrupt("%d bytes after the planes, want a %d byte tail", len(enc)-pos, tailLen)
	}
	h.tail = enc[pos:]
	for k := 0; k < h.nPlanes; k++ {
		if err := h.checkPlane(k); err != nil {
			return err
		}
	}
	return nil
}

// checkPlane validates plane k's method, length and block framing.
func (h *header) checkPlane(k int) error {
	p := h.planes[k]
	switch p.method {
	case planeRaw:
		if len(p.data) != h.nElems {
			return corrupt("raw plane %d has %d bytes, want %d", k, len(p.data), h.nElems)
		}
	case planeConst:
		if len(p.data) != 1 {
			return corrupt("constant plane %d has %d bytes, want 1", k, len(p.data))
		}
	case planeBlocked:
		data := p.data
		for b, nb := 0, h.numBlocks(); b < nb; b++ {
			_, _, rest, err := h.nextBlock(data, h.blockSize(b), k, b)
			if err != nil {
				return err
			}
			data = rest
		}
		if len(data) != 0 {
			return corrupt("plane %d has %d bytes after its last block", k, len(data))
		}
	default:
		return corrupt("unknown method %d of plane %d", p.method, k)
	}
	return nil
}

// blockSize returns the number of elements in block b.
func (h *header) blockSize(b int) int {
	return min(h.blockLen(), h.nElems-b<<h.blockLog)
}

// nextBlock splits the block at the start of data, which decodes to m bytes,
// into its kind and payload. The payload of a sparse block is checked
// (checkSparse) as far as it can be without decoding.
func (h *header) nextBlock(data []byte, m, plane, b int) (kind byte, payload, rest []byte, err error) {
	if len(data) == 0 {
		return 0, nil, nil, corrupt("plane %d truncated at block %d", plane, b)
	}
	kind, data = data[0], data[1:]
	var l int
	switch kind {
	case blockRaw:
		l = m
	case blockRLE:
		l = 1
	case blockSparse:
		if h.version < streamVersion2 {
			return 0, nil, nil, corrupt("unknown kind %d of block %d in plane %d", kind, b, plane)
		}
		fallthrough
	case blockHuff, blockZstd:
		v, n := binary.Uvarint(data)
		if n <= 0 || v == 0 || v > uint64(len(data)-n) {
			return 0, nil, nil, corrupt("bad length of block %d in plane %d", b, plane)
		}
		data = data[n:]
		l = int(v)
	default:
		return 0, nil, nil, corrupt("unknown kind %d of block %d in plane %d", kind, b, plane)
	}
	if l > len(data) {
		return 0, nil, nil, corrupt("block %d of plane %d truncated", b, plane)
	}
	if kind == blockSparse {
		if _, _, _, _, err := splitSparse(data[:l], m); err != nil {
			return 0, nil, nil, corrupt("sparse block %d in plane %d: %v", b, plane, err)
		}
	}
	return kind, data[:l], data[l:], nil
}

// Encode appends to dst the encoded form of src, whose elements are elemSize
// bytes wide (1, 2, 4 or 8; 1 means plain bytes). len(src) need not be a
// multiple of elemSize: the tail bytes are kept raw. It fails only for an
// invalid elemSize. dst and src must not overlap.
func Encode(dst, src []byte, elemSize int) ([]byte, error) {
	return encode(dst, src, elemSize, defaultBlockLog)
}

// encode is Encode with a choice of block length (tests use small blocks).
func encode(dst, src []byte, elemSize int, blockLog uint) ([]byte, error) {
	return encodeStream(dst, src, elemSize, blockLog, Version)
}

// EncodeBelow is Encode when the stream it appends is shorter than limit
// bytes; otherwise it returns dst unchanged and ErrNotBelow, having
// stopped as soon as the planes' payloads reached limit (a caller that
// holds a smaller coding of src spares most of the work).
func EncodeBelow(dst, src []byte, elemSize, limit int) ([]byte, error) {
	return encodeStreamBelow(dst, src, elemSize, defaultBlockLog, Version, max(limit, 0))
}

// ErrNotBelow: the coding would not be shorter than the limit given.
var ErrNotBelow = errors.New("planes: coding is not shorter than the limit")

// encodeStream is encode writing a stream of the given version; version 2
// may use sparse blocks.
func encodeStream(dst, src []byte, elemSize int, blockLog uint, version byte) ([]byte, error) {
	return encodeStreamBelow(dst, src, elemSize, blockLog, version, -1)
}

// encodeStreamBelow is encodeStream stopping with ErrNotBelow once the
// stream cannot be shorter than limit bytes; limit < 0 means no limit.
func encodeStreamBelow(dst, src []byte, elemSize int, blockLog uint, version byte, limit int) ([]byte, error) {
	if !validElemSize(elemSize) {
		return dst, fmt.Errorf("%w, got %d", ErrElemSize, elemSize)
	}
	if limit == 0 {
		return dst, ErrNotBelow
	}
	start := len(dst)
	es := elemSize
	nElems := len(src) / es
	body := src[:nElems*es]
	rot := es > 1 && chooseRot(body, es)

	st := getEncState()
	defer putEncState(st)
	st.sparseOK = version >= streamVersion2
	nPlanes := 0
	if nElems > 0 {
		nPlanes = es
		if !st.encodePlanes(body, es, rot, blockLog, max(limit, 0)) {
			return dst, ErrNotBelow
		}
	}

	transform := byte(transformNone)
	if rot {
		transform = transformRot
	}
	dst = append(dst, version, byte(es), transform, byte(blockLog))
	dst = binary.AppendUvarint(dst, uint64(len(src)))
	dst = append(dst, byte(nPlanes))
	total := 0
	for k := 0; k < nPlanes; k++ {
		pe := &st.planes[k]
		method, l := pe.result()
		dst = append(dst, method)
		dst = binary.AppendUvarint(dst, uint64(l))
		total += l
	}
	dst = slices.Grow(dst, total+len(src)-len(body))
	for k := 0; k < nPlanes; k++ {
		dst = st.planes[k].appendPayload(dst, 1<<blockLog)
	}
	dst = append(dst, src[len(body):]...)
	if limit >= 0 && len(dst)-start >= limit {
		return dst[:start], ErrNotBelow
	}
	return dst, nil
}

// Decode appends to dst the bytes encoded in enc. It returns an error
// wrapping ErrTooLarge, before allocating anything, when the declared decoded
// length exceeds maxSize, and one wrapping ErrCorrupt for invalid input; the
// whole header and block framing are checked before the output is
// allocated. Besides growing dst by the decoded length it uses only a pooled
// scratch of at most 1 MiB. On error dst is returned unchanged (its spare
// capacity may have been written to).
func Decode(dst, enc []byte, maxSize int) ([]byte, error) {
	var h header
	if err := parseHeader(enc, &h, min(max(maxSize, 0), math.MaxInt-len(dst)), Version); err != nil {
		return dst, err
	}
	out := slices.Grow(dst, h.n)[:len(dst)+h.n]
	body := out[len(dst) : len(dst)+h.nElems*h.es]
	if h.nElems > 0 {
		var err error
		if h.es == 1 {
			err = decodePlaneInto(body, &h)
		} else {
			err = decodePlanes(body, &h)
		}
		if err != nil {
			return dst, err
		}
	}
	copy(out[len(dst)+len(body):], h.tail)
	return out, nil
}

// chooseRot reports whether rotating the top 16 bits of each element lowers
// the estimated entropy of the two top planes. It samples up to 64 Ki
// elements spread over body.
func chooseRot(body []byte, es int) bool {
	n := len(body) / es
	if n < minRotElems {
		return false
	}
	// Sample runs of 256 consecutive elements (cache and prefetch
	// friendly), at most 256 of them, spread evenly over body.
	const run, runs = 256, 256
	step := max(run, n/runs)
	var hist [4][256]uint32
	for start := 0; start < n; start += step {
		for i := range min(run, n-start) {
			e := body[(start+i)*es : (start+i+1)*es]
			v := uint16(e[es-2]) | uint16(e[es-1])<<8
			r := bits.RotateLeft16(v, 1)
			hist[0][byte(v)]++
			hist[1][v>>8]++
			hist[2][byte(r)]++
			hist[3][r>>8]++
		}
	}
	plain := entropyBits(&hist[0]) + entropyBits(&hist[1])
	rotated := entropyBits(&hist[2]) + entropyBits(&hist[3])
	// Require a clear gain (0.2%) so that noise does not flip the choice.
	return rotated < plain*0.998
}

// nlog2nTable holds n*log2(n) for small n; entropyBits looks most counts up
// there instead of calling math.Log2.
var nlog2nTable = sync.OnceValue(func() *[4096]float64 {
	var t [4096]float64
	for n := 1; n < len(t); n++ {
		t[n] = float64(n) * math.Log2(float64(n))
	}
	return &t
})

// entropyBits returns the order-0 entropy of the histogram times its total,
// that is the ideal coded size in bits.
func entropyBits(h *[256]uint32) float64 {
	tab := nlog2nTable()
	var total uint64
	var sum float64
	for _, c := range h {
		total += uint64(c)
		if int(c) < len(tab) {
			sum += tab[c]
		} else {
			f := float64(c)
			sum += f * math.Log2(f)
		}
	}
	if total == 0 {
		return 0
	}
	f := float64(total)
	return f*math.Log2(f) - sum
}
