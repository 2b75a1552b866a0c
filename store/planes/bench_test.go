package planes

import (
	"fmt"
	"sync"
	"testing"
	"time"

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

// cpuSpeed measures the CPU time of a benchmark's loop; report adds the
// speed per second of CPU (cpuMB/s) beside the wall-clock MB/s, which on a
// shared, loaded machine understates what one core does.
type cpuSpeed struct{ start time.Duration }

func startCPU() cpuSpeed { return cpuSpeed{cpuTime()} }

func (c cpuSpeed) report(b *testing.B, bytes int) {
	if d := cpuTime() - c.start; d > 0 && c.start > 0 {
		b.ReportMetric(float64(bytes)*float64(b.N)/d.Seconds()/1e6, "cpuMB/s")
	}
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
			cpu := startCPU()
			for b.Loop() {
				dst, err = Encode(dst[:0], src, c.es)
				if err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, len(src))
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
			cpu := startCPU()
			for b.Loop() {
				out, err = Decode(out[:0], enc, len(src))
				if err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, len(src))
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
			if es <= 4 { // the portable loop, the vector loop's peer
				b.Run(fmt.Sprintf("merge-generic/es%d/%dK", es, size>>10), func(b *testing.B) {
					b.SetBytes(int64(size))
					for b.Loop() {
						if es == 2 {
							merge2Generic(dst, planes[0][:size/2], planes[1][:size/2], true)
						} else {
							merge4Generic(dst, &planes, size/4, true)
						}
					}
				})
			}
		}
	}
}

// deltaCase is a fine-tune-like pair of chunks for the delta benchmarks.
type deltaCase struct {
	name   string
	es     int
	rel    float64 // size of the change relative to the weights
	f32Ref bool    // bf16 content against an fp32 reference
}

var deltaCases = []deltaCase{
	// bf16: about 5% of the elements change (a pure bf16 fine-tune
	// between checkpoints measures 4-5%).
	{"bf16", 2, 0.0002, false},
	{"bf16-from-f32", 2, 0.0002, true},
	// fp32: every element changes, its exponent rarely.
	{"f32", 4, 0.01, false},
}

var deltaData = sync.OnceValue(func() map[string][2][]byte {
	m := make(map[string][2][]byte)
	for _, c := range deltaCases {
		content, ref := fineTunePair(benchSize, c.es, c.rel, c.f32Ref)
		m[c.name] = [2][]byte{content, ref}
	}
	return m
})

func encodeDeltaCase(c deltaCase, dst, content, ref []byte, op *DeltaOp) ([]byte, error) {
	form := RefSame
	if c.f32Ref {
		form = RefF32ToBF16
	}
	return encodeDelta(dst, content, ref, c.es, form, op, defaultBlockLog)
}

// BenchmarkEncodeDelta measures EncodeDelta (op chosen by its estimate) on
// generated fine-tune steps; ratio is the payload over the content.
func BenchmarkEncodeDelta(b *testing.B) {
	for _, c := range deltaCases {
		b.Run(c.name, func(b *testing.B) {
			d := deltaData()[c.name]
			dst, err := encodeDeltaCase(c, nil, d[0], d[1], nil)
			require.NoError(b, err)
			b.SetBytes(int64(len(d[0])))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			for b.Loop() {
				if dst, err = encodeDeltaCase(c, dst[:0], d[0], d[1], nil); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, len(d[0]))
			b.ReportMetric(float64(len(dst))/float64(len(d[0])), "ratio")
		})
	}
}

// BenchmarkDecodeDelta measures DecodeDelta for both ops (MB/s of decoded
// content).
func BenchmarkDecodeDelta(b *testing.B) {
	for _, c := range deltaCases {
		for _, op := range []DeltaOp{OpXOR, OpSub} {
			b.Run(c.name+"/"+op.String(), func(b *testing.B) {
				d := deltaData()[c.name]
				enc, err := encodeDeltaCase(c, nil, d[0], d[1], &op)
				require.NoError(b, err)
				out := make([]byte, 0, len(d[0]))
				b.SetBytes(int64(len(d[0])))
				b.ReportAllocs()
				b.ResetTimer()
				cpu := startCPU()
				for b.Loop() {
					if out, err = DecodeDelta(out[:0], enc, d[1], len(d[0])); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b, len(d[0]))
				b.ReportMetric(float64(len(enc))/float64(len(d[0])), "ratio")
			})
		}
	}
}
