package planes

import (
	"bytes"
	"fmt"
	"testing"
)

func TestQuick(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		es   int
	}{{"bf16", genBF16(8 << 20), 2}, {"f16", genF16(8 << 20), 2}, {"f32", genF32(8 << 20), 4}, {"f32-1", genF32(8 << 20), 1}, {"f32-8", genF32(8 << 20), 8}} {
		enc, err := Encode(nil, c.data, c.es)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := Decode(nil, enc, len(c.data))
		if err != nil {
			t.Fatal(c.name, err)
		}
		fmt.Println(c.name, float64(len(enc))/float64(len(c.data)), bytes.Equal(dec, c.data), enc[:12])
	}
}
