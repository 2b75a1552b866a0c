package planes

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Delta payloads: the content coded as its difference from a reference (the
// decoded bytes of another chunk of the same tensor), the difference coded
// as a version 2 stream. doc.go specifies the format.

// DeltaVersion is the version byte that EncodeDelta writes and the only one
// DecodeDelta accepts.
const DeltaVersion = 1

// DeltaOp is how a delta payload combines an element with its reference.
type DeltaOp byte

const (
	// OpXOR codes content XOR reference.
	OpXOR DeltaOp = 0
	// OpSub codes the zigzag of the wrapping difference of the elements
	// as little-endian integers: small changes of a float's value are
	// small integers there, where XOR flips every bit a carry crosses.
	OpSub DeltaOp = 1
	// OpAuto asks EncodeDeltaWith to pick the op by its estimate; it is
	// never written.
	OpAuto DeltaOp = 0xff
)

func (op DeltaOp) String() string {
	switch op {
	case OpXOR:
		return "xor"
	case OpSub:
		return "sub"
	case OpAuto:
		return "auto"
	}
	return fmt.Sprintf("op(%d)", byte(op))
}

// RefForm is how a reference's bytes line up with the content's.
type RefForm byte

const (
	// RefSame: the reference is n bytes of the same element type.
	RefSame RefForm = 0
	// RefF32ToBF16: the content is bf16, the reference 2n bytes of fp32
	// (a bf16 fine-tune of an fp32 base); each reference element is
	// rounded to bf16 the way PyTorch casts (round to nearest even, every
	// NaN to 0x7fc0) before it is combined.
	RefF32ToBF16 RefForm = 1
)

func (f RefForm) String() string {
	switch f {
	case RefSame:
		return "same"
	case RefF32ToBF16:
		return "f32-to-bf16"
	}
	return fmt.Sprintf("form(%d)", byte(f))
}

// refLen returns the reference length that form needs for n content bytes.
func (f RefForm) refLen(n int) int {
	if f == RefF32ToBF16 {
		return 2 * n
	}
	return n
}

// deltaPrefixLen is the length of a delta payload's own header (version,
// op, reference form); the stream follows.
const deltaPrefixLen = 3

// ErrReference is returned (wrapped) when a reference does not fit a delta:
// its length is not what the payload's reference form needs for the
// content length, or (EncodeDelta) the form does not fit the element size.
var ErrReference = errors.New("planes: reference does not fit the delta")

// DeltaInfo is what the header of a delta payload declares.
type DeltaInfo struct {
	Op       DeltaOp
	Form     RefForm
	ElemSize int
	// N is the decoded content length; RefLen the length of the
	// reference it needs.
	N, RefLen int
}

// ParseDelta reads the header of a delta payload without decoding (or
// validating) the rest, so a caller knows which reference, of what length,
// to fetch.
func ParseDelta(payload []byte) (DeltaInfo, error) {
	op, form, err := parseDeltaPrefix(payload)
	if err != nil {
		return DeltaInfo{}, err
	}
	var h header
	if _, err := parsePrefix(payload[deltaPrefixLen:], &h, streamVersion2); err != nil {
		return DeltaInfo{}, err
	}
	if err := checkForm(form, h.es, h.n); err != nil {
		return DeltaInfo{}, err
	}
	return DeltaInfo{Op: op, Form: form, ElemSize: h.es, N: h.n, RefLen: form.refLen(h.n)}, nil
}

func parseDeltaPrefix(p []byte) (DeltaOp, RefForm, error) {
	if len(p) < deltaPrefixLen {
		return 0, 0, corrupt("delta of %d bytes is too short for a header", len(p))
	}
	if p[0] != DeltaVersion {
		return 0, 0, corrupt("unknown delta format version %d", p[0])
	}
	op, form := DeltaOp(p[1]), RefForm(p[2])
	if op != OpXOR && op != OpSub {
		return 0, 0, corrupt("unknown delta op %d", p[1])
	}
	if form != RefSame && form != RefF32ToBF16 {
		return 0, 0, corrupt("unknown reference form %d", p[2])
	}
	return op, form, nil
}

// checkForm checks that a stream of es-byte elements and n bytes fits form.
func checkForm(form RefForm, es, n int) error {
	if form == RefF32ToBF16 {
		if es != 2 {
			return corrupt("reference form %s with element size %d, want 2", form, es)
		}
		if n%2 != 0 || n > math.MaxInt/2 {
			return corrupt("reference form %s with %d bytes of content", form, n)
		}
	}
	return nil
}

// EncodeDelta appends to dst a delta payload that codes content against ref,
// the decoded bytes of the reference chunk (same length, same element type,
// elemSize bytes wide: 1, 2, 4 or 8). It picks XOR or subtraction by an
// entropy estimate on a sample. The caller compares the result's length
// with the standalone coding's (Encode) and keeps the smaller.
func EncodeDelta(dst, content, ref []byte, elemSize int) ([]byte, error) {
	return encodeDelta(dst, content, ref, elemSize, RefSame, nil, defaultBlockLog)
}

// EncodeDeltaF32ToBF16 is EncodeDelta for bf16 content against an fp32
// reference of twice its length (RefF32ToBF16): the first checkpoint of a
// bf16 fine-tune against its fp32 base.
func EncodeDeltaF32ToBF16(dst, content, ref []byte) ([]byte, error) {
	return encodeDelta(dst, content, ref, 2, RefF32ToBF16, nil, defaultBlockLog)
}

// EncodeDeltaWith is EncodeDelta with the reference form and the op given
// (OpAuto: the estimate's choice), for callers that measure them.
func EncodeDeltaWith(dst, content, ref []byte, elemSize int, form RefForm, op DeltaOp) ([]byte, error) {
	switch op {
	case OpAuto:
		return encodeDelta(dst, content, ref, elemSize, form, nil, defaultBlockLog)
	case OpXOR, OpSub:
		return encodeDelta(dst, content, ref, elemSize, form, &op, defaultBlockLog)
	}
	return dst, fmt.Errorf("planes: unknown delta op %d", op)
}

// EncodeDeltaBelow is EncodeDelta when the payload it appends is shorter
// than limit bytes; otherwise it returns dst unchanged and ErrNotBelow,
// having stopped as soon as it knew (EncodeBelow).
func EncodeDeltaBelow(dst, content, ref []byte, elemSize, limit int) ([]byte, error) {
	return encodeDeltaBelow(dst, content, ref, elemSize, RefSame, nil, defaultBlockLog, max(limit, 0))
}

// encodeDelta is EncodeDelta with a choice of reference form, op (nil:
// estimate) and block length (tests force them).
func encodeDelta(dst, content, ref []byte, es int, form RefForm, force *DeltaOp, blockLog uint) ([]byte, error) {
	return encodeDeltaBelow(dst, content, ref, es, form, force, blockLog, -1)
}

// encodeDeltaBelow is encodeDelta with a limit on the payload's length
// (encodeStreamBelow; < 0: none).
func encodeDeltaBelow(dst, content, ref []byte, es int, form RefForm, force *DeltaOp, blockLog uint, limit int) ([]byte, error) {
	if !validElemSize(es) {
		return dst, fmt.Errorf("%w, got %d", ErrElemSize, es)
	}
	switch {
	case form != RefSame && form != RefF32ToBF16:
		return dst, fmt.Errorf("%w: unknown reference form %d", ErrReference, form)
	case form == RefF32ToBF16 && (es != 2 || len(content)%2 != 0):
		return dst, fmt.Errorf("%w: form %s needs whole bf16 elements, got element size %d and %d bytes", ErrReference, form, es, len(content))
	case len(ref) != form.refLen(len(content)):
		return dst, fmt.Errorf("%w: reference of %d bytes for %d bytes of content, want %d", ErrReference, len(ref), len(content), form.refLen(len(content)))
	}
	op := OpXOR
	if force != nil {
		op = *force
	} else if chooseSub(content, ref, es, form) {
		op = OpSub
	}
	bp := takeDeltaBuf(len(content))
	defer putDeltaBuf(bp)
	d := (*bp)[:len(content)]
	forward(d, content, ref, es, op, form)
	const prefix = 3
	if limit >= 0 && limit <= prefix {
		return dst, ErrNotBelow
	}
	out := append(dst, DeltaVersion, byte(op), byte(form))
	streamLimit := -1
	if limit >= 0 {
		streamLimit = limit - prefix
	}
	out, err := encodeStreamBelow(out, d, es, blockLog, streamVersion2, streamLimit)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// DecodeDelta appends to dst the content that payload codes against ref,
// which must be the reference's decoded bytes (RefLen of ParseDelta). n is
// the content length the caller expects: a payload declaring more is
// refused with ErrTooLarge, any other mismatch with ErrCorrupt, before
// anything is allocated; a reference of the wrong length with ErrReference.
// Besides growing dst by n bytes it uses only a pooled scratch of at most
// 1.3 MiB (Decode's, and the bitmaps and values of sparse blocks).
// On error dst is returned unchanged (its spare capacity may have been
// written to).
func DecodeDelta(dst, payload, ref []byte, n int) ([]byte, error) {
	op, form, err := parseDeltaPrefix(payload)
	if err != nil {
		return dst, err
	}
	var h header
	limit := min(max(n, 0), math.MaxInt-len(dst))
	if err := parseHeader(payload[deltaPrefixLen:], &h, limit, streamVersion2); err != nil {
		return dst, err
	}
	if h.n != n {
		return dst, corrupt("delta declares %d bytes, want %d", h.n, n)
	}
	if err := checkForm(form, h.es, h.n); err != nil {
		return dst, err
	}
	if want := form.refLen(n); len(ref) != want {
		return dst, fmt.Errorf("%w: reference of %d bytes, the delta needs %d", ErrReference, len(ref), want)
	}
	start := len(dst)
	out := slices.Grow(dst, n)[:start+n]
	content := out[start:]
	nb := h.nElems * h.es
	if h.nElems > 0 {
		if err := decodeDeltaBody(content[:nb], &h, ref, op, form); err != nil {
			return dst, err
		}
	}
	// The tail (form RefSame only: RefF32ToBF16 has none) is XORed.
	for i, v := range h.tail {
		content[nb+i] = v ^ ref[nb+i]
	}
	return out, nil
}

// Free list of the difference buffers EncodeDelta codes.
var deltaBufs = make(chan *[]byte, stateCap)

func takeDeltaBuf(n int) *[]byte {
	var bp *[]byte
	select {
	case bp = <-deltaBufs:
	default:
		bp = new([]byte)
	}
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	return bp
}

func putDeltaBuf(bp *[]byte) {
	if cap(*bp) > maxPooledBuf {
		return
	}
	select {
	case deltaBufs <- bp:
	default:
	}
}

// chooseSub reports whether subtraction codes content against ref in
// fewer bits than XOR, by the order-0 entropy of every byte plane over up
// to 64 Ki sampled elements. It asks for a clear gain (0.5%).
func chooseSub(content, ref []byte, es int, form RefForm) bool {
	n := len(content) / es
	if n < minRotElems {
		return false
	}
	const run, runs = 256, 256
	step := max(run, n/runs)
	var hx, hs [maxPlanes][256]uint32
	var ex, eu [run * maxPlanes]byte
	ratio := form.refLen(1)
	for start := 0; start < n; start += step {
		m := min(run, n-start)
		lo, hi := start*es, (start+m)*es
		c, r := content[lo:hi], ref[lo*ratio:hi*ratio]
		forward(ex[:hi-lo], c, r, es, OpXOR, form)
		forward(eu[:hi-lo], c, r, es, OpSub, form)
		for i := 0; i < hi-lo; i += es {
			for k := 0; k < es; k++ {
				hx[k][ex[i+k]]++
				hs[k][eu[i+k]]++
			}
		}
	}
	var bx, bs float64
	for k := 0; k < es; k++ {
		bx += entropyBits(&hx[k])
		bs += entropyBits(&hs[k])
	}
	return bs < bx*0.995
}

// bf16FromF32 rounds an fp32 bit pattern to bf16 as PyTorch does: to
// nearest, ties to even; every NaN becomes 0x7fc0.
func bf16FromF32(b uint32) uint16 {
	if b&0x7fff_ffff > 0x7f80_0000 {
		return 0x7fc0
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// forward writes to d the difference of content and ref: the first
// len(content)/es elements by op, any tail bytes by XOR. ref is in form's
// layout.
func forward(d, content, ref []byte, es int, op DeltaOp, form RefForm) {
	nb := len(content) / es * es
	switch {
	case form == RefF32ToBF16:
		bf16Delta(d[:nb], content[:nb], ref[:2*nb], op, false)
	case op == OpXOR:
		xorBytes(d[:nb], content[:nb], ref[:nb])
	default:
		subElems(d[:nb], content[:nb], ref[:nb], es)
	}
	xorBytes(d[nb:len(content)], content[nb:], ref[nb:len(content)])
}

// inverse turns body, a run of whole elements of the difference, into
// content in place; ref is the matching run of the reference in form's
// layout.
func inverse(body, ref []byte, es int, op DeltaOp, form RefForm) {
	switch {
	case form == RefF32ToBF16:
		bf16Delta(body, body, ref[:2*len(body)], op, true)
	case op == OpXOR:
		xorBytes(body, body, ref)
	default:
		addElems(body, ref, es)
	}
}

// xorBytes sets dst[i] = a[i] ^ b[i] for i < len(dst); dst may be a.
func xorBytes(dst, a, b []byte) {
	n := len(dst)
	a, b = a[:n], b[:n]
	i := 0
	for ; i+32 <= n; i += 32 {
		d, x, y := dst[i:i+32], a[i:i+32], b[i:i+32]
		binary.LittleEndian.PutUint64(d, binary.LittleEndian.Uint64(x)^binary.LittleEndian.Uint64(y))
		binary.LittleEndian.PutUint64(d[8:], binary.LittleEndian.Uint64(x[8:])^binary.LittleEndian.Uint64(y[8:]))
		binary.LittleEndian.PutUint64(d[16:], binary.LittleEndian.Uint64(x[16:])^binary.LittleEndian.Uint64(y[16:]))
		binary.LittleEndian.PutUint64(d[24:], binary.LittleEndian.Uint64(x[24:])^binary.LittleEndian.Uint64(y[24:]))
	}
	for ; i < n; i++ {
		dst[i] = a[i] ^ b[i]
	}
}

// SWAR lane arithmetic on a uint64 holding 64/w lanes of w bits: lowBits
// has the lowest bit of every lane set, highBits the highest, ones(w) is a
// lane of all ones.
var (
	lowBits  = [9]uint64{1: 0x0101_0101_0101_0101, 2: 0x0001_0001_0001_0001, 4: 0x0000_0001_0000_0001, 8: 1}
	highBits = [9]uint64{1: 0x8080_8080_8080_8080, 2: 0x8000_8000_8000_8000, 4: 0x8000_0000_8000_0000, 8: 1 << 63}
	laneOnes = [9]uint64{1: 0xff, 2: 0xffff, 4: 0xffff_ffff, 8: ^uint64(0)}
)

// addLanes returns x + y lane by lane (no carry crosses a lane); h is
// highBits.
func addLanes(x, y, h uint64) uint64 { return (x&^h + y&^h) ^ (x^y)&h }

// subLanes returns x - y lane by lane.
func subLanes(x, y, h uint64) uint64 { return (x | h - y&^h) ^ (x^^y)&h }

// zigzagLanes applies zigzag to every lane of v (lanes of es bytes).
func zigzagLanes(v uint64, es int) uint64 {
	sign := v >> (8*es - 1) & lowBits[es]
	return v<<1&^lowBits[es] ^ sign*laneOnes[es]
}

// unzigzagLanes is the inverse of zigzagLanes.
func unzigzagLanes(v uint64, es int) uint64 {
	return v>>1&^highBits[es] ^ (v&lowBits[es])*laneOnes[es]
}

// subElems sets each es-byte element of d to zigzag(c - r).
func subElems(d, c, r []byte, es int) {
	n := len(d)
	c, r = c[:n], r[:n]
	h := highBits[es]
	i := 0
	for ; i+8 <= n; i += 8 {
		x, y := binary.LittleEndian.Uint64(c[i:i+8]), binary.LittleEndian.Uint64(r[i:i+8])
		binary.LittleEndian.PutUint64(d[i:i+8], zigzagLanes(subLanes(x, y, h), es))
	}
	// Fewer than 8 bytes of whole elements are left.
	for ; i+es <= n; i += es {
		var x, y uint64
		for k := es - 1; k >= 0; k-- {
			x, y = x<<8|uint64(c[i+k]), y<<8|uint64(r[i+k])
		}
		v := zigzagLanes(subLanes(x, y, h), es)
		for k := range es {
			d[i+k] = byte(v >> (8 * k))
		}
	}
}

// addElems sets each es-byte element of body (a zigzagged difference) to
// r + unzigzag(body).
func addElems(body, r []byte, es int) {
	n := len(body)
	r = r[:n]
	h := highBits[es]
	i := 0
	for ; i+8 <= n; i += 8 {
		v, y := binary.LittleEndian.Uint64(body[i:i+8]), binary.LittleEndian.Uint64(r[i:i+8])
		binary.LittleEndian.PutUint64(body[i:i+8], addLanes(y, unzigzagLanes(v, es), h))
	}
	for ; i+es <= n; i += es {
		var v, y uint64
		for k := es - 1; k >= 0; k-- {
			v, y = v<<8|uint64(body[i+k]), y<<8|uint64(r[i+k])
		}
		x := addLanes(y, unzigzagLanes(v, es), h)
		for k := range es {
			body[i+k] = byte(x >> (8 * k))
		}
	}
}

// bf16Delta combines bf16 elements of src with the fp32 elements of ref32
// rounded to bf16 (bf16FromF32), into dst (which may be src): by XOR, or
// for OpSub the zigzagged difference (inv false: src is content) or its
// inverse (inv true: src is the difference).
func bf16Delta(dst, src, ref32 []byte, op DeltaOp, inv bool) {
	n := len(dst)
	src, ref32 = src[:n], ref32[:2*n]
	h := highBits[2]
	i := 0
	for ; i+8 <= n; i += 8 {
		x := binary.LittleEndian.Uint64(src[i : i+8])
		r0 := binary.LittleEndian.Uint64(ref32[2*i : 2*i+8])
		r1 := binary.LittleEndian.Uint64(ref32[2*i+8 : 2*i+16])
		r := uint64(bf16FromF32(uint32(r0))) | uint64(bf16FromF32(uint32(r0>>32)))<<16 |
			uint64(bf16FromF32(uint32(r1)))<<32 | uint64(bf16FromF32(uint32(r1>>32)))<<48
		var v uint64
		switch {
		case op == OpXOR:
			v = x ^ r
		case inv:
			v = addLanes(r, unzigzagLanes(x, 2), h)
		default:
			v = zigzagLanes(subLanes(x, r, h), 2)
		}
		binary.LittleEndian.PutUint64(dst[i:i+8], v)
	}
	for ; i+2 <= n; i += 2 {
		x := uint64(binary.LittleEndian.Uint16(src[i:]))
		r := uint64(bf16FromF32(binary.LittleEndian.Uint32(ref32[2*i:])))
		var v uint64
		switch {
		case op == OpXOR:
			v = x ^ r
		case inv:
			v = addLanes(r, unzigzagLanes(x, 2), h)
		default:
			v = zigzagLanes(subLanes(x, r, h), 2)
		}
		binary.LittleEndian.PutUint16(dst[i:], uint16(v))
	}
}
