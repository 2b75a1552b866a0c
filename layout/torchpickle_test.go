package layout

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pickleAllocPerByte bounds what the pickle reader allocates per byte of
// pickle, measured on the worst patterns below: a chain of TUPLE1 opcodes
// allocates a one-item tuple (40 bytes) per byte. MaxPickleStack and
// MaxPickleValues bound the total.
const pickleAllocPerByte = 48

// TestPickleReaderMemory runs the reader over 1 MiB pickles made of the
// opcodes that cost the most memory per byte, and checks the allocations
// stay under pickleAllocPerByte per byte, with and without container
// contents kept.
func TestPickleReaderMemory(t *testing.T) {
	const n = 1 << 20
	repeat := func(prefix, unit, suffix string) []byte {
		out := []byte("\x80\x02" + prefix)
		for len(out) < n {
			out = append(out, unit...)
		}
		return append(out, suffix...)
	}
	longPuts := []byte("\x80\x02N")
	for i := uint32(0); len(longPuts) < n; i++ {
		longPuts = binary.LittleEndian.AppendUint32(append(longPuts, pkLongBinPut), i)
	}
	longPuts = append(longPuts, pkStop)
	tests := []struct {
		name   string
		pickle []byte
	}{
		{"None pushes", repeat("", "N", ".")},
		{"empty lists", repeat("", "]", ".")},
		{"empty dicts", repeat("", "}", ".")},
		{"nested TUPLE1", repeat("N", "\x85", ".")},
		{"TUPLE2 of None", repeat("N", "N\x86", ".")},
		{"big ints", repeat("", "J\x00\x01\x00\x00", ".")},
		{"one-byte strings", repeat("", "X\x01\x00\x00\x00a", ".")},
		{"marks", repeat("", "(", "N.")},
		{"dup", repeat("N", "2", ".")},
		{"memo gets", repeat("Nq\x00", "h\x00", ".")},
		{"distinct memo puts", longPuts},
		{"list appends", repeat("]", "Na", ".")},
		{"dict setitems", repeat("}", "NNs", ".")},
		{"reduce", repeat("N", "NR", ".")},
	}
	for _, tt := range tests {
		for _, keep := range []bool{false, true} {
			p := newPickleReader(tt.pickle)
			p.keepContainers = keep
			var err error
			allocated := heapAllocated(0, func() { _, err = p.run() })
			perByte := float64(allocated) / float64(len(tt.pickle))
			t.Logf("%s (keep containers %v): %.1f bytes allocated per pickle byte, err %v", tt.name, keep, perByte, err)
			assert.LessOrEqual(t, perByte, float64(pickleAllocPerByte), "%s keep=%v", tt.name, keep)
		}
	}
}

// TestPickleReaderBudget: a pickle of more values than MaxPickleValues is
// refused once the budget is spent, one deeper than MaxPickleStack when
// the stack is that deep.
func TestPickleReaderBudget(t *testing.T) {
	pickle := append(bytes.Repeat([]byte{pkNone, pkPop}, MaxPickleValues+1), pkStop)
	_, err := newPickleReader(pickle).run()
	require.ErrorContains(t, err, "more than 2097152 values")

	pickle = append(bytes.Repeat([]byte{pkNone}, MaxPickleStack+1), pkStop)
	_, err = newPickleReader(pickle).run()
	require.ErrorContains(t, err, "stack deeper than 131072")
}
