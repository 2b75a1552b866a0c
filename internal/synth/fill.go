package synth

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/ckptdev/ckpt/layout"
)

// Seed domains keep the random streams of different purposes independent
// even when they share a seed and a tensor name.
const (
	domainBase      uint64 = iota + 1 // base model weights
	domainDelta                       // per-checkpoint weight perturbation
	domainOptimizer                   // Adam moments
	domainRNG                         // rng_state.pth contents
	domainLog                         // log_history noise
	domainEval                        // default eval loss jitter
)

// chunkElems is how many elements are generated per step: the float32
// scratch buffer is 1 MiB.
const chunkElems = 1 << 18

// normalTable maps a 16-bit uniform to the matching quantile of N(0, 1):
// entry u is Φ⁻¹((u+0.5)/65536). Four table lookups per 64-bit PCG output
// give normal variates an order of magnitude faster than NormFloat64, and
// the 65536 levels are finer than bf16 resolves.
var normalTable = sync.OnceValue(func() *[1 << 16]float32 {
	var table [1 << 16]float32
	for u := range table {
		p := (float64(u) + 0.5) / (1 << 16)
		table[u] = float32(math.Sqrt2 * math.Erfinv(2*p-1))
	}
	return &table
})

// splitmix64 is a bijective 64-bit mixer, used to derive stream seeds.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// deriveSeeds turns (seed, domain, name, extra) into the two PCG seeds of an
// independent stream.
func deriveSeeds(seed, domain uint64, name string, extra uint64) (uint64, uint64) {
	h := fnv.New64a()
	h.Write([]byte(name))
	return splitmix64(seed ^ splitmix64(domain)), splitmix64(h.Sum64() ^ splitmix64(extra^0x5bd1e995))
}

// newRand returns a math/rand/v2 generator on the stream for (seed, domain,
// name, extra).
func newRand(seed, domain uint64, name string, extra uint64) *rand.Rand {
	return rand.New(rand.NewPCG(deriveSeeds(seed, domain, name, extra)))
}

// normalStream draws normal variates from a PCG stream. Consumption is four
// variates per 64-bit output, so a tensor generated in chunks yields the
// same values whatever the chunk size, provided every chunk but the last
// has a multiple of four elements (chunkElems has).
type normalStream struct {
	pcg   rand.PCG
	table *[1 << 16]float32
}

func newNormalStream(seed, domain uint64, name string, extra uint64) *normalStream {
	s := &normalStream{table: normalTable()}
	s.pcg.Seed(deriveSeeds(seed, domain, name, extra))
	return s
}

// fill sets dst[i] = mean + std·N(0, 1).
func (s *normalStream) fill(dst []float32, mean, std float32) {
	t := s.table
	i := 0
	for ; i+4 <= len(dst); i += 4 {
		r := s.pcg.Uint64()
		d := dst[i : i+4 : i+4]
		d[0] = mean + float32(std*t[uint16(r)])
		d[1] = mean + float32(std*t[uint16(r>>16)])
		d[2] = mean + float32(std*t[uint16(r>>32)])
		d[3] = mean + float32(std*t[uint16(r>>48)])
	}
	if i < len(dst) {
		r := s.pcg.Uint64()
		for ; i < len(dst); i++ {
			dst[i] = mean + float32(std*t[uint16(r)])
			r >>= 16
		}
	}
}

// add adds std·N(0, 1) to every element of dst.
func (s *normalStream) add(dst []float32, std float32) {
	t := s.table
	i := 0
	for ; i+4 <= len(dst); i += 4 {
		r := s.pcg.Uint64()
		d := dst[i : i+4 : i+4]
		d[0] += float32(std * t[uint16(r)])
		d[1] += float32(std * t[uint16(r>>16)])
		d[2] += float32(std * t[uint16(r>>32)])
		d[3] += float32(std * t[uint16(r>>48)])
	}
	if i < len(dst) {
		r := s.pcg.Uint64()
		for ; i < len(dst); i++ {
			dst[i] += float32(std * t[uint16(r)])
			r >>= 16
		}
	}
}

// perturbEncoded adds std·N(0, 1) to every element of data, encoded as
// dtype, in place. It consumes the stream exactly as add does and gives the
// same result as decoding, add and encoding; bf16 takes a single pass.
// scratch holds at least len(data)/elemSize floats.
func (s *normalStream) perturbEncoded(data []byte, std float32, dtype layout.Dtype, scratch []float32) {
	if dtype != layout.DtypeBF16 {
		values := scratch[:len(data)/dtype.ElemSize()]
		decodeValues(values, data, dtype)
		s.add(values, std)
		encodeValues(data, values, dtype)
		return
	}
	t := s.table
	lane := func(x uint64, u uint16) uint64 {
		f := math.Float32frombits(uint32(x&0xffff)<<16) + float32(std*t[u])
		return uint64(bf16FromFloat32(f))
	}
	n := len(data) / 2
	i := 0
	for ; i+4 <= n; i += 4 {
		r := s.pcg.Uint64()
		x := binary.LittleEndian.Uint64(data[2*i:])
		binary.LittleEndian.PutUint64(data[2*i:], lane(x, uint16(r))|lane(x>>16, uint16(r>>16))<<16|
			lane(x>>32, uint16(r>>32))<<32|lane(x>>48, uint16(r>>48))<<48)
	}
	if i < n {
		r := s.pcg.Uint64()
		for ; i < n; i++ {
			x := uint64(binary.LittleEndian.Uint16(data[2*i:]))
			binary.LittleEndian.PutUint16(data[2*i:], uint16(lane(x, uint16(r))))
			r >>= 16
		}
	}
}

// bf16FromFloat32 converts with round-to-nearest-even, as torch's
// float32 -> bfloat16 cast does; NaNs stay (quiet) NaNs.
func bf16FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// f16FromFloat32 converts to IEEE half precision with round-to-nearest-even,
// overflowing to infinity and underflowing through subnormals to zero.
func f16FromFloat32(f float32) uint16 {
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
		full := mant | 0x800000
		shift := uint32(14 - e)
		m := full >> shift
		rem, halfway := full&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > halfway || (rem == halfway && m&1 == 1) {
			m++
		}
		return sign | uint16(m)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry into the exponent is the correct result, up to infinity
	}
	return sign | uint16(h)
}

// float32FromF16 converts IEEE half precision to float32 exactly.
func float32FromF16(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		v := float32(mant) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// encodeValues writes src into dst (len(src)·elemSize bytes) as dtype,
// little-endian, and returns dst.
func encodeValues(dst []byte, src []float32, dtype layout.Dtype) []byte {
	switch dtype {
	case layout.DtypeBF16:
		dst = dst[:2*len(src)]
		i := 0
		for ; i+4 <= len(src); i += 4 { // four elements per store; bf16FromFloat32 inlines
			s := src[i : i+4 : i+4]
			binary.LittleEndian.PutUint64(dst[2*i:], uint64(bf16FromFloat32(s[0]))|uint64(bf16FromFloat32(s[1]))<<16|
				uint64(bf16FromFloat32(s[2]))<<32|uint64(bf16FromFloat32(s[3]))<<48)
		}
		for ; i < len(src); i++ {
			binary.LittleEndian.PutUint16(dst[2*i:], bf16FromFloat32(src[i]))
		}
	case layout.DtypeF16:
		dst = dst[:2*len(src)]
		for i, f := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], f16FromFloat32(f))
		}
	case layout.DtypeF32:
		dst = dst[:4*len(src)]
		for i, f := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
		}
	default:
		panic(fmt.Sprintf("synth: cannot encode dtype %q", dtype))
	}
	return dst
}

// encodedTable16 maps each 16-bit uniform straight to the encoding of
// mean + std·Φ⁻¹(u) in a 2-byte dtype: the bytes normalStream.fill followed
// by encodeValues produce, without the float pass. Worth building for
// tensors much larger than its 65536 entries.
type encodedTable16 [1 << 16]uint16

func (e *encodedTable16) build(mean, std float32, dtype layout.Dtype) {
	convert := bf16FromFloat32
	if dtype == layout.DtypeF16 {
		convert = f16FromFloat32
	}
	t := normalTable()
	for u := range e {
		e[u] = convert(mean + float32(std*t[u]))
	}
}

// fillEncoded16 writes len(dst)/2 encoded elements, consuming the stream
// exactly as fill does.
func (s *normalStream) fillEncoded16(dst []byte, e *encodedTable16) {
	n := len(dst) / 2
	i := 0
	for ; i+4 <= n; i += 4 {
		r := s.pcg.Uint64()
		binary.LittleEndian.PutUint64(dst[2*i:], uint64(e[uint16(r)])|uint64(e[uint16(r>>16)])<<16|
			uint64(e[uint16(r>>32)])<<32|uint64(e[uint16(r>>48)])<<48)
	}
	if i < n {
		r := s.pcg.Uint64()
		for ; i < n; i++ {
			binary.LittleEndian.PutUint16(dst[2*i:], e[uint16(r)])
			r >>= 16
		}
	}
}

// decodeValues reads len(dst) elements of dtype from src into dst.
func decodeValues(dst []float32, src []byte, dtype layout.Dtype) {
	switch dtype {
	case layout.DtypeBF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	case layout.DtypeF16:
		for i := range dst {
			dst[i] = float32FromF16(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case layout.DtypeF32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	default:
		panic(fmt.Sprintf("synth: cannot decode dtype %q", dtype))
	}
}
