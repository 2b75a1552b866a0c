package planes

import (
	"encoding/binary"
)

// Byte-plane shuffling. split turns m elements of es bytes into es planes of
// m bytes (plane k = byte k of every element); merge is its inverse. With rot
// set, the most significant 16 bits of every element (bytes es-2 and es-1)
// are rotated left by one bit before splitting and right by one bit after
// merging, which moves the sign bit of a bf16/fp32 value to the bottom and the
// whole 8-bit exponent into byte es-1.
//
// The loops work on 64-bit words (SWAR); the per-element tails handle what is
// left over.

// Rotation masks for one uint64 holding four 16-bit lanes (es == 2) or two
// 32-bit lanes whose top halves are rotated (es == 4), or one 64-bit lane
// whose top 16 bits are rotated (es == 8).
const (
	rot2Keep = 0x0000_0000_0000_0000
	rot2Up   = 0xfffe_fffe_fffe_fffe
	rot2Down = 0x0001_0001_0001_0001

	rot4Keep = 0x0000_ffff_0000_ffff
	rot4Up   = 0xfffe_0000_fffe_0000
	rot4Down = 0x0001_0000_0001_0000

	rot8Keep = 0x0000_ffff_ffff_ffff
	rot8Up   = 0xfffe_0000_0000_0000
	rot8Down = 0x0001_0000_0000_0000
)

// rotMasks returns the masks for x -> x&keep | x<<1&up | x>>15&down, which
// rotates the top 16 bits of each lane left by one. Without rot it is the
// identity (keep = all ones).
func rotMasks(es int, rot bool) (keep, up, down uint64) {
	if !rot {
		return ^uint64(0), 0, 0
	}
	switch es {
	case 2:
		return rot2Keep, rot2Up, rot2Down
	case 4:
		return rot4Keep, rot4Up, rot4Down
	default:
		return rot8Keep, rot8Up, rot8Down
	}
}

// unrotMasks returns the masks for x -> x&keep | x>>1&down | x<<15&up, the
// inverse of rotMasks.
func unrotMasks(es int, rot bool) (keep, down, up uint64) {
	if !rot {
		return ^uint64(0), 0, 0
	}
	switch es {
	case 2:
		return rot2Keep, 0x7fff_7fff_7fff_7fff, 0x8000_8000_8000_8000
	case 4:
		return rot4Keep, 0x7fff_0000_7fff_0000, 0x8000_0000_8000_0000
	default:
		return rot8Keep, 0x7fff_0000_0000_0000, 0x8000_0000_0000_0000
	}
}

// split distributes the len(src)/es elements of src over planes[0:es], each
// of which must be at least that long.
func split(planes *[maxPlanes][]byte, src []byte, es int, rot bool) {
	m := len(src) / es
	switch es {
	case 2:
		split2(planes[0][:m], planes[1][:m], src[:2*m], rot)
	case 4:
		split4(planes, src[:4*m], m, rot)
	case 8:
		split8(planes, src[:8*m], m, rot)
	}
}

// merge is the inverse of split: it interleaves planes[0:es] (each at least
// len(dst)/es long) into dst.
func merge(dst []byte, planes *[maxPlanes][]byte, es int, rot bool) {
	m := len(dst) / es
	switch es {
	case 2:
		merge2(dst[:2*m], planes[0][:m], planes[1][:m], rot)
	case 4:
		merge4(dst[:4*m], planes, m, rot)
	case 8:
		merge8(dst[:8*m], planes, m, rot)
	}
}

// The loops below are branch-free SWAR transposes built from "delta swaps":
// t := (x>>s ^ y) & mask; y ^= t; x ^= t << s exchanges the bytes of x at
// the positions in mask<<s with the bytes of y at the positions in mask.

// shuffle2 interleaves two 4-byte rows: x = a0 a1 a2 a3 b0 b1 b2 b3 (byte 0
// first) becomes a0 b0 a1 b1 a2 b2 a3 b3.
func shuffle2(x uint64) uint64 {
	t := (x ^ x>>16) & 0x0000_0000_ffff_0000
	x ^= t | t<<16
	t = (x ^ x>>8) & 0x0000_ff00_0000_ff00
	return x ^ (t | t<<8)
}

// unshuffle2 is the inverse of shuffle2.
func unshuffle2(x uint64) uint64 {
	t := (x ^ x>>8) & 0x0000_ff00_0000_ff00
	x ^= t | t<<8
	t = (x ^ x>>16) & 0x0000_0000_ffff_0000
	return x ^ (t | t<<16)
}

// transpose4 transposes the 4x4 byte matrix whose rows are the low and high
// halves of x and then of y. It is its own inverse.
func transpose4(x, y uint64) (uint64, uint64) {
	t := (x>>16 ^ y) & 0x0000_ffff_0000_ffff
	y ^= t
	x ^= t << 16
	t = (x ^ x>>24) & 0x0000_0000_ff00_ff00
	x ^= t | t<<24
	t = (y ^ y>>24) & 0x0000_0000_ff00_ff00
	y ^= t | t<<24
	return x, y
}

// transpose8 transposes the 8x8 byte matrix whose rows are r[0..7].
func transpose8(r *[8]uint64) {
	for i := 0; i < 4; i++ {
		t := (r[i]>>32 ^ r[i+4]) & 0x0000_0000_ffff_ffff
		r[i+4] ^= t
		r[i] ^= t << 32
	}
	for _, i := range [4]int{0, 1, 4, 5} {
		t := (r[i]>>16 ^ r[i+2]) & 0x0000_ffff_0000_ffff
		r[i+2] ^= t
		r[i] ^= t << 16
	}
	for i := 0; i < 8; i += 2 {
		t := (r[i]>>8 ^ r[i+1]) & 0x00ff_00ff_00ff_00ff
		r[i+1] ^= t
		r[i] ^= t << 8
	}
}

func split2(p0, p1, src []byte, rot bool) {
	keep, up, down := rotMasks(2, rot)
	m := len(p0)
	p1 = p1[:m]
	src = src[:2*m]
	i := 0
	for ; i+8 <= m; i += 8 {
		s := src[2*i : 2*i+16]
		a := binary.LittleEndian.Uint64(s)
		b := binary.LittleEndian.Uint64(s[8:])
		a = unshuffle2(a&keep | a<<1&up | a>>15&down)
		b = unshuffle2(b&keep | b<<1&up | b>>15&down)
		binary.LittleEndian.PutUint64(p0[i:], a&0xffff_ffff|b<<32)
		binary.LittleEndian.PutUint64(p1[i:], a>>32|b&0xffff_ffff_0000_0000)
	}
	for ; i < m; i++ {
		v := uint64(binary.LittleEndian.Uint16(src[2*i:]))
		v = v&keep | v<<1&up | v>>15&down
		p0[i] = byte(v)
		p1[i] = byte(v >> 8)
	}
}

// merge2Generic is merge2 in portable Go; merge2 (shuffle_amd64.go) hands
// it what the vector loop leaves.
func merge2Generic(dst, p0, p1 []byte, rot bool) {
	keep, down, up := unrotMasks(2, rot)
	m := len(p0)
	p1 = p1[:m]
	dst = dst[:2*m]
	i := 0
	for ; i+8 <= m; i += 8 {
		lo := binary.LittleEndian.Uint64(p0[i:])
		hi := binary.LittleEndian.Uint64(p1[i:])
		a := shuffle2(lo&0xffff_ffff | hi<<32)
		b := shuffle2(lo>>32 | hi&0xffff_ffff_0000_0000)
		d := dst[2*i : 2*i+16]
		binary.LittleEndian.PutUint64(d, a&keep|a>>1&down|a<<15&up)
		binary.LittleEndian.PutUint64(d[8:], b&keep|b>>1&down|b<<15&up)
	}
	for ; i < m; i++ {
		v := uint64(p0[i]) | uint64(p1[i])<<8
		v = v&keep | v>>1&down | v<<15&up
		binary.LittleEndian.PutUint16(dst[2*i:], uint16(v))
	}
}

func split4(planes *[maxPlanes][]byte, src []byte, m int, rot bool) {
	keep, up, down := rotMasks(4, rot)
	p0, p1, p2, p3 := planes[0][:m], planes[1][:m], planes[2][:m], planes[3][:m]
	for len(src) >= 32 && len(p0) >= 8 && len(p1) >= 8 && len(p2) >= 8 && len(p3) >= 8 {
		a := binary.LittleEndian.Uint64(src)
		b := binary.LittleEndian.Uint64(src[8:])
		c := binary.LittleEndian.Uint64(src[16:])
		d := binary.LittleEndian.Uint64(src[24:32])
		a = a&keep | a<<1&up | a>>15&down
		b = b&keep | b<<1&up | b>>15&down
		c = c&keep | c<<1&up | c>>15&down
		d = d&keep | d<<1&up | d>>15&down
		a, b = transpose4(a, b) // a = p0|p1, b = p2|p3 of elements 0-3
		c, d = transpose4(c, d) // elements 4-7
		binary.LittleEndian.PutUint64(p0, a&0xffff_ffff|c<<32)
		binary.LittleEndian.PutUint64(p1, a>>32|c&0xffff_ffff_0000_0000)
		binary.LittleEndian.PutUint64(p2, b&0xffff_ffff|d<<32)
		binary.LittleEndian.PutUint64(p3, b>>32|d&0xffff_ffff_0000_0000)
		src, p0, p1, p2, p3 = src[32:], p0[8:], p1[8:], p2[8:], p3[8:]
	}
	for i := 0; i+4 <= len(src); i += 4 {
		v := uint64(binary.LittleEndian.Uint32(src[i:]))
		v = v&keep | v<<1&up | v>>15&down
		p0[i/4] = byte(v)
		p1[i/4] = byte(v >> 8)
		p2[i/4] = byte(v >> 16)
		p3[i/4] = byte(v >> 24)
	}
}

// merge4Generic is merge4 in portable Go (shuffle_amd64.go hands it the
// tail).
func merge4Generic(dst []byte, planes *[maxPlanes][]byte, m int, rot bool) {
	keep, down, up := unrotMasks(4, rot)
	p0, p1, p2, p3 := planes[0][:m], planes[1][:m], planes[2][:m], planes[3][:m]
	for len(dst) >= 32 && len(p0) >= 8 && len(p1) >= 8 && len(p2) >= 8 && len(p3) >= 8 {
		w0 := binary.LittleEndian.Uint64(p0)
		w1 := binary.LittleEndian.Uint64(p1)
		w2 := binary.LittleEndian.Uint64(p2)
		w3 := binary.LittleEndian.Uint64(p3)
		a, b := transpose4(w0&0xffff_ffff|w1<<32, w2&0xffff_ffff|w3<<32)
		c, d := transpose4(w0>>32|w1&0xffff_ffff_0000_0000, w2>>32|w3&0xffff_ffff_0000_0000)
		binary.LittleEndian.PutUint64(dst, a&keep|a>>1&down|a<<15&up)
		binary.LittleEndian.PutUint64(dst[8:], b&keep|b>>1&down|b<<15&up)
		binary.LittleEndian.PutUint64(dst[16:], c&keep|c>>1&down|c<<15&up)
		binary.LittleEndian.PutUint64(dst[24:32], d&keep|d>>1&down|d<<15&up)
		dst, p0, p1, p2, p3 = dst[32:], p0[8:], p1[8:], p2[8:], p3[8:]
	}
	for i := 0; i+4 <= len(dst); i += 4 {
		v := uint64(p0[i/4]) | uint64(p1[i/4])<<8 | uint64(p2[i/4])<<16 | uint64(p3[i/4])<<24
		v = v&keep | v>>1&down | v<<15&up
		binary.LittleEndian.PutUint32(dst[i:], uint32(v))
	}
}

func split8(planes *[maxPlanes][]byte, src []byte, m int, rot bool) {
	keep, up, down := rotMasks(8, rot)
	var r [8]uint64
	i := 0
	for ; i+8 <= m; i += 8 {
		s := src[8*i : 8*i+64]
		for j := range r {
			v := binary.LittleEndian.Uint64(s[8*j:])
			r[j] = v&keep | v<<1&up | v>>15&down
		}
		transpose8(&r)
		for k, v := range r {
			binary.LittleEndian.PutUint64(planes[k][i:i+8], v)
		}
	}
	for ; i < m; i++ {
		v := binary.LittleEndian.Uint64(src[8*i:])
		v = v&keep | v<<1&up | v>>15&down
		for k := range 8 {
			planes[k][i] = byte(v >> (8 * k))
		}
	}
}

func merge8(dst []byte, planes *[maxPlanes][]byte, m int, rot bool) {
	keep, down, up := unrotMasks(8, rot)
	var r [8]uint64
	i := 0
	for ; i+8 <= m; i += 8 {
		for k := range r {
			r[k] = binary.LittleEndian.Uint64(planes[k][i : i+8])
		}
		transpose8(&r)
		o := dst[8*i : 8*i+64]
		for j, v := range r {
			binary.LittleEndian.PutUint64(o[8*j:], v&keep|v>>1&down|v<<15&up)
		}
	}
	for ; i < m; i++ {
		var v uint64
		for k := range 8 {
			v |= uint64(planes[k][i]) << (8 * k)
		}
		v = v&keep | v>>1&down | v<<15&up
		binary.LittleEndian.PutUint64(dst[8*i:], v)
	}
}

// mergeCombine is merge followed by the inverse of a delta op against a
// same-form reference (inverse with RefSame) in one pass, for es 2 and 4:
// each merged word is combined with the reference while it is in a
// register. It reports false, doing nothing, for other element sizes.
func mergeCombine(dst []byte, planes *[maxPlanes][]byte, es int, rot bool, ref []byte, op DeltaOp) bool {
	m := len(dst) / es
	switch es {
	case 2:
		mergeCombine2(dst[:2*m], planes[0][:m], planes[1][:m], rot, ref[:2*m], op)
	case 4:
		mergeCombine4(dst[:4*m], planes, m, rot, ref[:4*m], op)
	default:
		return false
	}
	return true
}

// combine2 and combine4 return the content word for the difference word x
// and the reference word r, lanes of 2 and 4 bytes (addLanes and
// unzigzagLanes with constant masks).
func combine2(x, r uint64, op DeltaOp) uint64 {
	if op == OpXOR {
		return x ^ r
	}
	const h, l = 0x8000_8000_8000_8000, 0x0001_0001_0001_0001
	u := x>>1&^h ^ (x&l)*0xffff
	return (r&^h + u&^h) ^ (r^u)&h
}

func combine4(x, r uint64, op DeltaOp) uint64 {
	if op == OpXOR {
		return x ^ r
	}
	const h, l = 0x8000_0000_8000_0000, 0x0000_0001_0000_0001
	u := x>>1&^h ^ (x&l)*0xffff_ffff
	return (r&^h + u&^h) ^ (r^u)&h
}

func mergeCombine2(dst, p0, p1 []byte, rot bool, ref []byte, op DeltaOp) {
	keep, down, up := unrotMasks(2, rot)
	m := len(p0)
	p1 = p1[:m]
	dst, ref = dst[:2*m], ref[:2*m]
	i := 0
	if op == OpXOR { // the same loop, without the op's branch
		for ; i+8 <= m; i += 8 {
			lo := binary.LittleEndian.Uint64(p0[i:])
			hi := binary.LittleEndian.Uint64(p1[i:])
			a := shuffle2(lo&0xffff_ffff | hi<<32)
			b := shuffle2(lo>>32 | hi&0xffff_ffff_0000_0000)
			d, r := dst[2*i:2*i+16], ref[2*i:2*i+16]
			binary.LittleEndian.PutUint64(d, (a&keep|a>>1&down|a<<15&up)^binary.LittleEndian.Uint64(r))
			binary.LittleEndian.PutUint64(d[8:], (b&keep|b>>1&down|b<<15&up)^binary.LittleEndian.Uint64(r[8:]))
		}
	}
	for ; i+8 <= m; i += 8 {
		lo := binary.LittleEndian.Uint64(p0[i:])
		hi := binary.LittleEndian.Uint64(p1[i:])
		a := shuffle2(lo&0xffff_ffff | hi<<32)
		b := shuffle2(lo>>32 | hi&0xffff_ffff_0000_0000)
		d, r := dst[2*i:2*i+16], ref[2*i:2*i+16]
		binary.LittleEndian.PutUint64(d, combine2(a&keep|a>>1&down|a<<15&up, binary.LittleEndian.Uint64(r), op))
		binary.LittleEndian.PutUint64(d[8:], combine2(b&keep|b>>1&down|b<<15&up, binary.LittleEndian.Uint64(r[8:]), op))
	}
	for ; i < m; i++ {
		v := uint64(p0[i]) | uint64(p1[i])<<8
		v = v&keep | v>>1&down | v<<15&up
		binary.LittleEndian.PutUint16(dst[2*i:], uint16(combine2(v, uint64(binary.LittleEndian.Uint16(ref[2*i:])), op)))
	}
}

// mergeCombine4Generic is mergeCombine4 in portable Go.
func mergeCombine4Generic(dst []byte, planes *[maxPlanes][]byte, m int, rot bool, ref []byte, op DeltaOp) {
	keep, down, up := unrotMasks(4, rot)
	p0, p1, p2, p3 := planes[0][:m], planes[1][:m], planes[2][:m], planes[3][:m]
	dst, ref = dst[:4*m], ref[:4*m]
	i := 0
	// One loop per case, so that none has a branch per word: XOR
	// without rotation (the common case), XOR, subtraction.
	switch {
	case op == OpXOR && !rot:
		for ; i+8 <= m; i += 8 {
			a, b, c, d := gather4(p0[i:i+8], p1[i:i+8], p2[i:i+8], p3[i:i+8])
			o, r := (*[32]byte)(dst[4*i:4*i+32]), (*[32]byte)(ref[4*i:4*i+32])
			binary.LittleEndian.PutUint64(o[0:], a^binary.LittleEndian.Uint64(r[0:]))
			binary.LittleEndian.PutUint64(o[8:], b^binary.LittleEndian.Uint64(r[8:]))
			binary.LittleEndian.PutUint64(o[16:], c^binary.LittleEndian.Uint64(r[16:]))
			binary.LittleEndian.PutUint64(o[24:], d^binary.LittleEndian.Uint64(r[24:]))
		}
	case op == OpXOR:
		for ; i+8 <= m; i += 8 {
			a, b, c, d := gather4(p0[i:i+8], p1[i:i+8], p2[i:i+8], p3[i:i+8])
			o, r := (*[32]byte)(dst[4*i:4*i+32]), (*[32]byte)(ref[4*i:4*i+32])
			binary.LittleEndian.PutUint64(o[0:], (a&keep|a>>1&down|a<<15&up)^binary.LittleEndian.Uint64(r[0:]))
			binary.LittleEndian.PutUint64(o[8:], (b&keep|b>>1&down|b<<15&up)^binary.LittleEndian.Uint64(r[8:]))
			binary.LittleEndian.PutUint64(o[16:], (c&keep|c>>1&down|c<<15&up)^binary.LittleEndian.Uint64(r[16:]))
			binary.LittleEndian.PutUint64(o[24:], (d&keep|d>>1&down|d<<15&up)^binary.LittleEndian.Uint64(r[24:]))
		}
	default:
		for ; i+8 <= m; i += 8 {
			a, b, c, d := gather4(p0[i:i+8], p1[i:i+8], p2[i:i+8], p3[i:i+8])
			o, r := (*[32]byte)(dst[4*i:4*i+32]), (*[32]byte)(ref[4*i:4*i+32])
			binary.LittleEndian.PutUint64(o[0:], combine4(a&keep|a>>1&down|a<<15&up, binary.LittleEndian.Uint64(r[0:]), op))
			binary.LittleEndian.PutUint64(o[8:], combine4(b&keep|b>>1&down|b<<15&up, binary.LittleEndian.Uint64(r[8:]), op))
			binary.LittleEndian.PutUint64(o[16:], combine4(c&keep|c>>1&down|c<<15&up, binary.LittleEndian.Uint64(r[16:]), op))
			binary.LittleEndian.PutUint64(o[24:], combine4(d&keep|d>>1&down|d<<15&up, binary.LittleEndian.Uint64(r[24:]), op))
		}
	}
	for ; i < m; i++ {
		v := uint64(p0[i]) | uint64(p1[i])<<8 | uint64(p2[i])<<16 | uint64(p3[i])<<24
		v = v&keep | v>>1&down | v<<15&up
		binary.LittleEndian.PutUint32(dst[4*i:], uint32(combine4(v, uint64(binary.LittleEndian.Uint32(ref[4*i:])), op)))
	}
}

// gather4 merges 8 bytes of each of 4 planes into 8 elements of 4 bytes:
// the 4 words a, b, c, d that follow each other in memory.
func gather4(q0, q1, q2, q3 []byte) (a, b, c, d uint64) {
	w0 := binary.LittleEndian.Uint64(q0)
	w1 := binary.LittleEndian.Uint64(q1)
	w2 := binary.LittleEndian.Uint64(q2)
	w3 := binary.LittleEndian.Uint64(q3)
	a, b = transpose4(w0&0xffff_ffff|w1<<32, w2&0xffff_ffff|w3<<32)
	c, d = transpose4(w0>>32|w1&0xffff_ffff_0000_0000, w2>>32|w3&0xffff_ffff_0000_0000)
	return a, b, c, d
}
