package object

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// driftPair returns n elements of es bytes (2: bf16, 4: fp32) of
// Gaussian weights as a reference, and the next checkpoint's: every
// element multiplied by 1 + N(0, rel) (what internal/benchrun's delta case
// pushes).
func driftPair(n, es int, rel float64) (ref, next []byte) {
	r := rand.New(rand.NewPCG(3, 9))
	ref, next = make([]byte, n*es), make([]byte, n*es)
	for i := range n {
		w := float32(r.NormFloat64() * 0.02)
		u := w * float32(1+r.NormFloat64()*rel)
		if es == 2 {
			binary.LittleEndian.PutUint16(ref[2*i:], roundBF16(w))
			binary.LittleEndian.PutUint16(next[2*i:], roundBF16(roundedF32(w)*float32(1+r.NormFloat64()*rel)))
		} else {
			binary.LittleEndian.PutUint32(ref[4*i:], math.Float32bits(w))
			binary.LittleEndian.PutUint32(next[4*i:], math.Float32bits(u))
		}
	}
	return ref, next
}

// roundBF16 rounds v to bf16, to nearest even (finite values).
func roundBF16(v float32) uint16 {
	b := math.Float32bits(v)
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// roundedF32 is v rounded to bf16, as fp32.
func roundedF32(v float32) float32 { return math.Float32frombits(uint32(roundBF16(v)) << 16) }

// BenchmarkDecodeDelta measures DecodeDelta, what a reader does with a
// delta blob once it holds its payload and its reference: the payload's
// checks, the planes delta decode and the SHA-256 check of the content, on
// one core, for an 8 MiB chunk of a realistic next checkpoint (bf16: about
// 5% of the elements change by one unit in the last place; fp32: every
// element changes its low bits). MB/s and cpuMB/s are bytes of content.
func BenchmarkDecodeDelta(b *testing.B) {
	const size = 8 << 20
	for _, c := range []struct {
		name string
		es   int
		rel  float64
	}{{"bf16", 2, 1.5e-3}, {"f32", 4, 0.01}} {
		b.Run(c.name, func(b *testing.B) {
			ref, next := driftPair(size/c.es, c.es, c.rel)
			standalone := Encode(nil, next, EncodeHint{ElemSize: c.es})
			obj, err := EncodeDelta(nil, next, ref, Hash(ref), c.es, len(standalone))
			require.NoError(b, err)
			h, err := ParseHeader(obj)
			require.NoError(b, err)
			payload, want := obj[HeaderSize:], Hash(next)
			out := make([]byte, 0, size)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for b.Loop() {
				if out, err = DecodeDelta(out[:0], h, payload, ref, want); err != nil {
					b.Fatal(err)
				}
			}
			if d := cpuTime() - cpu0; d > 0 {
				b.ReportMetric(float64(size)*float64(b.N)/d.Seconds()/1e6, "cpuMB/s")
			}
			b.ReportMetric(float64(len(obj))/float64(size), "ratio")
		})
	}
}
