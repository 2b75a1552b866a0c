package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zeebo/xxh3"
)

// referenceHash is contentHash written plainly: the whole file in memory.
func referenceHash(data []byte) [16]byte {
	sums := binary.LittleEndian.AppendUint64(nil, uint64(len(data)))
	for off := 0; off < len(data); off += hashSegment {
		sums = binary.LittleEndian.AppendUint64(sums, xxh3.Hash(data[off:min(off+hashSegment, len(data))]))
	}
	return xxh3.Hash128(sums).Bytes()
}

func TestContentHash(t *testing.T) {
	for _, size := range []int{0, 1, 4095, hashSegment - 1, hashSegment, hashSegment + 1, 3*hashSegment + 12345} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		p := filepath.Join(t.TempDir(), "f")
		require.NoError(t, os.WriteFile(p, data, 0o600))
		f, err := os.Open(p)
		require.NoError(t, err)
		got, err := contentHash(context.Background(), f, int64(size))
		f.Close()
		require.NoError(t, err)
		assert.Equal(t, referenceHash(data), got, "size %d", size)
		if size > 0 {
			data[size/2] ^= 1
			assert.NotEqual(t, referenceHash(data), got, "size %d: a flipped bit must change the hash", size)
		}
	}
}

// A file shorter than the range hashed (truncated while being checked) is
// an error, never a crash (a memory map faults past the end of the file).
func TestHashRangePastEnd(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, make([]byte, 1000), 0o600))
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	_, err = hashRange(f, 0, 3*65536)
	require.Error(t, err)
	_, err = contentHash(context.Background(), f, 3*65536)
	require.Error(t, err)
}

func BenchmarkContentHash(b *testing.B) {
	const size = 256 << 20
	p := filepath.Join(b.TempDir(), "f")
	data := make([]byte, size)
	_, _ = rand.Read(data)
	require.NoError(b, os.WriteFile(p, data, 0o600))
	f, err := os.Open(p)
	require.NoError(b, err)
	defer f.Close()
	b.SetBytes(size)
	b.Run("mmap", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			_, err := contentHash(context.Background(), f, size)
			require.NoError(b, err)
		}
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			_, err := hashRead(f, 0, size)
			require.NoError(b, err)
		}
	})
}
