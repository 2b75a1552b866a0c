package object

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/layout"
)

func TestEncodeObjectPicksCodec(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	skewed := make([]byte, 1<<20) // like FP8 weights: a few byte values dominate
	for i := range skewed {
		skewed[i] = byte(0x30 + int(r.NormFloat64()*4))
	}
	random := make([]byte, 1<<20)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	text := []byte{}
	for len(text) < 1<<16 {
		text = append(text, `{"model_type": "gpt2", "n_layer": 12}`...)
	}
	cases := []struct {
		name    string
		content []byte
		hint    EncodeHint
		want    Codec
	}{
		{"weights of one byte", skewed, EncodeHint{ElemSize: 1}, CodecPlanes},
		{"text", text, EncodeHint{Text: true}, CodecZstd},
		{"incompressible", random, EncodeHint{}, CodecRaw},
		{"incompressible weights", random, EncodeHint{ElemSize: 2}, CodecRaw},
		{"tiny", []byte("{}"), EncodeHint{Text: true}, CodecRaw},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obj := Encode(nil, c.content, c.hint)
			h, err := ParseHeader(obj)
			require.NoError(t, err)
			assert.Equal(t, c.want, h.Codec)
			got, err := Decode(nil, obj, Hash(c.content))
			require.NoError(t, err)
			assert.Equal(t, c.content, got)
		})
	}
}

// EncodeBelow gives exactly Encode's stored form when that is shorter than
// the limit, and nothing (dst unchanged) otherwise, for every codec Encode
// may pick and limits around the stored length.
func TestEncodeBelow(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	weights, random := make([]byte, 1<<20), make([]byte, 1<<20)
	for i := range weights {
		weights[i] = byte(0x30 + int(r.NormFloat64()*4))
		random[i] = byte(r.Uint32())
	}
	cases := []struct {
		name    string
		content []byte
		hint    EncodeHint
	}{
		{"planes", weights, EncodeHint{ElemSize: 2}},
		{"zstd", weights, EncodeHint{}},
		{"raw weights", random, EncodeHint{ElemSize: 4}},
		{"raw", random, EncodeHint{}},
		{"tiny", []byte("{}"), EncodeHint{ElemSize: 2}},
		{"empty", nil, EncodeHint{ElemSize: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := Encode([]byte("pre"), c.content, c.hint)
			n := len(want) - 3
			for _, limit := range []int{-1, 0, HeaderSize, n / 2, n - 1, n, n + 1, n + 100} {
				got, ok := EncodeBelow([]byte("pre"), c.content, c.hint, limit)
				if n < limit {
					require.True(t, ok, "limit %d, stored form of %d bytes", limit, n)
					assert.True(t, bytes.Equal(want, got), "limit %d: not Encode's stored form", limit)
					continue
				}
				require.False(t, ok, "limit %d, stored form of %d bytes", limit, n)
				assert.Equal(t, "pre", string(got), "limit %d: dst changed", limit)
			}
		})
	}
}

// The blob cap is the largest chunk a writer cuts: a safetensors header
// chunk (its 8-byte length and the largest header layout accepts).
func TestMaxBlobContentIsTheLargestHeaderChunk(t *testing.T) {
	assert.Equal(t, 8+layout.MaxSafetensorsHeader, MaxBlobContent)
	assert.Less(t, MaxChunkSize, MaxBlobContent)
}
