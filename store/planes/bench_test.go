package planes

import (
	"fmt"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

const benchSize = 8 << 20

type weightCase struct {
	name string
	es   int
	gen  func(int) []byte
}

var weightCases = []weightCase{
	{"bf16", 2, genBF16},
	{"f16", 2, genF16},
	{"f32", 4, genF32},
}

var benchData = sync.OnceValue(func() map[string][]byte {
	m := make(map[string][]byte)
	for _, c := range weightCases {
		m[c.name] = c.gen(benchSize)
	}
	return m
})

func BenchmarkEncode(b *testing.B) {
	for _, c := range weightCases {
		b.Run(c.name, func(b *testing.B) {
			src := benchData()[c.name]
			dst, err := Encode(nil, src, c.es)
			require.NoError(b, err)
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				dst, err = Encode(dst[:0], src, c.es)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(dst))/float64(len(src)), "ratio")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range weightCases {
		b.Run(c.name, func(b *testing.B) {
			src := benchData()[c.name]
			enc, err := Encode(nil, src, c.es)
			require.NoError(b, err)
			out := make([]byte, 0, len(src))
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				out, err = Decode(out[:0], enc, len(src))
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkZstdPeer is plain zstd (SpeedFastest) on the same weights, the
// baseline that byte planes are meant to beat.
func BenchmarkZstdPeer(b *testing.B) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	require.NoError(b, err)
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	require.NoError(b, err)
	for _, c := range weightCases {
		src := benchData()[c.name]
		b.Run("encode/"+c.name, func(b *testing.B) {
			var dst []byte
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				dst = enc.EncodeAll(src, dst[:0])
			}
			b.ReportMetric(float64(len(dst))/float64(len(src)), "ratio")
		})
		b.Run("decode/"+c.name, func(b *testing.B) {
			z := enc.EncodeAll(src, nil)
			out := make([]byte, 0, len(src))
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				out, err = dec.DecodeAll(z, out[:0])
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSmall measures per-call overhead on small tensors (biases,
// norms), where fixed costs dominate.
func BenchmarkSmall(b *testing.B) {
	for _, size := range []int{64, 4 << 10, 64 << 10} {
		src := genBF16(size)
		b.Run(fmt.Sprintf("encode/%d", size), func(b *testing.B) {
			var dst []byte
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = Encode(dst[:0], src, 2)
			}
		})
		enc, err := Encode(nil, src, 2)
		require.NoError(b, err)
		b.Run(fmt.Sprintf("decode/%d", size), func(b *testing.B) {
			var dst []byte
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = Decode(dst[:0], enc, size)
			}
		})
	}
}

// BenchmarkShuffle measures the byte-plane transposes alone.
func BenchmarkShuffle(b *testing.B) {
	for _, es := range []int{2, 4, 8} {
		for _, size := range []int{256 << 10, 8 << 20} {
			src := genF32(size)
			var planes [maxPlanes][]byte
			for k := range es {
				planes[k] = make([]byte, size/es)
			}
			b.Run(fmt.Sprintf("split/es%d/%dK", es, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					split(&planes, src, es, true)
				}
			})
			dst := make([]byte, size)
			b.Run(fmt.Sprintf("merge/es%d/%dK", es, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					merge(dst, &planes, es, true)
				}
			})
		}
	}
}
