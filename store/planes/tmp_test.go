package planes

import (
	"testing"
	"time"
)

func TestTimeSeeds(t *testing.T) {
	for i, s := range fuzzSeeds() {
		for _, es := range elemSizes {
			for _, bl := range []uint{17, 10} {
				st := time.Now()
				for range 10 {
					enc, _ := encode(nil, s, es, bl)
					Decode(nil, enc, len(s))
				}
				t.Logf("seed %d len %d es %d bl %d: %v", i, len(s), es, bl, time.Since(st)/10)
			}
		}
	}
}
