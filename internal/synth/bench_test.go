package synth

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ckptdev/ckpt/layout"
)

// benchModel is a 64 MiB bf16 model: big enough for steady-state speed,
// small enough for `go test -bench`.
var benchModel = ModelOfSize(64<<20, layout.DtypeBF16)

// BenchmarkGenerateWeights measures generation alone (values, bf16
// conversion), writing to io.Discard.
func BenchmarkGenerateWeights(b *testing.B) {
	for _, bc := range []struct {
		name string
		plan weightPlan
	}{
		{"base", weightPlan{model: benchModel, baseSeed: 1}},
		{"perturbed", weightPlan{model: benchModel, baseSeed: 1, perturb: true, runSeed: 2, step: 100}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			specs := bc.plan.model.specs()
			bufs := newWeightBuffers()
			b.SetBytes(bc.plan.model.WeightBytes())
			for b.Loop() {
				for _, t := range specs {
					if err := bc.plan.writeTensor(io.Discard, t, bufs); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkWriteBase measures writing a base model folder to disk.
func BenchmarkWriteBase(b *testing.B) {
	dir := b.TempDir()
	b.SetBytes(benchModel.WeightBytes())
	for b.Loop() {
		if err := WriteBase(filepath.Join(dir, "base"), benchModel, 1, gpt2Dir); err != nil {
			b.Fatal(err)
		}
	}
	_ = os.RemoveAll(dir)
}
