package object

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fineTuneStep returns n fp32 weights and the same weights after a small
// update of every element, as little-endian bytes.
func fineTuneStep(seed uint64, n int) (base, next []byte) {
	r := rand.New(rand.NewPCG(seed, 7))
	base, next = make([]byte, 4*n), make([]byte, 4*n)
	for i := range n {
		w := float32(r.NormFloat64() * 0.02)
		binary.LittleEndian.PutUint32(base[4*i:], math.Float32bits(w))
		if i%8 == 0 {
			w += float32(r.NormFloat64() * 1e-5)
		}
		binary.LittleEndian.PutUint32(next[4*i:], math.Float32bits(w))
	}
	return base, next
}

func TestDeltaObjectRoundTrip(t *testing.T) {
	base, next := fineTuneStep(1, 1<<18)
	baseID, nextID := Hash(base), Hash(next)
	standalone := Encode(nil, next, EncodeHint{ElemSize: 4})
	obj, err := EncodeDelta(nil, next, base, baseID, 4, len(standalone))
	require.NoError(t, err)
	assert.Less(t, len(obj), len(standalone)/2, "a sparse update codes far smaller than standalone")

	h, err := ParseHeader(obj)
	require.NoError(t, err)
	assert.Equal(t, CodecDelta, h.Codec)
	assert.Equal(t, len(next), h.ContentLen)
	ref, err := DeltaReference(h, obj[HeaderSize:])
	require.NoError(t, err)
	assert.Equal(t, baseID, ref)

	out, err := DecodeDelta(nil, h, obj[HeaderSize:], base, nextID)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(next, out))

	// Through a reader, as the engine reads it.
	rd := bytes.NewReader(obj)
	h2, err := ReadHeader(rd)
	require.NoError(t, err)
	payload, err := ReadPayload(rd, h2, make([]byte, 0, DeltaStoredCap(int64(h2.ContentLen))))
	require.NoError(t, err)
	out, err = DecodeDelta(nil, h2, payload, base, nextID)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(next, out))

	// Decoders that cannot fetch the reference say so; they never
	// misread the payload.
	_, err = Decode(nil, obj, nextID)
	require.ErrorIs(t, err, ErrNeedsReference)
	_, err = Read(bytes.NewReader(obj), nil, nextID, Exactly(int64(len(next))), nil)
	require.ErrorIs(t, err, ErrNeedsReference)

	// A wrong reference (another blob of the right length) is caught by
	// the content hash.
	other, _ := fineTuneStep(2, 1<<18)
	_, err = DecodeDelta(nil, h, obj[HeaderSize:], other, nextID)
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestEncodeDeltaOnlyWhenSmaller(t *testing.T) {
	a, _ := fineTuneStep(3, 1<<14)
	b, _ := fineTuneStep(4, 1<<14) // unrelated weights: the delta cannot pay
	standalone := Encode(nil, b, EncodeHint{ElemSize: 4})
	dst := []byte("prefix")
	out, err := EncodeDelta(dst, b, a, Hash(a), 4, len(standalone))
	require.ErrorIs(t, err, ErrNotDelta)
	assert.Equal(t, "prefix", string(out))
	_, err = EncodeDelta(nil, b, a[:8], Hash(a), 4, len(standalone))
	require.Error(t, err)
}

// The limit is exact: a delta of exactly the limit's length is refused, one
// byte more of limit takes it, and the result is the same coding.
func TestEncodeDeltaLimitIsExact(t *testing.T) {
	base, next := fineTuneStep(5, 1<<16)
	want, err := EncodeDelta([]byte("pre"), next, base, Hash(base), 4, math.MaxInt)
	require.NoError(t, err)
	n := len(want) - 3
	out, err := EncodeDelta([]byte("pre"), next, base, Hash(base), 4, n)
	require.ErrorIs(t, err, ErrNotDelta)
	assert.Equal(t, "pre", string(out))
	out, err = EncodeDelta([]byte("pre"), next, base, Hash(base), 4, n+1)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, out))
	for _, limit := range []int{0, 1, HeaderSize, HeaderSize + deltaRefsLen} {
		_, err = EncodeDelta(nil, next, base, Hash(base), 4, limit)
		require.ErrorIs(t, err, ErrNotDelta, "limit %d", limit)
	}
}

func TestDeltaReferenceRefusesBadEnvelopes(t *testing.T) {
	base, next := fineTuneStep(5, 1<<12)
	obj, err := EncodeDelta(nil, next, base, Hash(base), 4, math.MaxInt)
	require.NoError(t, err)
	h, err := ParseHeader(obj)
	require.NoError(t, err)
	payload := obj[HeaderSize:]
	mutate := func(f func(p []byte, h *Header)) (Header, []byte) {
		p := bytes.Clone(payload)
		hh := h
		f(p, &hh)
		return hh, p
	}
	cases := map[string]func(p []byte, h *Header){
		"two references":       func(p []byte, _ *Header) { p[0] = 2 },
		"other content length": func(_ []byte, h *Header) { h.ContentLen-- },
		"other element size":   func(_ []byte, h *Header) { h.Param = 2 },
		"bad delta version":    func(p []byte, _ *Header) { p[deltaRefsLen] = 9 },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			hh, p := mutate(f)
			_, err := DeltaReference(hh, p)
			require.ErrorIs(t, err, ErrCorrupt)
			_, err = DecodeDelta(nil, hh, p, base, Hash(next))
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}
	_, err = DeltaReference(h, payload[:10])
	require.ErrorIs(t, err, ErrCorrupt)
}

// FuzzDecodeDeltaObject: any object bytes against any reference either
// decode to content that hashes to the ID, or fail; never a panic, and
// never more allocated than the declared size and the inputs (plus decoder
// scratch), whatever the payload claims.
func FuzzDecodeDeltaObject(f *testing.F) {
	base, next := fineTuneStep(6, 1<<10)
	obj, err := EncodeDelta(nil, next, base, Hash(base), 4, math.MaxInt)
	if err != nil {
		f.Fatal(err)
	}
	id := Hash(next)
	f.Add(obj, base, id[:])
	f.Add(obj, next, id[:])
	bomb := bytes.Clone(obj)
	binary.LittleEndian.PutUint64(bomb[8:], MaxBlobContent)
	f.Add(bomb, base, id[:])
	f.Fuzz(func(t *testing.T, obj, ref, idBytes []byte) {
		var want ID
		copy(want[:], idBytes)
		rd := bytes.NewReader(obj)
		h, err := ReadHeader(rd)
		if err != nil || h.Codec != CodecDelta {
			return
		}
		var out []byte
		n := allocs(func() {
			var payload []byte
			payload, err = ReadPayload(rd, h, nil)
			if err != nil {
				return
			}
			if _, err = DeltaReference(h, payload); err != nil {
				return
			}
			out, err = DecodeDelta(nil, h, payload, ref, want)
		})
		if err == nil {
			require.Equal(t, want, Hash(out))
			require.Len(t, out, h.ContentLen)
			require.Len(t, ref, h.ContentLen)
		}
		// The payload read stops at its bound (at most twice the input,
		// as the buffer grows), and the content is allocated only against
		// a reference of its length: at most len(ref) bytes.
		require.LessOrEqual(t, n, 2*uint64(len(obj))+uint64(len(ref))+decoderScratch, "allocated %d bytes", n)
	})
}

// BenchmarkDecodeDeltaObject measures what a reader spends on a delta blob
// of an 8 MiB fp32 fine-tune chunk once it holds the payload and the
// reference: the reference list, the planes delta decode, and the SHA-256
// check of the content (MB/s of content). The hash is reported apart
// (BenchmarkDecodeDeltaObject/hash-only) to show the codec's share.
func BenchmarkDecodeDeltaObject(b *testing.B) {
	base, next := fineTuneStep(8, 2<<20)
	obj, err := EncodeDelta(nil, next, base, Hash(base), 4, math.MaxInt)
	require.NoError(b, err)
	h, err := ParseHeader(obj)
	require.NoError(b, err)
	want := Hash(next)
	b.Run("decode+hash", func(b *testing.B) {
		out := make([]byte, 0, len(next))
		b.SetBytes(int64(len(next)))
		b.ReportAllocs()
		for b.Loop() {
			if out, err = DecodeDelta(out[:0], h, obj[HeaderSize:], base, want); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(obj))/float64(len(next)), "ratio")
	})
	b.Run("hash-only", func(b *testing.B) {
		b.SetBytes(int64(len(next)))
		for b.Loop() {
			Hash(next)
		}
	})
}

// TestReadBodyUnverified: a delta's reference is read without hashing its
// content (the delta's own hash decides), but every structural check still
// holds: lengths, payload bounds and codec structure.
func TestReadBodyUnverified(t *testing.T) {
	content := make([]byte, 1<<16)
	for i := range content {
		content[i] = byte(i * 7)
	}
	for _, hint := range []EncodeHint{{}, {ElemSize: 2}, {Text: true}} {
		obj := Encode(nil, content, hint)
		h, err := ParseHeader(obj)
		require.NoError(t, err)
		got, err := ReadBodyUnverified(bytes.NewReader(obj[HeaderSize:]), h, nil, nil)
		require.NoError(t, err, "codec %s", h.Codec)
		assert.Equal(t, content, got)
		// ReadBody with another ID fails; the unverified read does not
		// look at IDs at all.
		_, err = ReadBody(bytes.NewReader(obj[HeaderSize:]), h, nil, Hash([]byte("other")), nil)
		require.ErrorIs(t, err, ErrCorrupt)
		// A payload cut short is refused either way.
		_, err = ReadBodyUnverified(bytes.NewReader(obj[HeaderSize:len(obj)-1]), h, nil, nil)
		require.Error(t, err, "codec %s", h.Codec)
	}
}
