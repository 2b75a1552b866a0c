package planes

import (
	"encoding/binary"
	"math/bits"
)

// Decoding the difference stream of a delta straight into content.

// bitsStride is the room for one plane's bitmap in decState.bits: a whole
// number of 64-bit words for the longest block.
const bitsStride = (1<<maxBlockLog + 63) / 64 * 8

// decodeDeltaBody decodes the difference stream h, block by block, into
// body and turns each block into content with ref (in form's layout). A
// block whose planes are all sparse or zero takes the sparse path: the
// reference is copied and only the elements the bitmaps mark are patched.
// Any other block is merged as Decode merges it and then combined.
func decodeDeltaBody(body []byte, h *header, ref []byte, op DeltaOp, form RefForm) error {
	st := takeDec()
	defer putDecState(st)
	es := h.es
	bl := h.blockLen()
	w := min(bl, h.nElems)
	if cap(st.block) < es*w {
		st.block = make([]byte, es*w)
	}
	var scratch, data, views, payloads [maxPlanes][]byte
	var kinds [maxPlanes]byte
	for k := 0; k < es; k++ {
		scratch[k] = st.block[k*w : (k+1)*w : (k+1)*w]
		data[k] = h.planes[k].data
	}
	ratio := form.refLen(1)
	for b, off := 0, 0; off < h.nElems; b, off = b+1, off+bl {
		m := min(bl, h.nElems-off)
		sparse := true
		for k := 0; k < es; k++ {
			switch p := h.planes[k]; p.method {
			case planeRaw:
				kinds[k], payloads[k] = blockRaw, p.data[off:off+m]
				sparse = false
			case planeConst:
				kinds[k], payloads[k] = blockRLE, p.data[:1]
				sparse = sparse && p.data[0] == 0
			default:
				kind, payload, rest, err := h.nextBlock(data[k], m, k, b)
				if err != nil {
					return err
				}
				data[k] = rest
				kinds[k], payloads[k] = kind, payload
				sparse = sparse && (kind == blockSparse || kind == blockRLE && payload[0] == 0)
			}
		}
		blk := body[off*es : (off+m)*es]
		rb := ref[off*es*ratio : (off+m)*es*ratio]
		if sparse {
			if err := st.sparseDelta(blk, rb, m, es, h.rot, &kinds, &payloads, &scratch, op, form, b); err != nil {
				return err
			}
			continue
		}
		for k := 0; k < es; k++ {
			var err error
			if views[k], err = st.decodeBlock(scratch[k][:0:m], kinds[k], payloads[k], k, b); err != nil {
				return err
			}
		}
		switch {
		case form == RefSame && mergeCombine(blk, &views, es, h.rot, rb, op):
		case es == 1:
			copy(blk, views[0][:m])
			inverse(blk, rb, es, op, form)
		default:
			merge(blk, &views, es, h.rot)
			inverse(blk, rb, es, op, form)
		}
	}
	return nil
}

// sparseDelta is the sparse path of decodeDeltaBody for one block of m
// elements: every plane's block is sparse or zero.
func (st *decState) sparseDelta(blk, rb []byte, m, es int, rot bool, kinds *[maxPlanes]byte, payloads, scratch *[maxPlanes][]byte, op DeltaOp, form RefForm, b int) error {
	if cap(st.bits) < maxPlanes*bitsStride {
		st.bits = make([]byte, maxPlanes*bitsStride)
	}
	// The elements the bitmaps do not mark have a zero difference: they
	// are the reference's.
	if form == RefF32ToBF16 {
		roundBF16(blk, rb)
	} else {
		copy(blk, rb)
	}
	nb := (m + 7) / 8
	var bms, vals [maxPlanes][]byte
	var rle [maxPlanes]bool
	var rleVal [maxPlanes]byte
	var active [maxPlanes]int
	na := 0
	for k := 0; k < es; k++ {
		if kinds[k] != blockSparse {
			continue
		}
		padded := st.bits[k*bitsStride : k*bitsStride+(m+63)/64*8]
		bitmap, v, isRLE, c, err := st.sparseParts(payloads[k], m, padded[:0:nb], scratch[k][:0:m])
		if err != nil {
			return corrupt("sparse block %d in plane %d: %v", b, k, err)
		}
		if &bitmap[0] != &padded[0] { // raw: a view of the payload
			copy(padded, bitmap)
		}
		clear(padded[nb:])
		bms[k], vals[k], rle[k], rleVal[k] = padded, v, isRLE, c
		active[na] = k
		na++
	}
	keep, down, up := unrotMasks(es, rot)
	if op == OpXOR {
		// XOR and the unrotation are both linear over XOR: each plane
		// patches its own bytes, one pass per plane, no merging.
		for _, k := range active[:na] {
			if rot {
				xorPlaneRot(blk, bms[k], vals[k], rle[k], rleVal[k], m, es, k, keep, down, up)
			} else {
				xorPlane(blk, bms[k], vals[k], rle[k], rleVal[k], m, es, k)
			}
		}
		return nil
	}
	var cur [maxPlanes]int
	var bw [maxPlanes]uint64
	for wi := 0; wi*64 < m; wi++ {
		var u uint64
		for _, k := range active[:na] {
			bw[k] = binary.LittleEndian.Uint64(bms[k][wi*8:])
			u |= bw[k]
		}
		for u != 0 {
			j := bits.TrailingZeros64(u)
			u &= u - 1
			var d uint64
			for _, k := range active[:na] {
				if bw[k]>>j&1 == 0 {
					continue
				}
				v := rleVal[k]
				if !rle[k] {
					v = vals[k][cur[k]]
					cur[k]++
				}
				d |= uint64(v) << (8 * k)
			}
			d = d&keep | d>>1&down | d<<15&up
			patch(blk[(wi*64+j)*es:], d, es, op)
		}
	}
	return nil
}

// xorPlane XORs the values of plane k (in order, or c for every one when
// rle) into byte k of the elements of blk that bitmap marks (padded to
// whole 64-bit words, no bit set at m or past it).
func xorPlane(blk, bitmap, vals []byte, rle bool, c byte, m, es, k int) {
	j := 0
	for wi := 0; wi*64 < m; wi++ {
		w := binary.LittleEndian.Uint64(bitmap[wi*8:])
		base := wi*64*es + k
		if rle {
			for w != 0 {
				blk[base+bits.TrailingZeros64(w)*es] ^= c
				w &= w - 1
			}
			continue
		}
		for w != 0 {
			blk[base+bits.TrailingZeros64(w)*es] ^= vals[j]
			j++
			w &= w - 1
		}
	}
}

// xorPlaneRot is xorPlane for rotated planes: each value, in byte k of an
// element, is unrotated (keep, down, up of unrotMasks) into the element's
// bytes before it is XORed in.
func xorPlaneRot(blk, bitmap, vals []byte, rle bool, c byte, m, es, k int, keep, down, up uint64) {
	j := 0
	for wi := 0; wi*64 < m; wi++ {
		w := binary.LittleEndian.Uint64(bitmap[wi*8:])
		for w != 0 {
			i := (wi*64 + bits.TrailingZeros64(w)) * es
			w &= w - 1
			v := c
			if !rle {
				v = vals[j]
				j++
			}
			d := uint64(v) << (8 * k)
			patch(blk[i:], d&keep|d>>1&down|d<<15&up, es, OpXOR)
		}
	}
}

// patch combines the element at the start of e (the reference's) with the
// difference d.
func patch(e []byte, d uint64, es int, op DeltaOp) {
	switch es {
	case 1:
		if op == OpXOR {
			e[0] ^= byte(d)
		} else {
			e[0] += byte(unzigzagLanes(d, 1))
		}
	case 2:
		r := binary.LittleEndian.Uint16(e)
		if op == OpXOR {
			binary.LittleEndian.PutUint16(e, r^uint16(d))
		} else {
			binary.LittleEndian.PutUint16(e, r+uint16(unzigzagLanes(d, 2)))
		}
	case 4:
		r := binary.LittleEndian.Uint32(e)
		if op == OpXOR {
			binary.LittleEndian.PutUint32(e, r^uint32(d))
		} else {
			binary.LittleEndian.PutUint32(e, r+uint32(unzigzagLanes(d, 4)))
		}
	default:
		r := binary.LittleEndian.Uint64(e)
		if op == OpXOR {
			binary.LittleEndian.PutUint64(e, r^d)
		} else {
			binary.LittleEndian.PutUint64(e, r+unzigzagLanes(d, 8))
		}
	}
}

// roundBF16 writes to dst the bf16 roundings (bf16FromF32) of the fp32
// values in ref32, which is twice as long.
func roundBF16(dst, ref32 []byte) {
	n := len(dst)
	ref32 = ref32[:2*n]
	i := 0
	for ; i+8 <= n; i += 8 {
		r0 := binary.LittleEndian.Uint64(ref32[2*i : 2*i+8])
		r1 := binary.LittleEndian.Uint64(ref32[2*i+8 : 2*i+16])
		binary.LittleEndian.PutUint64(dst[i:i+8], uint64(bf16FromF32(uint32(r0)))|uint64(bf16FromF32(uint32(r0>>32)))<<16|
			uint64(bf16FromF32(uint32(r1)))<<32|uint64(bf16FromF32(uint32(r1>>32)))<<48)
	}
	for ; i+2 <= n; i += 2 {
		binary.LittleEndian.PutUint16(dst[i:], bf16FromF32(binary.LittleEndian.Uint32(ref32[2*i:])))
	}
}
