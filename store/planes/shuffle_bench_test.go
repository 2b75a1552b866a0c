package planes

import (
	"fmt"
	"testing"
)

func BenchmarkShuffle(b *testing.B) {
	for _, es := range []int{2, 4, 8} {
		for _, size := range []int{256 << 10, 8 << 20} {
			src := genF32(size)
			var planes [maxPlanes][]byte
			for k := range es {
				planes[k] = make([]byte, size/es)
			}
			b.Run(fmt.Sprintf("split/es%d/%dK", es, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					split(&planes, src, es, true)
				}
			})
			dst := make([]byte, size)
			b.Run(fmt.Sprintf("merge/es%d/%dK", es, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					merge(dst, &planes, es, true)
				}
			})
		}
	}
}
