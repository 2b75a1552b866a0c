package planes

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// perturb returns a copy of data with about one byte in rate changed.
func perturb(data []byte, rate int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	out := append([]byte(nil), data...)
	for i := r.IntN(rate); i < len(out); i += 1 + r.IntN(2*rate) {
		out[i] ^= byte(1 + r.IntN(255))
	}
	return out
}

// deltaRefs returns references of len(content) bytes to code content
// against: itself, a perturbed copy, unrelated random bytes and zeros.
func deltaRefs(content []byte) []dataCase {
	return []dataCase{
		{"same", append([]byte(nil), content...)},
		{"perturbed", perturb(content, 50, uint64(len(content)))},
		{"random", randBytes(uint64(len(content))+99, len(content))},
		{"zeros", make([]byte, len(content))},
	}
}

func opPtr(op DeltaOp) *DeltaOp { return &op }

// checkDeltaRoundTrip codes content against ref and decodes it back, with
// and without a prefix in dst.
func checkDeltaRoundTrip(t *testing.T, content, ref []byte, es int, form RefForm, op *DeltaOp, blockLog uint) []byte {
	t.Helper()
	enc, err := encodeDelta(nil, content, ref, es, form, op, blockLog)
	require.NoError(t, err)
	info, err := ParseDelta(enc)
	require.NoError(t, err)
	assert.Equal(t, len(content), info.N)
	assert.Equal(t, len(ref), info.RefLen)
	assert.Equal(t, form, info.Form)
	assert.Equal(t, es, info.ElemSize)
	if op != nil {
		assert.Equal(t, *op, info.Op)
	}

	dec, err := DecodeDelta(nil, enc, ref, len(content))
	require.NoError(t, err)
	require.True(t, bytes.Equal(content, dec), "round trip differs")
	prefixed, err := DecodeDelta([]byte("pre"), enc, ref, len(content))
	require.NoError(t, err)
	require.Equal(t, "pre", string(prefixed[:3]))
	require.True(t, bytes.Equal(content, prefixed[3:]), "round trip after a prefix differs")

	// A difference of incompressible bytes costs at most the headers and
	// a kind byte per block, as in Encode.
	nBlocks := (len(content)/es + 1<<blockLog - 1) >> blockLog
	assert.LessOrEqual(t, len(enc), len(content)+deltaPrefixLen+16+es*(10+nBlocks))
	return enc
}

func TestDeltaRoundTrip(t *testing.T) {
	for _, blockLog := range []uint{defaultBlockLog, minBlockLog} {
		for _, es := range elemSizes {
			for i, c := range roundTripCases(es) {
				t.Run(fmt.Sprintf("L%d/es%d/%s", blockLog, es, c.name), func(t *testing.T) {
					refs := deltaRefs(c.data)
					// Both ops against a close reference, the
					// estimate's choice against one of the others.
					checkDeltaRoundTrip(t, c.data, refs[1].data, es, RefSame, opPtr(OpXOR), blockLog)
					checkDeltaRoundTrip(t, c.data, refs[1].data, es, RefSame, opPtr(OpSub), blockLog)
					other := []dataCase{refs[0], refs[2], refs[3]}[i%3]
					checkDeltaRoundTrip(t, c.data, other.data, es, RefSame, nil, blockLog)
				})
			}
		}
	}
}

func TestDeltaRoundTripF32ToBF16(t *testing.T) {
	type pair struct {
		name         string
		content, ref []byte
	}
	var pairs []pair
	for _, n := range []int{0, 1, 3, 4, 5, 1000, blockLen - 1, blockLen, blockLen + 1, 2*blockLen + 3} {
		content, ref := fineTunePair(2*n, 2, 0.001, true)
		pairs = append(pairs, pair{fmt.Sprintf("fine-tune %d", n), content, ref})
	}
	// Special values, as reference and as content: NaNs of every kind,
	// infinities, zeros, denormals, values that round up to infinity and
	// ties.
	special := f32Bytes(float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0,
		float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, math.MaxFloat32, -math.MaxFloat32, 1, -1)
	for _, bits := range []uint32{0x7fc00001, 0xffffffff, 0x7f800001, 0x3f808000, 0x3f818000, 0x3f80ffff, 0x7f7fffff, 0x0000ffff, 0x80008000} {
		special = binary.LittleEndian.AppendUint32(special, bits)
	}
	special = bytes.Repeat(special, 300)
	pairs = append(pairs,
		pair{"special ref, random content", randBytes(5, len(special)/2), special},
		pair{"special ref, rounded content", bf16Of(special), special},
		pair{"random ref", randBytes(6, 5000), randBytes(7, 10000)})
	for _, blockLog := range []uint{defaultBlockLog, minBlockLog} {
		for _, p := range pairs {
			t.Run(fmt.Sprintf("L%d/%s", blockLog, p.name), func(t *testing.T) {
				for _, op := range []*DeltaOp{opPtr(OpXOR), opPtr(OpSub), nil} {
					checkDeltaRoundTrip(t, p.content, p.ref, 2, RefF32ToBF16, op, blockLog)
				}
			})
		}
	}
}

// bf16Of rounds every fp32 element of f32 to bf16 with bf16FromF32.
func bf16Of(f32 []byte) []byte {
	out := make([]byte, len(f32)/2)
	for i := 0; i+4 <= len(f32); i += 4 {
		binary.LittleEndian.PutUint16(out[i/2:], bf16FromF32(binary.LittleEndian.Uint32(f32[i:])))
	}
	return out
}

// TestBF16FromF32 checks the rounding against the test generator's
// converter (round to nearest even) and PyTorch's NaN (0x7fc0 for every
// NaN), on boundary patterns and random ones.
func TestBF16FromF32(t *testing.T) {
	check := func(b uint32) {
		f := math.Float32frombits(b)
		want := f32ToBF16(f)
		if f != f {
			want = 0x7fc0
		}
		require.Equal(t, want, bf16FromF32(b), "fp32 %#08x", b)
	}
	for _, b := range []uint32{0, 0x80000000, 0x3f808000, 0x3f818000, 0x3f807fff, 0x3f80ffff,
		0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7f800001, 0x7fc00000, 0xffffffff, 0x0000ffff, 0x00008000} {
		check(b)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1 << 16 {
		check(r.Uint32())
	}
	// The conversion itself: ties go to even, NaN payloads are dropped.
	assert.Equal(t, uint16(0x3f80), bf16FromF32(0x3f808000))
	assert.Equal(t, uint16(0x3f82), bf16FromF32(0x3f818000))
	assert.Equal(t, uint16(0x7f80), bf16FromF32(0x7f7fffff)) // rounds up to +Inf
	assert.Equal(t, uint16(0x7fc0), bf16FromF32(0xffc00001))
}

// TestLaneArithmetic checks the SWAR lane operations against per-lane
// integer arithmetic.
func TestLaneArithmetic(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	edge := []uint64{0, ^uint64(0), 0x8000_0000_0000_0000, 0x7fff_ffff_ffff_ffff, 0x0101_0101_0101_0101, 0x8080_8080_8080_8080, 0x7f7f_7f7f_7f7f_7f7f}
	for _, es := range elemSizes {
		w := uint(8 * es)
		mask := laneOnes[es]
		h := highBits[es]
		signed := func(v uint64) int64 { return int64(v<<(64-w)) >> (64 - w) }
		for i := range 100000 {
			x, y := r.Uint64(), r.Uint64()
			if i < len(edge)*len(edge) {
				x, y = edge[i%len(edge)], edge[i/len(edge)]
			}
			sum, diff := addLanes(x, y, h), subLanes(x, y, h)
			zz, unz := zigzagLanes(x, es), unzigzagLanes(x, es)
			for l := uint(0); l < 64; l += w {
				a, b := x>>l&mask, y>>l&mask
				s := signed(a)
				for _, c := range []struct {
					op        string
					got, want uint64
				}{
					{"add", sum >> l & mask, (a + b) & mask},
					{"sub", diff >> l & mask, (a - b) & mask},
					{"zigzag", zz >> l & mask, uint64(s<<1^s>>63) & mask},
					{"unzigzag", unz >> l & mask, (a>>1 ^ -(a & 1)) & mask},
				} {
					if c.got != c.want {
						t.Fatalf("es %d %s of %#x, %#x: lane at bit %d is %#x, want %#x", es, c.op, x, y, l, c.got, c.want)
					}
				}
			}
			if back := unzigzagLanes(zigzagLanes(x, es), es); back != x {
				t.Fatalf("es %d: unzigzag(zigzag(%#x)) = %#x", es, x, back)
			}
		}
	}
}

// TestDeltaRatios pins what deltas store on generated fine-tune steps,
// against the standalone coding, and that the top planes use sparse
// blocks. The generator has a fixed seed.
func TestDeltaRatios(t *testing.T) {
	for _, c := range []struct {
		deltaCase
		max float64
	}{
		{deltaCases[0], 0.07}, // bf16: measured 0.046 (standalone 0.66)
		{deltaCases[1], 0.07}, // bf16 against fp32: the same
		{deltaCases[2], 0.70}, // f32: measured 0.648 (standalone 0.83)
	} {
		t.Run(c.name, func(t *testing.T) {
			content, ref := fineTunePair(benchSize, c.es, c.rel, c.f32Ref)
			enc, err := encodeDeltaCase(c.deltaCase, nil, content, ref, nil)
			require.NoError(t, err)
			alone, err := Encode(nil, content, c.es)
			require.NoError(t, err)
			ratio := float64(len(enc)) / float64(len(content))
			t.Logf("%s: delta %.4f, standalone %.4f of %d bytes (op %d)", c.name, ratio,
				float64(len(alone))/float64(len(content)), len(content), enc[1])
			assert.LessOrEqual(t, ratio, c.max)
			assert.Less(t, len(enc), len(alone))
			l := parseStreamLayout(t, enc[deltaPrefixLen:], streamVersion2)
			assert.Positive(t, l.kinds[blockSparse], "block kinds %v", l.kinds)
		})
	}
}

// parseStreamLayout is parseLayout for a stream of any version.
func parseStreamLayout(t *testing.T, enc []byte, version byte) layout {
	t.Helper()
	var h header
	require.NoError(t, parseHeader(enc, &h, math.MaxInt, version))
	l := layout{rot: h.rot, kinds: map[byte]int{}}
	for k := 0; k < h.nPlanes; k++ {
		p := h.planes[k]
		l.methods = append(l.methods, p.method)
		if p.method != planeBlocked {
			continue
		}
		data := p.data
		for b := 0; b < h.numBlocks(); b++ {
			kind, _, rest, err := h.nextBlock(data, h.blockSize(b), k, b)
			require.NoError(t, err)
			l.kinds[kind]++
			data = rest
		}
	}
	return l
}

func TestDeltaChoosesOp(t *testing.T) {
	f32, f32ref := fineTunePair(1<<20, 4, 0.01, false)
	bf, bfref := fineTunePair(1<<20, 2, 0.0002, false)
	// Sign flips: XOR changes one bit, subtraction a large number.
	flipped := append([]byte(nil), f32...)
	for i := 3; i < len(flipped); i += 4 {
		flipped[i] ^= 0x80
	}
	for _, c := range []struct {
		name         string
		content, ref []byte
		es           int
		want         DeltaOp
	}{
		{"f32 fine-tune", f32, f32ref, 4, OpSub},
		{"bf16 fine-tune", bf, bfref, 2, OpSub},
		{"f32 sign flips", flipped, f32, 4, OpXOR},
		{"unrelated", randBytes(1, 1<<20), randBytes(2, 1<<20), 4, OpXOR},
		{"too short to sample", f32[:100], f32ref[:100], 4, OpXOR},
	} {
		t.Run(c.name, func(t *testing.T) {
			enc, err := EncodeDelta(nil, c.content, c.ref, c.es)
			require.NoError(t, err)
			info, err := ParseDelta(enc)
			require.NoError(t, err)
			assert.Equal(t, c.want, info.Op)
			dec, err := DecodeDelta(nil, enc, c.ref, len(c.content))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(c.content, dec))
		})
	}
}

func TestEncodeDeltaRejects(t *testing.T) {
	data := genF32(4096)
	for _, c := range []struct {
		name string
		run  func() ([]byte, error)
		want error
	}{
		{"elem size 3", func() ([]byte, error) { return EncodeDelta(nil, data, data, 3) }, ErrElemSize},
		{"short ref", func() ([]byte, error) { return EncodeDelta(nil, data, data[1:], 4) }, ErrReference},
		{"long ref", func() ([]byte, error) { return EncodeDelta(nil, data[1:], data, 4) }, ErrReference},
		{"f32 ref not twice as long", func() ([]byte, error) { return EncodeDeltaF32ToBF16(nil, data[:2048], data[:2048]) }, ErrReference},
		{"odd bf16 content", func() ([]byte, error) { return EncodeDeltaF32ToBF16(nil, data[:2047], data[:4094]) }, ErrReference},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := c.run()
			require.ErrorIs(t, err, c.want)
			assert.Empty(t, out)
		})
	}
}

// deltaOf wraps a hand-made stream in a delta header.
func deltaOf(op DeltaOp, form RefForm, stream []byte) []byte {
	return append([]byte{DeltaVersion, byte(op), byte(form)}, stream...)
}

// hdr2 is hdr for a version 2 stream.
func hdr2(es, transform, blockLog byte, n uint64, planes ...byte) []byte {
	b := hdr(es, transform, blockLog, n, planes...)
	b[0] = streamVersion2
	return b
}

// sparseStream returns a version 2, element size 1 stream of n bytes
// whose only block is a sparse block with the given payload.
func sparseStream(n int, payload ...byte) []byte {
	block := append([]byte{blockSparse}, binary.AppendUvarint(nil, uint64(len(payload)))...)
	block = append(block, payload...)
	enc := hdr2(1, 0, 10, uint64(n), 1, planeBlocked)
	enc = binary.AppendUvarint(enc, uint64(len(block)))
	return append(enc, block...)
}

func TestDecodeDeltaRejects(t *testing.T) {
	content, ref := fineTunePair(3*blockLen*2, 2, 0.0002, false)
	valid, err := EncodeDelta(nil, content, ref, 2)
	require.NoError(t, err)
	validF32, err := EncodeDeltaF32ToBF16(nil, content[:4000], genF32(8000))
	require.NoError(t, err)
	v1, err := Encode(nil, content, 2)
	require.NoError(t, err)
	ones := bytes.Repeat([]byte{0xff}, 100)
	// bitmap of 8 bytes for 64 bytes: bytes 0 and 9 set.
	bm := []byte{0x01, 0x02, 0, 0, 0, 0, 0, 0}
	sp := func(n int, payload ...byte) []byte { return deltaOf(OpXOR, RefSame, sparseStream(n, payload...)) }
	zeros := make([]byte, 4096)

	cases := []struct {
		name    string
		payload []byte
		ref     []byte
		n       int
		want    error
	}{
		{"empty", nil, nil, 0, ErrCorrupt},
		{"short", []byte{DeltaVersion, 0}, nil, 0, ErrCorrupt},
		{"version 0", append([]byte{0}, valid[1:]...), ref, len(content), ErrCorrupt},
		{"version 2", append([]byte{2}, valid[1:]...), ref, len(content), ErrCorrupt},
		{"unknown op", append([]byte{DeltaVersion, 2}, valid[2:]...), ref, len(content), ErrCorrupt},
		{"unknown form", append([]byte{DeltaVersion, 0, 2}, valid[3:]...), ref, len(content), ErrCorrupt},
		{"version 1 stream inside", deltaOf(OpXOR, RefSame, v1), ref, len(content), ErrCorrupt},
		{"declares more than n", valid, ref[:len(ref)-2], len(content) - 2, ErrTooLarge},
		{"declares less than n", valid, append(ref, 0, 0), len(content) + 2, ErrCorrupt},
		{"negative n", valid, ref, -1, ErrTooLarge},
		{"short ref", valid, ref[:len(ref)-1], len(content), ErrReference},
		{"long ref", valid, append(ref, 0), len(content), ErrReference},
		{"f32 form, bf16-sized ref", validF32, genF32(4000), 4000, ErrReference},
		{"f32 form, element size 4", deltaOf(OpXOR, RefF32ToBF16, hdr2(4, 0, 17, 4, 4, planeConst, 1, planeConst, 1, planeConst, 1, planeConst, 1, 0, 0, 0, 0)), zeros[:8], 4, ErrCorrupt},
		{"f32 form, odd length", deltaOf(OpXOR, RefF32ToBF16, hdr2(2, 0, 17, 3, 2, planeConst, 1, planeConst, 1, 0, 0, 7)), zeros[:6], 3, ErrCorrupt},
		{"trailing garbage", append(append([]byte(nil), valid...), 0), ref, len(content), ErrCorrupt},
		{"truncated", valid[:len(valid)-1], ref, len(content), ErrCorrupt},
		{"sparse in a version 1 stream", deltaOf(OpXOR, RefSame, func() []byte {
			s := sparseStream(64, append(append([]byte{blockRaw}, bm...), blockRaw, 5, 6)...)
			s[0] = Version
			return s
		}()), zeros[:64], 64, ErrCorrupt},
		{"sparse: no bitmap", sp(64), zeros[:64], 64, ErrCorrupt},
		{"sparse: unknown bitmap kind", sp(64, 9, 0), zeros[:64], 64, ErrCorrupt},
		{"sparse: raw bitmap short", sp(64, append([]byte{blockRaw}, bm[:7]...)...), zeros[:64], 64, ErrCorrupt},
		{"sparse: no values", sp(64, append([]byte{blockRaw}, bm...)...), zeros[:64], 64, ErrCorrupt},
		{"sparse: unknown values kind", sp(64, append(append([]byte{blockRaw}, bm...), 7, 1, 2)...), zeros[:64], 64, ErrCorrupt},
		{"sparse: too few values", sp(64, append(append([]byte{blockRaw}, bm...), blockRaw, 5)...), zeros[:64], 64, ErrCorrupt},
		{"sparse: too many values", sp(64, append(append([]byte{blockRaw}, bm...), blockRaw, 5, 6, 7)...), zeros[:64], 64, ErrCorrupt},
		{"sparse: more values than bytes", sp(64, append(append([]byte{blockRaw}, bm...), append([]byte{blockRaw}, ones[:65]...)...)...), zeros[:64], 64, ErrCorrupt},
		{"sparse: rle values of 2 bytes", sp(64, append(append([]byte{blockRaw}, bm...), blockRLE, 5, 6)...), zeros[:64], 64, ErrCorrupt},
		{"sparse: bitmap past the block", sp(60, append(append([]byte{blockRaw}, 0, 0, 0, 0, 0, 0, 0, 0x10), blockRaw, 5)...), zeros[:60], 60, ErrCorrupt},
		{"sparse: huff0 bitmap empty", sp(64, blockHuff, 0, blockRaw), zeros[:64], 64, ErrCorrupt},
		{"sparse: huff0 bitmap past end", sp(64, blockHuff, 9, 1, blockRaw), zeros[:64], 64, ErrCorrupt},
		{"sparse: huff0 bitmap garbage", sp(64, append([]byte{blockHuff, 10, 0x81, 0x10, 1, 2, 3, 4, 5, 6, 7, 8}, blockRaw)...), zeros[:64], 64, ErrCorrupt},
		{"sparse: zstd bitmap garbage", sp(64, blockZstd, 5, 1, 2, 3, 4, 5, blockRaw), zeros[:64], 64, ErrCorrupt},
		{"sparse: zstd bitmap too long", sp(64, append(append([]byte{blockZstd}, zstdFrame(9)...), blockRaw)...), zeros[:64], 64, ErrCorrupt},
		{"sparse: huff0 values empty", sp(64, append(append([]byte{blockRaw}, bm...), blockHuff)...), zeros[:64], 64, ErrCorrupt},
		{"sparse: huff0 values garbage", sp(64, append(append([]byte{blockRaw}, bm...), blockHuff, 0x81, 0x10, 1, 2, 3)...), zeros[:64], 64, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := DecodeDelta(nil, c.payload, c.ref, c.n)
			require.ErrorIs(t, err, c.want)
			assert.Nil(t, out)
			assert.NotEmpty(t, err.Error())
		})
	}
	// Sanity checks of the hand-made sparse blocks: with matching
	// sizes they decode, raw, rle and zstd.
	for _, c := range []struct {
		name    string
		payload []byte
		want    []byte
	}{
		{"raw values", sp(64, append(append([]byte{blockRaw}, bm...), blockRaw, 5, 6)...), placed(64, map[int]byte{0: 5, 9: 6})},
		{"rle values", sp(64, append(append([]byte{blockRaw}, bm...), blockRLE, 7)...), placed(64, map[int]byte{0: 7, 9: 7})},
		{"zstd bitmap", sp(64, append(append([]byte{blockZstd}, zstdFrame(8)...), blockRLE, 3)...), placed(64, map[int]byte{0: 3, 8: 3, 16: 3, 24: 3, 32: 3, 40: 3, 48: 3, 56: 3})},
		{"short block", sp(60, append(append([]byte{blockRaw}, 0, 0, 0, 0, 0, 0, 0, 0x08), blockRaw, 5)...), placed(60, map[int]byte{59: 5})},
	} {
		t.Run("valid "+c.name, func(t *testing.T) {
			out, err := DecodeDelta(nil, c.payload, make([]byte, len(c.want)), len(c.want))
			require.NoError(t, err)
			assert.Equal(t, c.want, out)
		})
	}
}

// placed returns n zero bytes with the given bytes set.
func placed(n int, at map[int]byte) []byte {
	out := make([]byte, n)
	for i, v := range at {
		out[i] = v
	}
	return out
}

// zstdFrame returns the uvarint length and a zstd frame of m bytes 0x01
// (a bitmap marking every 8th byte).
func zstdFrame(m int) []byte {
	z := zstdEncoder().EncodeAll(bytes.Repeat([]byte{1}, m), nil)
	return append(binary.AppendUvarint(nil, uint64(len(z))), z...)
}

// TestSparseBlocks checks the encoder's use of sparse blocks at the edges:
// blocks whose length is not a multiple of 8, rle values, and planes with
// and without enough zeros.
func TestSparseBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	sparseBytes := func(n, every int, val func() byte) []byte {
		out := make([]byte, n)
		for i := range out {
			if r.IntN(every) == 0 {
				out[i] = val()
			}
		}
		return out
	}
	anyByte := func() byte { return byte(1 + r.IntN(255)) }
	for _, c := range []struct {
		name   string
		d      []byte // the difference to code
		sparse bool   // must use sparse blocks
	}{
		{"one in 50", sparseBytes(3*1024+5, 50, anyByte), true},
		{"one in 50, rle values", sparseBytes(5*1024+3, 50, func() byte { return 1 }), true},
		{"one in 4", sparseBytes(3*1024, 4, anyByte), true},
		{"odd block lengths", sparseBytes(1024+77, 20, anyByte), true},
		{"one in 1000", sparseBytes(64<<10, 1000, anyByte), true},
		{"half zero", sparseBytes(4096, 2, anyByte), false},
		{"random", randBytes(4, 4096), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref := randBytes(uint64(len(c.d)), len(c.d))
			content := make([]byte, len(c.d))
			xorBytes(content, c.d, ref)
			enc := checkDeltaRoundTrip(t, content, ref, 1, RefSame, opPtr(OpXOR), minBlockLog)
			l := parseStreamLayout(t, enc[deltaPrefixLen:], streamVersion2)
			if c.sparse {
				assert.Positive(t, l.kinds[blockSparse], "kinds %v", l.kinds)
			}
			// Encode (version 1) never writes sparse blocks.
			alone, err := encode(nil, c.d, 1, minBlockLog)
			require.NoError(t, err)
			assert.Zero(t, parseLayout(t, alone).kinds[blockSparse])
		})
	}
}

// TestDeltaTruncationsAndMutations feeds every prefix and many mutations
// of valid deltas to DecodeDelta: it must not panic, must fail on every
// strict prefix, must never return more than n bytes, and must classify its
// errors.
func TestDeltaTruncationsAndMutations(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 12))
	for _, c := range []struct {
		name   string
		es     int
		f32Ref bool
		rel    float64
	}{
		{"bf16", 2, false, 0.0002},
		{"bf16 from f32", 2, true, 0.0002},
		{"f32", 4, false, 0.01},
	} {
		t.Run(c.name, func(t *testing.T) {
			content, ref := fineTunePair(6000, c.es, c.rel, c.f32Ref)
			form := RefSame
			if c.f32Ref {
				form = RefF32ToBF16
			}
			for _, op := range []DeltaOp{OpXOR, OpSub} {
				enc, err := encodeDelta(nil, content, ref, c.es, form, &op, minBlockLog)
				require.NoError(t, err)
				for i := 0; i < len(enc); i++ {
					_, err := DecodeDelta(nil, enc[:i], ref, len(content))
					require.Error(t, err, "prefix of %d/%d bytes", i, len(enc))
				}
				for range 3000 {
					mut := append([]byte(nil), enc...)
					for range 1 + r.IntN(3) {
						mut[r.IntN(len(mut))] = byte(r.Uint32())
					}
					out, err := DecodeDelta(nil, mut, ref, len(content))
					if err == nil {
						require.Len(t, out, len(content))
						continue
					}
					require.Nil(t, out)
					require.True(t, errorsIsAny(err, ErrCorrupt, ErrTooLarge, ErrReference), "unclassified: %v", err)
				}
			}
		})
	}
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// TestDecodeDeltaRefusesBeforeAllocating checks that a delta declaring a
// huge length is refused without allocating near it.
func TestDecodeDeltaRefusesBeforeAllocating(t *testing.T) {
	big, err := EncodeDelta(nil, make([]byte, 64<<20), make([]byte, 64<<20), 8)
	require.NoError(t, err)
	require.Less(t, len(big), 5000)
	badFraming := deltaOf(OpXOR, RefSame, hdr2(1, 0, 10, 64<<20, 1, planeBlocked, 2, blockRLE, 0))
	small := make([]byte, 1<<20)
	for _, c := range []struct {
		name    string
		payload []byte
		n       int
		want    error
	}{
		{"valid but longer than n", big, 1 << 20, ErrTooLarge},
		{"declared 1 TiB", deltaOf(OpXOR, RefSame, hdr2(1, 0, 17, 1<<40, 1, planeConst, 1, 0)), 1 << 20, ErrTooLarge},
		{"bad framing", badFraming, 64 << 20, ErrCorrupt},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref := small
			if c.n != len(small) {
				ref = make([]byte, c.n)
			}
			_, err := DecodeDelta(nil, c.payload, ref, c.n)
			require.ErrorIs(t, err, c.want)
			const runs = 100
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range runs {
				_, _ = DecodeDelta(nil, c.payload, ref, c.n)
			}
			runtime.ReadMemStats(&after)
			perRun := (after.TotalAlloc - before.TotalAlloc) / runs
			assert.Less(t, perRun, uint64(4096), "bytes allocated per DecodeDelta")
		})
	}
}

func TestDecodeDeltaSteadyStateAllocs(t *testing.T) {
	content, ref := fineTunePair(4<<20, 2, 0.0002, false)
	enc, err := EncodeDelta(nil, content, ref, 2)
	require.NoError(t, err)
	dst := make([]byte, 0, len(content))
	_, err = DecodeDelta(dst, enc, ref, len(content)) // warm the pools
	require.NoError(t, err)
	var bytesPerRun uint64
	allocs := testing.AllocsPerRun(20, func() {
		bytesPerRun = allocs(func() {
			if _, err := DecodeDelta(dst, enc, ref, len(content)); err != nil {
				t.Fatal(err)
			}
		})
	})
	// Pools may be flushed by a GC between runs; steady state is a
	// closure and nothing near the content's size.
	assert.Less(t, allocs, 4.0)
	assert.Less(t, bytesPerRun, uint64(256<<10))
}

func TestEncodeDeltaWith(t *testing.T) {
	content, ref := fineTunePair(1<<20, 4, 0.01, false)
	bf, f32 := fineTunePair(1<<20, 2, 0.0002, true)
	for _, c := range []struct {
		name         string
		content, ref []byte
		es           int
		form         RefForm
		op, want     DeltaOp
	}{
		{"auto", content, ref, 4, RefSame, OpAuto, OpSub},
		{"xor", content, ref, 4, RefSame, OpXOR, OpXOR},
		{"sub", content, ref, 4, RefSame, OpSub, OpSub},
		{"f32 to bf16, auto", bf, f32, 2, RefF32ToBF16, OpAuto, OpSub},
		{"f32 to bf16, xor", bf, f32, 2, RefF32ToBF16, OpXOR, OpXOR},
	} {
		t.Run(c.name, func(t *testing.T) {
			enc, err := EncodeDeltaWith(nil, c.content, c.ref, c.es, c.form, c.op)
			require.NoError(t, err)
			info, err := ParseDelta(enc)
			require.NoError(t, err)
			assert.Equal(t, c.want, info.Op)
			assert.Equal(t, c.form, info.Form)
			dec, err := DecodeDelta(nil, enc, c.ref, len(c.content))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(c.content, dec))
		})
	}
	_, err := EncodeDeltaWith(nil, content, ref, 4, RefSame, DeltaOp(7))
	assert.Error(t, err)
	_, err = EncodeDeltaWith(nil, content, ref, 4, RefForm(9), OpXOR)
	assert.ErrorIs(t, err, ErrReference)
}

// sparseBlocks counts the block indexes at which every plane of the
// stream is sparse or zero: DecodeDelta's sparse path.
func sparseBlocks(t *testing.T, h *header) int {
	t.Helper()
	var data [maxPlanes][]byte
	for k := 0; k < h.nPlanes; k++ {
		data[k] = h.planes[k].data
	}
	n := 0
	for b := 0; b < h.numBlocks(); b++ {
		all := true
		for k := 0; k < h.nPlanes; k++ {
			p := h.planes[k]
			switch p.method {
			case planeRaw:
				all = false
			case planeConst:
				all = all && p.data[0] == 0
			default:
				kind, payload, rest, err := h.nextBlock(data[k], h.blockSize(b), k, b)
				require.NoError(t, err)
				data[k] = rest
				all = all && (kind == blockSparse || kind == blockRLE && payload[0] == 0)
			}
		}
		if all {
			n++
		}
	}
	return n
}

// TestDeltaDecodePaths checks DecodeDelta, whose blocks take the sparse
// path (reference copied, marked elements patched) or the merged path
// (fused with the op for element sizes 2 and 4), against the plain
// definition: decode the difference with Decode's machinery, then apply the
// op element by element. It also checks that the cases reach the sparse
// path with and without rot16, and the merged path.
func TestDeltaDecodePaths(t *testing.T) {
	type tc struct {
		name         string
		content, ref []byte
		es           int
		form         RefForm
	}
	var cases []tc
	for _, es := range elemSizes {
		for _, rate := range []int{3, 40, 5000} {
			data := genF32(3*blockLen + 7)
			cases = append(cases, tc{fmt.Sprintf("es%d one in %d", es, rate), perturb(data, rate, uint64(es*rate)), data, es, RefSame})
		}
	}
	for _, rel := range []float64{0.00005, 0.0002, 0.01} {
		c, r := fineTunePair(2*blockLen*2+6, 2, rel, false)
		cases = append(cases, tc{fmt.Sprintf("bf16 rel %g", rel), c, r, 2, RefSame})
		c, r = fineTunePair(2*blockLen*2+6, 2, rel, true)
		cases = append(cases, tc{fmt.Sprintf("bf16 from f32 rel %g", rel), c, r, 2, RefF32ToBF16})
		c, r = fineTunePair(2*blockLen*4+8, 4, rel, false)
		cases = append(cases, tc{fmt.Sprintf("f32 rel %g", rel), c, r, 4, RefSame})
	}
	// Exponent changes across the byte boundary (XOR 0x0180): rot16
	// gathers them into the top plane.
	bf := genBF16(2*blockLen*2 + 2)
	flipped := append([]byte(nil), bf...)
	r := rand.New(rand.NewPCG(5, 5))
	for i := 0; i+2 <= len(flipped); i += 2 {
		if r.IntN(30) == 0 {
			binary.LittleEndian.PutUint16(flipped[i:], binary.LittleEndian.Uint16(flipped[i:])^0x0180)
		}
	}
	cases = append(cases, tc{"bf16 exponent flips", flipped, bf, 2, RefSame})
	var sparseRot, sparsePlain, merged int
	for _, c := range cases {
		for _, op := range []DeltaOp{OpXOR, OpSub} {
			t.Run(fmt.Sprintf("%s/%s", c.name, op), func(t *testing.T) {
				for _, blockLog := range []uint{defaultBlockLog, minBlockLog} {
					enc, err := encodeDelta(nil, c.content, c.ref, c.es, c.form, &op, blockLog)
					require.NoError(t, err)
					got, err := DecodeDelta(nil, enc, c.ref, len(c.content))
					require.NoError(t, err)
					require.True(t, bytes.Equal(c.content, got), "round trip differs")

					var h header
					require.NoError(t, parseHeader(enc[deltaPrefixLen:], &h, len(c.content), streamVersion2))
					d := make([]byte, h.n)
					body := d[:h.nElems*h.es]
					if h.es == 1 {
						require.NoError(t, decodePlaneInto(body, &h))
					} else {
						require.NoError(t, decodePlanes(body, &h))
					}
					copy(d[len(body):], h.tail)
					want := make([]byte, len(d))
					for i := 0; i+c.es <= len(body); i += c.es {
						combineRef(want[i:i+c.es], d[i:i+c.es], c.ref, i, c.es, op, c.form)
					}
					for i := len(body); i < len(d); i++ {
						want[i] = d[i] ^ c.ref[i]
					}
					require.True(t, bytes.Equal(want, got), "DecodeDelta differs from the definition")

					s := sparseBlocks(t, &h)
					switch {
					case s > 0 && h.rot:
						sparseRot++
					case s > 0:
						sparsePlain++
					}
					if s < h.numBlocks() {
						merged++
					}
				}
			})
		}
	}
	assert.Positive(t, sparseRot, "sparse path with rot16")
	assert.Positive(t, sparsePlain, "sparse path without rot16")
	assert.Positive(t, merged, "merged path")
}

// combineRef is the definition of the ops on one element: dst gets d
// combined with the reference element at byte offset i of the content.
func combineRef(dst, d, ref []byte, i, es int, op DeltaOp, form RefForm) {
	var x, r uint64
	for k := es - 1; k >= 0; k-- {
		x = x<<8 | uint64(d[k])
	}
	if form == RefF32ToBF16 {
		r = uint64(bf16FromF32(binary.LittleEndian.Uint32(ref[2*i:])))
	} else {
		for k := es - 1; k >= 0; k-- {
			r = r<<8 | uint64(ref[i+k])
		}
	}
	var c uint64
	if op == OpXOR {
		c = x ^ r
	} else {
		s := x>>1 ^ -(x & 1) // unzigzag, then wrap to es bytes
		c = r + s
	}
	for k := 0; k < es; k++ {
		dst[k] = byte(c >> (8 * k))
	}
}
