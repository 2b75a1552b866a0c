package planes

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
)

// weightSeed fixes the generated weights so that compression ratios are
// deterministic and can be asserted in tests.
const weightSeed = 0x5eed_c0de

// gaussF32 returns n float32 samples of N(0, sigma) from a fixed seed.
func gaussF32(n int, sigma float64) []float32 {
	r := rand.New(rand.NewPCG(weightSeed, weightSeed^0x9e3779b97f4a7c15))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64() * sigma)
	}
	return out
}

// f32ToBF16 converts by round-to-nearest-even on the top 16 bits. NaNs stay
// quiet NaNs.
func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// f32ToF16 converts to IEEE 754 binary16 with round-to-nearest-even,
// producing subnormals, ±Inf on overflow and quiet NaNs.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	switch {
	case e >= 0x1f:
		return sign | 0x7c00
	case e <= 0:
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint(14 - e)
		half := uint32(1) << (shift - 1)
		r := mant >> shift
		rem := mant & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++
	}
	return sign | uint16(r)
}

// Generated checkpoint-like tensors: N(0, 0.02) weights in each dtype,
// little-endian, size bytes long.
func genF32(size int) []byte {
	w := gaussF32(size/4, 0.02)
	out := make([]byte, len(w)*4)
	for i, v := range w {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

func genBF16(size int) []byte {
	w := gaussF32(size/2, 0.02)
	out := make([]byte, len(w)*2)
	for i, v := range w {
		binary.LittleEndian.PutUint16(out[2*i:], f32ToBF16(v))
	}
	return out
}

func genF16(size int) []byte {
	w := gaussF32(size/2, 0.02)
	out := make([]byte, len(w)*2)
	for i, v := range w {
		binary.LittleEndian.PutUint16(out[2*i:], f32ToF16(v))
	}
	return out
}

// fineTunePair returns size bytes of weights after a fine-tune step and the
// weights before it: N(0, 0.02) weights w, and w plus N(0, rel*0.02) noise,
// as bf16 (es 2, both rounded from fp32, so most elements do not change
// for small rel) or fp32 (es 4). With f32Ref the reference is w as fp32
// (twice as long) whatever es is: a bf16 fine-tune of an fp32 base.
func fineTunePair(size, es int, rel float64, f32Ref bool) (content, ref []byte) {
	n := size / es
	w := gaussF32(n, 0.02)
	r := rand.New(rand.NewPCG(weightSeed+1, 7))
	content = make([]byte, n*es)
	ref = make([]byte, n*es)
	if f32Ref {
		ref = make([]byte, 4*n)
	}
	for i, v := range w {
		u := v + float32(r.NormFloat64()*rel*0.02)
		switch {
		case es == 2:
			binary.LittleEndian.PutUint16(content[2*i:], f32ToBF16(u))
		default:
			binary.LittleEndian.PutUint32(content[4*i:], math.Float32bits(u))
		}
		switch {
		case f32Ref:
			binary.LittleEndian.PutUint32(ref[4*i:], math.Float32bits(v))
		case es == 2:
			binary.LittleEndian.PutUint16(ref[2*i:], f32ToBF16(v))
		default:
			binary.LittleEndian.PutUint32(ref[4*i:], math.Float32bits(v))
		}
	}
	return content, ref
}
