package planes

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/huff0"
	"github.com/klauspost/compress/zstd"
)

const (
	// maxBackoff bounds how many blocks a plane skips huff0 (or zstd)
	// after it failed to pay, before trying again.
	maxBackoff = 16
	// huffWantLogLess makes huff0 give up on a block unless it saves at
	// least 1/64 of it; smaller gains are not worth the decode time.
	huffWantLogLess = 6
	// minCodedBlock is the shortest block that huff0 and zstd are tried
	// on; shorter ones are stored raw (or rle).
	minCodedBlock = 64
	// zstdProbeLen is how much of a block the zstd probe compresses.
	zstdProbeLen = 16 << 10
	// maxPooledBuf is the largest plane buffer kept in the pool between
	// calls (so a pooled encState holds at most 8 of them).
	maxPooledBuf = 8 << 20
)

var zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderCRC(false),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithWindowSize(1<<maxBlockLog),
		zstd.WithSingleSegment(true),
	)
	if err != nil {
		panic("planes: zstd encoder: " + err.Error())
	}
	return e
})

var zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(1<<maxBlockLog),
		zstd.WithDecoderMaxWindow(1<<maxBlockLog),
	)
	if err != nil {
		panic("planes: zstd decoder: " + err.Error())
	}
	return d
})

// planeEnc accumulates the block stream of one plane.
type planeEnc struct {
	buf      []byte // kind byte + payload of each block
	blocks   int
	raw      int  // number of raw blocks
	sameRLE  bool // all blocks so far are RLE blocks of rleByte
	rleByte  byte
	huffNext int // next block index at which to try huff0
	huffBack int
	zNext    int // next block index at which to probe zstd
	zBack    int
	zWon     bool // zstd won the previous block
}

func (pe *planeEnc) reset() {
	*pe = planeEnc{buf: pe.buf[:0], sameRLE: true, huffBack: 1, zBack: 1}
}

// result returns the plane method and payload length.
func (pe *planeEnc) result() (byte, int) {
	switch {
	case pe.sameRLE:
		return planeConst, 1
	case pe.raw == pe.blocks:
		return planeRaw, len(pe.buf) - pe.blocks
	}
	return planeBlocked, len(pe.buf)
}

// appendPayload appends the payload announced by result; bl is the block
// length.
func (pe *planeEnc) appendPayload(dst []byte, bl int) []byte {
	method, _ := pe.result()
	switch method {
	case planeConst:
		return append(dst, pe.rleByte)
	case planeRaw:
		// Every block is a kind byte followed by the block's bytes; all
		// blocks but the last are full.
		buf := pe.buf
		for len(buf) > 0 {
			m := min(bl, len(buf)-1)
			dst = append(dst, buf[1:1+m]...)
			buf = buf[1+m:]
		}
		return dst
	}
	return append(dst, pe.buf...)
}

// encState is the per-call scratch of Encode, pooled.
type encState struct {
	huff   huff0.Scratch
	split  []byte
	zbuf   []byte
	planes [maxPlanes]planeEnc

	// sparseOK allows sparse blocks (stream version 2); the rest is their
	// scratch: the bitmap and values of the block being coded, a second
	// huff0 scratch (st.huff holds the whole-block candidate meanwhile)
	// and the assembled payload.
	sparseOK bool
	sbits    []byte
	svals    []byte
	shuff    huff0.Scratch
	szbuf    []byte
	spay     []byte
}

// encStates and decStates are free lists of scratch states. Unlike a
// sync.Pool they survive garbage collections, which matters when the caller
// runs near a memory limit (collections are then frequent, and refilling a
// pool means allocating and zeroing megabytes of plane buffers per call).
// They hold at most stateCap states; callers with more workers allocate.
const stateCap = 8

var (
	encStates = make(chan *encState, stateCap)
	decStates = make(chan *decState, stateCap)
)

func takeEnc() *encState {
	select {
	case st := <-encStates:
		return st
	default:
		return new(encState)
	}
}

func takeDec() *decState {
	select {
	case st := <-decStates:
		return st
	default:
		return new(decState)
	}
}

func putDecState(st *decState) {
	select {
	case decStates <- st:
	default:
	}
}

func getEncState() *encState {
	st := takeEnc()
	for k := range st.planes {
		st.planes[k].reset()
	}
	st.huff.Reuse = huff0.ReusePolicyNone
	st.huff.WantLogLess = huffWantLogLess
	st.shuff.Reuse = huff0.ReusePolicyNone
	st.sparseOK = false
	return st
}

func putEncState(st *encState) {
	for k := range st.planes {
		if cap(st.planes[k].buf) > maxPooledBuf {
			st.planes[k].buf = nil
		}
	}
	select {
	case encStates <- st:
	default:
	}
}

// encodePlanes splits body into planes, 1<<blockLog elements at a time, and
// encodes each plane's block into its planeEnc. With limit > 0 it stops,
// returning false, as soon as the planes' payloads alone reach limit bytes
// (the stream would be longer still).
func (st *encState) encodePlanes(body []byte, es int, rot bool, blockLog uint, limit int) bool {
	nElems := len(body) / es
	bl := 1 << blockLog
	// Reserve roughly what the planes will need so appends rarely grow.
	for k := 0; k < es; k++ {
		st.planes[k].buf = slices.Grow(st.planes[k].buf, nElems+nElems>>blockLog*4+8)
	}
	if es == 1 {
		for b, off := 0, 0; off < nElems; b, off = b+1, off+bl {
			st.encodeBlock(&st.planes[0], body[off:min(off+bl, nElems)], b)
			if limit > 0 && st.payloadAtLeast(1) >= limit {
				return false
			}
		}
		return true
	}
	if cap(st.split) < es*bl {
		st.split = make([]byte, maxPlanes*bl)
	}
	var views [maxPlanes][]byte
	for k := 0; k < es; k++ {
		views[k] = st.split[k*bl : (k+1)*bl]
	}
	for b, off := 0, 0; off < nElems; b, off = b+1, off+bl {
		m := min(bl, nElems-off)
		split(&views, body[off*es:(off+m)*es], es, rot)
		for k := 0; k < es; k++ {
			st.encodeBlock(&st.planes[k], views[k][:m], b)
		}
		if limit > 0 && st.payloadAtLeast(es) >= limit {
			return false
		}
	}
	return true
}

// payloadAtLeast is a lower bound of the payload length of the first n
// planes once encoding finishes, whatever blocks follow: a plane of
// repeated bytes so far may still become one byte, and a plane of raw
// blocks drops the kind bytes; blocks are only ever added.
func (st *encState) payloadAtLeast(n int) int {
	total := 0
	for k := range n {
		pe := &st.planes[k]
		if pe.sameRLE {
			total++
		} else {
			total += len(pe.buf) - pe.blocks
		}
	}
	return total
}

// constByte reports whether blk consists of one repeated byte.
func constByte(blk []byte) (byte, bool) {
	if len(blk) == 0 {
		return 0, false
	}
	c := blk[0]
	rest := blk[1:]
	if len(rest) >= 8 {
		// Compare 8 bytes at a time against c repeated.
		w := uint64(c) * 0x0101_0101_0101_0101
		i := 0
		for ; i+8 <= len(rest); i += 8 {
			if binary.LittleEndian.Uint64(rest[i:]) != w {
				return 0, false
			}
		}
		rest = rest[i:]
	}
	for _, v := range rest {
		if v != c {
			return 0, false
		}
	}
	return c, true
}

// encodeBlock appends one block of a plane, choosing the smallest of RLE,
// huff0, zstd and raw among the methods it tries.
func (st *encState) encodeBlock(pe *planeEnc, blk []byte, b int) {
	m := len(blk)
	pe.blocks++
	if c, ok := constByte(blk); ok {
		if pe.blocks == 1 {
			pe.rleByte = c
		} else if c != pe.rleByte {
			pe.sameRLE = false
		}
		pe.buf = append(pe.buf, blockRLE, c)
		return
	}
	pe.sameRLE = false

	if m < minCodedBlock {
		pe.raw++
		pe.buf = append(pe.buf, blockRaw)
		pe.buf = append(pe.buf, blk...)
		return
	}
	kind := byte(blockRaw)
	best := m // payload size of the best choice so far
	var payload []byte
	tryHuff := b >= pe.huffNext
	if st.sparseOK {
		if zeros := countZeros(blk); zeros >= m/2 {
			if sp := st.sparseBlock(blk, m-zeros); uvarintLen(len(sp))+len(sp) < best {
				kind, payload, best = blockSparse, sp, uvarintLen(len(sp))+len(sp)
			}
			// huff0 spends at least a bit per byte: with more than
			// 15/16 zeros the sparse form always beats it.
			tryHuff = tryHuff && zeros < m-m/16
		}
	}
	if tryHuff {
		out, _, err := huff0.Compress4X(blk, &st.huff)
		if err == nil && uvarintLen(len(out))+len(out) < best {
			kind, payload, best = blockHuff, out, uvarintLen(len(out))+len(out)
			pe.huffBack = 1
		} else {
			// ErrIncompressible, or an internal huff0 error: back off.
			pe.huffNext = b + pe.huffBack
			pe.huffBack = min(2*pe.huffBack, maxBackoff)
		}
	}
	if z := st.zstdBlock(pe, blk, b, best); z != nil {
		kind, payload = blockZstd, z
	}
	switch kind {
	case blockRaw:
		pe.raw++
		pe.buf = append(pe.buf, blockRaw)
		pe.buf = append(pe.buf, blk...)
	default:
		pe.buf = append(pe.buf, kind)
		pe.buf = binary.AppendUvarint(pe.buf, uint64(len(payload)))
		pe.buf = append(pe.buf, payload...)
	}
}

// countZeros returns the number of zero bytes in blk.
func countZeros(blk []byte) int {
	n := 0
	i := 0
	for ; i+8 <= len(blk); i += 8 {
		w := binary.LittleEndian.Uint64(blk[i:])
		if w == 0 {
			n += 8
			continue
		}
		// Set the high bit of every byte that is not zero.
		nz := ((w & 0x7f7f_7f7f_7f7f_7f7f) + 0x7f7f_7f7f_7f7f_7f7f | w) & 0x8080_8080_8080_8080
		n += 8 - bits.OnesCount64(nz)
	}
	for _, v := range blk[i:] {
		if v == 0 {
			n++
		}
	}
	return n
}

// sparseBlock returns the payload of blk as a sparse block (doc.go): the
// bitmap of its nonzero bytes and those bytes, each coded on its own.
// nonzero is the number of nonzero bytes in blk. The result is valid until
// the next call.
func (st *encState) sparseBlock(blk []byte, nonzero int) []byte {
	nb := (len(blk) + 7) / 8
	st.sbits = slices.Grow(st.sbits[:0], nb)[:nb]
	st.svals = slices.Grow(st.svals[:0], nonzero)[:0]
	bitmap, vals := st.sbits, st.svals
	i := 0
	for ; i+8 <= len(blk); i += 8 {
		w := binary.LittleEndian.Uint64(blk[i:])
		if w == 0 {
			bitmap[i/8] = 0
			continue
		}
		// The high bit of every nonzero byte (as countZeros), gathered
		// into the top byte by one multiplication: byte k's bit lands
		// on bit 56+k, no two partial products overlap.
		nz := ((w & 0x7f7f_7f7f_7f7f_7f7f) + 0x7f7f_7f7f_7f7f_7f7f | w) & 0x8080_8080_8080_8080
		bitmap[i/8] = byte((nz >> 7) * 0x0102_0408_1020_4080 >> 56)
		for ; nz != 0; nz &= nz - 1 {
			vals = append(vals, byte(w>>(bits.TrailingZeros64(nz)&^7)))
		}
	}
	if i < len(blk) {
		var bm byte
		for k, v := range blk[i:] {
			if v != 0 {
				bm |= 1 << k
				vals = append(vals, v)
			}
		}
		bitmap[i/8] = bm
	}
	st.svals = vals

	pay := st.spay[:0]
	// The bitmap: raw, huff0 or zstd, whichever is smallest.
	bkind, bdata := byte(blockRaw), bitmap
	if len(bitmap) >= minCodedBlock {
		if out, _, err := huff0.Compress4X(bitmap, &st.shuff); err == nil && uvarintLen(len(out))+len(out) < len(bdata) {
			bkind, bdata = blockHuff, out
		}
		z := zstdEncoder().EncodeAll(bitmap, st.szbuf[:0])
		st.szbuf = z
		if uvarintLen(len(z))+len(z) < min(len(bdata), len(bitmap)) {
			bkind, bdata = blockZstd, z
		}
	}
	pay = append(pay, bkind)
	if bkind != blockRaw {
		pay = binary.AppendUvarint(pay, uint64(len(bdata)))
	}
	pay = append(pay, bdata...)
	// The values: rle, huff0 or raw.
	switch c, ok := constByte(vals); {
	case ok:
		pay = append(pay, blockRLE, c)
	default:
		vkind, vdata := byte(blockRaw), vals
		if len(vals) >= minCodedBlock {
			if out, _, err := huff0.Compress4X(vals, &st.shuff); err == nil && len(out) < len(vals) {
				vkind, vdata = blockHuff, out
			}
		}
		pay = append(pay, vkind)
		pay = append(pay, vdata...)
	}
	st.spay = pay
	return pay
}

// zstdBlock returns the zstd encoding of block b if it tries zstd and zstd
// beats best, the payload size of the best encoding so far. zstd wins on runs
// and repeats, which huff0 cannot see. Right after a zstd win the whole block
// is compressed at once. Otherwise, on a backoff schedule, a prefix of the
// block is compressed as a probe, and the whole block only if the probe
// beats the best ratio by 10%.
func (st *encState) zstdBlock(pe *planeEnc, blk []byte, b, best int) []byte {
	if !pe.zWon {
		if b < pe.zNext {
			return nil
		}
		if len(blk) > zstdProbeLen {
			z := zstdEncoder().EncodeAll(blk[:zstdProbeLen], st.zbuf[:0])
			st.zbuf = z
			if len(z)*len(blk)*10 >= best*zstdProbeLen*9 {
				pe.zstdBackoff(b)
				return nil
			}
		}
	}
	z := zstdEncoder().EncodeAll(blk, st.zbuf[:0])
	st.zbuf = z
	if uvarintLen(len(z))+len(z) < best {
		pe.zWon = true
		return z
	}
	pe.zWon = false
	pe.zstdBackoff(b)
	return nil
}

// zstdBackoff schedules the next zstd probe after a failed one at block b.
func (pe *planeEnc) zstdBackoff(b int) {
	if b >= pe.zNext {
		pe.zNext = b + pe.zBack
		pe.zBack = min(2*pe.zBack, maxBackoff)
	}
}

func uvarintLen(v int) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// decState is the per-call scratch of Decode, pooled.
type decState struct {
	huff  huff0.Scratch
	block []byte // maxPlanes blocks of 1<<maxBlockLog bytes
	// sparse holds a sparse block's decoded bitmap and values: at most
	// 1<<maxBlockLog/8 + 1<<maxBlockLog bytes, allocated at the first
	// sparse block Decode meets.
	sparse []byte
	// bits holds the bitmaps of a block's sparse planes for
	// DecodeDelta's sparse path: maxPlanes of 1<<maxBlockLog/8 bytes.
	bits []byte
}

// decodeBlock decodes one block into dst, whose capacity is the block's
// decoded length m, and returns the decoded bytes: dst or, for raw blocks, a
// view of the payload.
func (st *decState) decodeBlock(dst []byte, kind byte, payload []byte, plane, b int) ([]byte, error) {
	m := cap(dst)
	switch kind {
	case blockRaw:
		return payload, nil
	case blockRLE:
		dst = dst[:m]
		fill(dst, payload[0])
		return dst, nil
	case blockHuff:
		s, rest, err := huff0.ReadTable(payload, &st.huff)
		if err != nil {
			return nil, corrupt("huff0 table of block %d in plane %d: %v", b, plane, err)
		}
		out, err := s.Decoder().Decompress4X(dst[:0:m], rest)
		if err != nil {
			return nil, corrupt("huff0 block %d in plane %d: %v", b, plane, err)
		}
		if len(out) != m {
			return nil, corrupt("huff0 block %d in plane %d decoded to %d bytes, want %d", b, plane, len(out), m)
		}
		return out, nil
	case blockZstd:
		out, err := zstdDecoder().DecodeAll(payload, dst[:0:m])
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
				err = errors.New("decodes to more than the block size")
			}
			return nil, corrupt("zstd block %d in plane %d: %v", b, plane, err)
		}
		if len(out) != m {
			return nil, corrupt("zstd block %d in plane %d decoded to %d bytes, want %d", b, plane, len(out), m)
		}
		return out, nil
	case blockSparse:
		if err := st.decodeSparse(dst[:m], payload); err != nil {
			return nil, corrupt("sparse block %d in plane %d: %v", b, plane, err)
		}
		return dst[:m], nil
	}
	return nil, corrupt("unknown kind %d of block %d in plane %d", kind, b, plane)
}

// splitSparse splits the payload of a sparse block that decodes to m bytes
// into its coded bitmap and coded values, and checks what can be checked
// without decoding them.
func splitSparse(p []byte, m int) (bkind byte, bitmap []byte, vkind byte, vals []byte, err error) {
	nb := (m + 7) / 8
	if len(p) == 0 {
		return 0, nil, 0, nil, errors.New("no bitmap")
	}
	bkind, p = p[0], p[1:]
	switch bkind {
	case blockRaw:
		if len(p) < nb {
			return 0, nil, 0, nil, errors.New("bitmap truncated")
		}
		bitmap, p = p[:nb], p[nb:]
	case blockHuff, blockZstd:
		v, n := binary.Uvarint(p)
		if n <= 0 || v == 0 || v > uint64(len(p)-n) {
			return 0, nil, 0, nil, errors.New("bad length of the bitmap")
		}
		bitmap, p = p[n:n+int(v)], p[n+int(v):]
	default:
		return 0, nil, 0, nil, fmt.Errorf("unknown bitmap kind %d", bkind)
	}
	if len(p) == 0 {
		return 0, nil, 0, nil, errors.New("no values")
	}
	vkind, vals = p[0], p[1:]
	switch vkind {
	case blockRaw:
		if len(vals) > m {
			return 0, nil, 0, nil, fmt.Errorf("%d values for a block of %d bytes", len(vals), m)
		}
	case blockRLE:
		if len(vals) != 1 {
			return 0, nil, 0, nil, fmt.Errorf("rle values of %d bytes, want 1", len(vals))
		}
	case blockHuff:
		if len(vals) == 0 {
			return 0, nil, 0, nil, errors.New("empty huff0 values")
		}
	default:
		return 0, nil, 0, nil, fmt.Errorf("unknown values kind %d", vkind)
	}
	return bkind, bitmap, vkind, vals, nil
}

// decodeSparse decodes the payload of a sparse block into dst, whose length
// is the block's.
func (st *decState) decodeSparse(dst, payload []byte) error {
	m := len(dst)
	nb := (m + 7) / 8
	if need := (1<<maxBlockLog)/8 + 1<<maxBlockLog; cap(st.sparse) < need {
		st.sparse = make([]byte, need)
	}
	bitmap, vals, rle, c, err := st.sparseParts(payload, m, st.sparse[:0:nb], st.sparse[nb:nb:nb+m])
	if err != nil {
		return err
	}
	if rle {
		expandSparseConst(dst, bitmap, c)
	} else {
		expandSparse(dst, bitmap, vals)
	}
	return nil
}

// sparseParts decodes the bitmap and the values of a sparse block of m
// bytes and checks them: the bitmap into bits (capacity ceil(m/8)) unless
// it is raw (then a view of the payload), the values into vals (capacity m)
// unless they are raw (a view) or rle (then rle is set and every value is
// c). The number of values is the number of set bits.
func (st *decState) sparseParts(payload []byte, m int, bits, vals []byte) (bitmap, values []byte, rle bool, c byte, err error) {
	bkind, bitmap, vkind, values, err := splitSparse(payload, m)
	if err != nil {
		return nil, nil, false, 0, err
	}
	nb := (m + 7) / 8
	switch bkind {
	case blockHuff:
		s, rest, err := huff0.ReadTable(bitmap, &st.huff)
		if err != nil {
			return nil, nil, false, 0, fmt.Errorf("huff0 table of the bitmap: %v", err)
		}
		if bitmap, err = s.Decoder().Decompress4X(bits[:0:nb], rest); err != nil {
			return nil, nil, false, 0, fmt.Errorf("huff0 bitmap: %v", err)
		}
	case blockZstd:
		if bitmap, err = zstdDecoder().DecodeAll(bitmap, bits[:0:nb]); err != nil {
			return nil, nil, false, 0, fmt.Errorf("zstd bitmap: %v", err)
		}
	}
	if len(bitmap) != nb {
		return nil, nil, false, 0, fmt.Errorf("bitmap of %d bytes, want %d", len(bitmap), nb)
	}
	if m%8 != 0 && bitmap[nb-1]>>(m%8) != 0 {
		return nil, nil, false, 0, errors.New("bitmap marks bytes past the block")
	}
	count := popcount(bitmap)
	switch vkind {
	case blockRLE:
		return bitmap, nil, true, values[0], nil
	case blockHuff:
		s, rest, err := huff0.ReadTable(values, &st.huff)
		if err != nil {
			return nil, nil, false, 0, fmt.Errorf("huff0 table of the values: %v", err)
		}
		if values, err = s.Decoder().Decompress4X(vals[:0:count], rest); err != nil {
			return nil, nil, false, 0, fmt.Errorf("huff0 values: %v", err)
		}
	}
	if len(values) != count {
		return nil, nil, false, 0, fmt.Errorf("%d values for %d marked bytes", len(values), count)
	}
	return bitmap, values, false, 0, nil
}

func popcount(b []byte) int {
	n := 0
	i := 0
	for ; i+8 <= len(b); i += 8 {
		n += bits.OnesCount64(binary.LittleEndian.Uint64(b[i:]))
	}
	for _, v := range b[i:] {
		n += bits.OnesCount8(v)
	}
	return n
}

// expandSparse writes vals, in order, to the bytes of dst whose bits are set
// in bitmap, and zero to the others. vals holds exactly one byte per set
// bit.
func expandSparse(dst, bitmap, vals []byte) {
	j := 0
	i := 0
	for ; i+8 <= len(bitmap) && 8*i+64 <= len(dst); i += 8 {
		w := binary.LittleEndian.Uint64(bitmap[i:])
		o := dst[8*i : 8*i+64]
		clear(o)
		for w != 0 {
			o[bits.TrailingZeros64(w)] = vals[j]
			j++
			w &= w - 1
		}
	}
	for k := 8 * i; k < len(dst); k++ {
		dst[k] = 0
		if bitmap[k/8]>>(k%8)&1 != 0 {
			dst[k] = vals[j]
			j++
		}
	}
}

// expandSparseConst is expandSparse with every value c.
func expandSparseConst(dst, bitmap []byte, c byte) {
	i := 0
	for ; i+8 <= len(bitmap) && 8*i+64 <= len(dst); i += 8 {
		w := binary.LittleEndian.Uint64(bitmap[i:])
		o := dst[8*i : 8*i+64]
		clear(o)
		for w != 0 {
			o[bits.TrailingZeros64(w)] = c
			w &= w - 1
		}
	}
	for k := 8 * i; k < len(dst); k++ {
		dst[k] = 0
		if bitmap[k/8]>>(k%8)&1 != 0 {
			dst[k] = c
		}
	}
}

func fill(b []byte, c byte) {
	if len(b) == 0 {
		return
	}
	b[0] = c
	for i := 1; i < len(b); i *= 2 {
		copy(b[i:], b[:i])
	}
}

// decodePlaneInto decodes the single plane of an elemSize 1 encoding
// straight into body.
func decodePlaneInto(body []byte, h *header) error {
	p := h.planes[0]
	switch p.method {
	case planeRaw:
		copy(body, p.data)
		return nil
	case planeConst:
		fill(body, p.data[0])
		return nil
	}
	st := takeDec()
	defer putDecState(st)
	data := p.data
	bl := h.blockLen()
	for b, off := 0, 0; off < len(body); b, off = b+1, off+bl {
		m := min(bl, len(body)-off)
		kind, payload, rest, err := h.nextBlock(data, m, 0, b)
		if err != nil {
			return err
		}
		data = rest
		dst := body[off : off : off+m]
		out, err := st.decodeBlock(dst, kind, payload, 0, b)
		if err != nil {
			return err
		}
		if kind == blockRaw {
			copy(body[off:off+m], out)
		}
	}
	return nil
}

// decodePlanes decodes es >= 2 planes block by block and merges each group
// of blocks into body.
func decodePlanes(body []byte, h *header) error {
	st := takeDec()
	defer putDecState(st)
	bl := h.blockLen()
	need := h.es * min(bl, h.nElems)
	if cap(st.block) < need {
		st.block = make([]byte, need)
	}
	var scratch [maxPlanes][]byte
	var data [maxPlanes][]byte
	w := min(bl, h.nElems)
	for k := 0; k < h.es; k++ {
		scratch[k] = st.block[k*w : (k+1)*w : (k+1)*w]
		data[k] = h.planes[k].data
		if h.planes[k].method == planeConst {
			fill(scratch[k], data[k][0])
		}
	}
	var views [maxPlanes][]byte
	for b, off := 0, 0; off < h.nElems; b, off = b+1, off+bl {
		m := min(bl, h.nElems-off)
		for k := 0; k < h.es; k++ {
			switch h.planes[k].method {
			case planeRaw:
				views[k] = data[k][off : off+m]
			case planeConst:
				views[k] = scratch[k][:m]
			default:
				kind, payload, rest, err := h.nextBlock(data[k], m, k, b)
				if err != nil {
					return err
				}
				data[k] = rest
				views[k], err = st.decodeBlock(scratch[k][:0:m], kind, payload, k, b)
				if err != nil {
					return err
				}
			}
		}
		merge(body[off*h.es:(off+m)*h.es], &views, h.es, h.rot)
	}
	return nil
}
