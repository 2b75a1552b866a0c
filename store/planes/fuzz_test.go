package planes

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
)

// fuzzMaxSize is the output limit FuzzDecode decodes with.
const fuzzMaxSize = 1 << 16

// decodeScratch bounds what Decode allocates besides its output: a decode
// state (8 blocks of 128 KiB) when the free list has none, and huff0's
// and zstd's tables.
const decodeScratch = 2 << 20

// allocs returns the bytes the Go heap allocated while f ran.
func allocs(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func fuzzSeeds() [][]byte {
	return [][]byte{
		nil,
		{0},
		[]byte("hello, planes"),
		genBF16(4097),
		genF16(2100),
		genF32(4099),
		specialFloats(777),
		sparse(2500),
		text(3000),
		randBytes(5, 1500),
		make([]byte, 4000),
	}
}

// FuzzDecode feeds arbitrary bytes to Decode with a small limit: it must
// not panic, must not return more than the limit, must classify its errors,
// and whatever it accepts must be a consistent encoding.
func FuzzDecode(f *testing.F) {
	// Small blocks give multi-block encodings of small inputs.
	for _, s := range fuzzSeeds() {
		for _, es := range elemSizes {
			enc, err := encode(nil, s, es, minBlockLog)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(enc)
		}
	}
	f.Add(hdr(1, 0, 17, 1<<40, 1, planeConst, 1, 0))
	f.Add(hdr(2, 1, 10, 2048, 2, planeBlocked, 4, blockRLE, 1, blockRLE, 2, planeConst, 1, 9))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, enc []byte) {
		var out []byte
		var err error
		alloc := allocs(func() { out, err = Decode(nil, enc, fuzzMaxSize) })
		// Never more than the declared length (which a valid header
		// bounds by the limit), the input and the pooled scratch.
		if declared, derr := DecodedLen(enc); derr == nil && declared <= fuzzMaxSize {
			if alloc > uint64(declared+len(enc))+decodeScratch {
				t.Fatalf("allocated %d bytes for %d declared, %d of input", alloc, declared, len(enc))
			}
		} else if alloc > uint64(len(enc))+decodeScratch {
			t.Fatalf("allocated %d bytes for a refused header, %d of input", alloc, len(enc))
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unclassified error: %v", err)
			}
			if out != nil {
				t.Fatalf("output %d bytes with error %v", len(out), err)
			}
			return
		}
		if len(out) > fuzzMaxSize {
			t.Fatalf("decoded %d bytes, limit %d", len(out), fuzzMaxSize)
		}
		n, err := DecodedLen(enc)
		if err != nil || n != len(out) {
			t.Fatalf("DecodedLen = %d, %v; decoded %d bytes", n, err, len(out))
		}
		// Decoding into a prefixed dst gives the same bytes after it.
		again, err := Decode([]byte{1, 2, 3}, enc, fuzzMaxSize)
		if err != nil || !bytes.Equal(again[3:], out) {
			t.Fatalf("second decode differs: %v", err)
		}
	})
}

// FuzzRoundTrip checks that Decode(Encode(x)) == x for every element size,
// with the default and with the smallest block length.
func FuzzRoundTrip(f *testing.F) {
	for i, s := range fuzzSeeds() {
		f.Add(s, byte(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, sel byte) {
		es := elemSizes[int(sel)%len(elemSizes)]
		blockLog := uint(defaultBlockLog)
		if sel&4 != 0 {
			blockLog = minBlockLog
		}
		enc, err := encode(nil, data, es, blockLog)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := Decode(nil, enc, len(data))
		if err != nil {
			t.Fatalf("es %d, %d bytes: %v", es, len(data), err)
		}
		if !bytes.Equal(dec, data) {
			t.Fatalf("es %d, %d bytes: round trip differs", es, len(data))
		}
		if n, err := DecodedLen(enc); err != nil || n != len(data) {
			t.Fatalf("DecodedLen = %d, %v, want %d", n, err, len(data))
		}
	})
}

// fuzzRef returns n reference bytes derived from seed: cycled, or zeros
// when seed is empty.
func fuzzRef(seed []byte, n int) []byte {
	ref := make([]byte, n)
	if len(seed) > 0 {
		for i := range ref {
			ref[i] = seed[i%len(seed)]
		}
	}
	return ref
}

func deltaFuzzSeeds(f *testing.F) [][]byte {
	var out [][]byte
	for i, s := range fuzzSeeds() {
		for _, es := range elemSizes {
			for _, op := range []DeltaOp{OpXOR, OpSub} {
				ref := perturb(s, 20, uint64(i))
				enc, err := encodeDelta(nil, s, ref, es, RefSame, &op, minBlockLog)
				if err != nil {
					f.Fatal(err)
				}
				out = append(out, enc)
			}
		}
	}
	content, ref := fineTunePair(5000, 2, 0.0005, true)
	for _, op := range []DeltaOp{OpXOR, OpSub} {
		enc, err := encodeDelta(nil, content, ref, 2, RefF32ToBF16, &op, minBlockLog)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, enc)
	}
	return out
}

// FuzzDecodeDelta feeds arbitrary payloads to DecodeDelta with a reference
// of the length the payload asks for (or a wrong one): it must not panic,
// must allocate no more than the content, the input and the pooled scratch,
// must classify its errors, and whatever it accepts must code the content
// it returned (EncodeDelta of that content against the reference decodes
// to it again).
func FuzzDecodeDelta(f *testing.F) {
	for _, s := range deltaFuzzSeeds(f) {
		f.Add(s, byte(0))
	}
	f.Add(deltaOf(OpXOR, RefSame, sparseStream(64, append(append([]byte{blockRaw}, 1, 2, 0, 0, 0, 0, 0, 0), blockRaw, 5, 6)...)), byte(0))
	f.Add(deltaOf(OpSub, RefF32ToBF16, hdr2(2, 1, 10, 4096, 2, planeConst, 1, planeConst, 1, 0, 0)), byte(1))
	f.Add([]byte{}, byte(0))
	f.Fuzz(func(t *testing.T, payload []byte, salt byte) {
		n, refLen := fuzzMaxSize, fuzzMaxSize
		if info, err := ParseDelta(payload); err == nil && info.N <= fuzzMaxSize {
			n, refLen = info.N, info.RefLen
		}
		switch salt % 8 {
		case 1:
			n++ // the caller expects more than declared
		case 2:
			n-- // or less
		case 3:
			refLen++ // the reference does not fit
		}
		n, refLen = max(n, 0), max(refLen, 0)
		ref := fuzzRef([]byte{salt, salt * 3, 7, salt ^ 0x55}, refLen)
		var out []byte
		var err error
		alloc := allocs(func() { out, err = DecodeDelta(nil, payload, ref, n) })
		if alloc > uint64(n+len(payload))+decodeScratch {
			t.Fatalf("allocated %d bytes for n %d, %d of input", alloc, n, len(payload))
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrReference) {
				t.Fatalf("unclassified error: %v", err)
			}
			if out != nil {
				t.Fatalf("output %d bytes with error %v", len(out), err)
			}
			return
		}
		if len(out) != n {
			t.Fatalf("decoded %d bytes, want %d", len(out), n)
		}
		again, err := DecodeDelta([]byte{1, 2, 3}, payload, ref, n)
		if err != nil || !bytes.Equal(again[3:], out) {
			t.Fatalf("second decode differs: %v", err)
		}
		info, err := ParseDelta(payload)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := encodeDelta(nil, out, ref, info.ElemSize, info.Form, nil, minBlockLog)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeDelta(nil, enc, ref, n)
		if err != nil || !bytes.Equal(back, out) {
			t.Fatalf("re-encoding the decoded content does not round-trip: %v", err)
		}
	})
}

// FuzzDeltaRoundTrip checks that DecodeDelta(EncodeDelta(x, ref)) == x for
// every element size, op, reference form and both block lengths, with
// references close to the content or not.
func FuzzDeltaRoundTrip(f *testing.F) {
	for i, s := range fuzzSeeds() {
		f.Add(s, []byte{0, 0, 0, 1}, byte(i))
		f.Add(s, []byte("reference"), byte(i*7))
	}
	f.Fuzz(func(t *testing.T, content, refSeed []byte, sel byte) {
		es := elemSizes[int(sel)%len(elemSizes)]
		blockLog := uint(defaultBlockLog)
		if sel&4 != 0 {
			blockLog = minBlockLog
		}
		var op *DeltaOp
		switch sel >> 3 % 3 {
		case 0:
			op = opPtr(OpXOR)
		case 1:
			op = opPtr(OpSub)
		}
		form := RefSame
		if sel&0x20 != 0 {
			form, es = RefF32ToBF16, 2
			content = content[:len(content)/2*2]
		}
		ref := fuzzRef(refSeed, form.refLen(len(content)))
		if sel&0x40 != 0 && form == RefSame {
			// A reference close to the content: the seed marks changes.
			for i := range ref {
				ref[i] ^= content[i]
			}
		}
		enc, err := encodeDelta(nil, content, ref, es, form, op, blockLog)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := DecodeDelta(nil, enc, ref, len(content))
		if err != nil {
			t.Fatalf("es %d form %s, %d bytes: %v", es, form, len(content), err)
		}
		if !bytes.Equal(dec, content) {
			t.Fatalf("es %d form %s, %d bytes: round trip differs", es, form, len(content))
		}
	})
}
