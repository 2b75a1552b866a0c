package hfbridge

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// TestChunkVerifier: content is recognized by its chunks whatever the
// sizes of the pieces it comes in, and refused when a byte differs, when
// it is short or long, or when the manifest's chunks do not tile the file.
func TestChunkVerifier(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 100) // 1600 bytes
	cut := func(bounds ...int64) *manifest.File {
		f := &manifest.File{Path: "model.safetensors", Size: int64(len(data))}
		var off int64
		for _, end := range append(bounds, int64(len(data))) {
			f.Chunks = append(f.Chunks, manifest.Chunk{ID: object.Hash(data[off:end]), Offset: off, Size: end - off})
			off = end
		}
		return f
	}
	flipped := bytes.Clone(data)
	flipped[900] ^= 1
	gapped := cut(100, 700)
	gapped.Chunks[2].Offset++
	for _, c := range []struct {
		name    string
		f       *manifest.File
		content []byte
		piece   int
		want    bool
	}{
		{"one piece", cut(100, 700), data, len(data), true},
		{"byte by byte", cut(100, 700), data, 1, true},
		{"pieces across chunks", cut(100, 700), data, 333, true},
		{"a single chunk", cut(), data, 64, true},
		{"a flipped byte", cut(100, 700), flipped, 333, false},
		{"short", cut(100, 700), data[:1599], 333, false},
		{"long", cut(100, 700), append(bytes.Clone(data), 'x'), 333, false},
		{"chunks that do not tile", gapped, data, 333, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newChunkVerifier(c.f)
			for rest := c.content; len(rest) > 0; {
				n := min(c.piece, len(rest))
				if _, err := v.Write(rest[:n]); err != nil {
					break
				}
				rest = rest[n:]
			}
			assert.Equal(t, c.want, v.Verified())
		})
	}
}
