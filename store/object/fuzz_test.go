package object

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// allocs returns the bytes the Go heap allocated while f ran (every
// goroutine's; fuzz targets run one input at a time).
func allocs(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// decoderScratch is what a decoder may allocate beyond its input and its
// declared output: the zstd and planes decoders' block scratch on first use.
const decoderScratch = 4 << 20

// FuzzDecodeObject: any bytes under any ID either decode to content that
// hashes to the ID, or fail; never a panic, and never more allocated than
// the declared size and the input (plus decoder scratch), whatever the
// payload expands to. The same holds for readers that know the size
// (Read, as pull reads a chunk) and refuse any other.
func FuzzDecodeObject(f *testing.F) {
	for _, content := range [][]byte{nil, []byte("hello"), []byte(strings.Repeat("tokenizer ", 100)), bytes.Repeat([]byte{0, 1, 2, 3}, 4096)} {
		id := Hash(content)
		f.Add(Encode(nil, content, EncodeHint{}), id[:], uint16(len(content)))
		f.Add(Encode(nil, content, EncodeHint{Text: true}), id[:], uint16(len(content)))
		f.Add(Encode(nil, content, EncodeHint{ElemSize: 2}), id[:], uint16(len(content)))
	}
	f.Add([]byte("CKPT\x01\x01\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff"), make([]byte, 32), uint16(0))
	// A zstd frame with no content size of 1 MiB of zeros in RLE blocks,
	// under a header declaring 4 KiB.
	bomb := []byte("CKPT\x01\x01\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x28\xb5\x2f\xfd\x00\x38")
	for i := range 8 {
		last := byte(0)
		if i == 7 {
			last = 1
		}
		bomb = append(bomb, 0x02|last, 0x00, 0x20, 0) // RLE block of 128 KiB
	}
	f.Add(bomb, make([]byte, 32), uint16(4096))
	f.Fuzz(func(t *testing.T, obj, idBytes []byte, size uint16) {
		var id ID
		copy(id[:], idBytes)
		declared := uint64(0)
		if h, err := ParseHeader(obj); err == nil {
			declared = uint64(h.ContentLen)
		}
		var out []byte
		var err error
		n := allocs(func() { out, err = Decode(nil, obj, id) })
		if err == nil {
			require.Equal(t, id, Hash(out))
			require.Equal(t, declared, uint64(len(out)))
		}
		require.LessOrEqual(t, n, declared+uint64(len(obj))+zstdSlack+decoderScratch, "allocated %d bytes", n)

		n = allocs(func() { out, err = Read(bytes.NewReader(obj), nil, id, Exactly(int64(size)), nil) })
		if err == nil {
			require.Equal(t, id, Hash(out))
			require.Len(t, out, int(size))
		}
		require.LessOrEqual(t, n, 2*(uint64(size)+zstdSlack)+uint64(len(obj))+decoderScratch, "Read allocated %d bytes", n)
	})
}
