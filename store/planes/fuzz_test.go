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
