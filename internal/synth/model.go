package synth

import (
	"fmt"
	"math"

	"github.com/ckptdev/ckpt/layout"
)

// Model is the shape of a GPT-2 style model (GPT2LMHeadModel with the LM
// head tied to wte, so it has no weights of its own).
type Model struct {
	Layers    int          // GPT-2 blocks (n_layer)
	Hidden    int          // n_embd
	Vocab     int          // rows of wte (vocab_size)
	Positions int          // rows of wpe (n_positions)
	Dtype     layout.Dtype // BF16, F16 or F32
}

// gpt2Vocab and gpt2Positions are the real GPT-2's vocabulary size and
// context length.
const (
	gpt2Vocab     = 50257
	gpt2Positions = 1024
)

// TinyModel is the model unit tests use: about 0.5 MB of bf16 weights, so a
// run with resume state stays at a few MB.
func TinyModel() Model {
	return Model{Layers: 2, Hidden: 64, Vocab: 2048, Positions: 128, Dtype: layout.DtypeBF16}
}

// DemoModel is the model `make demo` uses: GPT-2's real vocabulary and
// context with 4 narrow blocks, about 33 MB of bf16 weights.
func DemoModel() Model {
	return Model{Layers: 4, Hidden: 256, Vocab: gpt2Vocab, Positions: gpt2Positions, Dtype: layout.DtypeBF16}
}

// ModelOfSize returns a GPT-2 shape (real vocabulary and context, hidden
// size a multiple of 64, depth in GPT-2's proportions when possible) whose
// weights total as close to bytes as such shapes allow: within 0.5% from a
// few hundred MB up (1 GiB of bf16 is 30 layers of hidden 1152). For
// targets too small for GPT-2's embeddings it shrinks the vocabulary
// instead. dtype is BF16, F16 or F32.
func ModelOfSize(bytes int64, dtype layout.Dtype) Model {
	elemSize := int64(dtype.ElemSize())
	if elemSize == 0 {
		elemSize = 2
	}
	target := bytes / elemSize // parameters

	// Among shapes within 0.5% of the target, prefer GPT-2's proportions
	// (hidden/layers: 64 for small, 43 medium, 36 large, 33 XL); else take
	// the closest size.
	const closeEnough, idealRatio = 0.005, 40.0
	var (
		best      Model
		bestScore = [2]float64{math.Inf(1), math.Inf(1)}
	)
	for _, proportional := range []bool{true, false} {
		for hidden := 64; hidden <= 16384; hidden += 64 {
			m := Model{Layers: 1, Hidden: hidden, Vocab: gpt2Vocab, Positions: gpt2Positions, Dtype: dtype}
			embed, perLayer := m.params()-m.layerParams(), m.layerParams()
			if embed+perLayer > target {
				break
			}
			m.Layers = int(max(1, (target-embed+perLayer/2)/perLayer))
			ratio := float64(hidden) / float64(m.Layers)
			if proportional && (ratio < 24 || ratio > 96) {
				continue
			}
			relErr := math.Abs(float64(m.params()-target)) / float64(target)
			score := [2]float64{relErr, math.Abs(math.Log(ratio / idealRatio))}
			if relErr <= closeEnough {
				score[0] = 0
			}
			if score[0] < bestScore[0] || (score[0] == bestScore[0] && score[1] < bestScore[1]) {
				best, bestScore = m, score
			}
		}
		if !math.IsInf(bestScore[0], 1) {
			return best
		}
	}
	// Too small for GPT-2's vocabulary: two thin layers, a short context
	// and whatever vocabulary fills the rest.
	m := Model{Layers: 2, Hidden: 64, Vocab: 256, Positions: 128, Dtype: dtype}
	rest := target - m.params() + int64(m.Vocab*m.Hidden)
	m.Vocab = int(max(256, rest/int64(m.Hidden)))
	return m
}

// layerParams is the parameter count of one block: c_attn 3H²+3H, attention
// c_proj H²+H, c_fc 4H²+4H, mlp c_proj 4H²+H, two layer norms 4H.
func (m Model) layerParams() int64 {
	h := int64(m.Hidden)
	return 12*h*h + 13*h
}

// params is the total parameter count.
func (m Model) params() int64 {
	h := int64(m.Hidden)
	return int64(m.Vocab)*h + int64(m.Positions)*h + int64(m.Layers)*m.layerParams() + 2*h
}

// WeightBytes is the size of all tensors' data (safetensors headers not
// included).
func (m Model) WeightBytes() int64 {
	return m.params() * int64(m.Dtype.ElemSize())
}

// heads is n_head: 64-wide heads like GPT-2 when the hidden size allows,
// else a single head.
func (m Model) heads() int {
	if m.Hidden >= 64 && m.Hidden%64 == 0 {
		return m.Hidden / 64
	}
	return 1
}

// validate checks that m can be generated.
func (m Model) validate() error {
	switch {
	case m.Layers < 1, m.Hidden < 1, m.Vocab < 1, m.Positions < 1:
		return fmt.Errorf("synth: model %+v: layers, hidden, vocab and positions must be positive", m)
	case m.Dtype != layout.DtypeBF16 && m.Dtype != layout.DtypeF16 && m.Dtype != layout.DtypeF32:
		return fmt.Errorf("synth: model dtype %q: want BF16, F16 or F32", m.Dtype)
	}
	return nil
}

// torchDtype is config.json's torch_dtype for m.Dtype.
func (m Model) torchDtype() string {
	switch m.Dtype {
	case layout.DtypeBF16:
		return "bfloat16"
	case layout.DtypeF16:
		return "float16"
	}
	return "float32"
}

// tensorSpec is one tensor of the model with the distribution its values
// are drawn from.
type tensorSpec struct {
	layout.TensorInfo
	mean, std float32
	// embedding marks wte and wpe, the tensors RunSpec.FrozenEmbedding
	// freezes.
	embedding bool
	// decay marks the matrices Trainer puts in the weight-decay parameter
	// group (everything but biases and layer norms).
	decay bool
}

// numel is the number of elements of the tensor.
func (t tensorSpec) numel() int64 {
	n := int64(1)
	for _, dim := range t.Shape {
		n *= dim
	}
	return n
}

// specs lists the tensors in GPT-2's module order with contiguous offsets.
// Values follow GPT-2's initialization: N(0, 0.02) matrices, residual
// projections scaled by 1/sqrt(2·layers), layer norms around 1 and biases
// around 0 (spread a little, as after training).
func (m Model) specs() []tensorSpec {
	h, v, p := int64(m.Hidden), int64(m.Vocab), int64(m.Positions)
	residualStd := float32(0.02 / math.Sqrt(2*float64(max(m.Layers, 1))))
	var specs []tensorSpec
	add := func(name string, shape []int64, mean, std float32) *tensorSpec {
		specs = append(specs, tensorSpec{
			TensorInfo: layout.TensorInfo{Name: name, Dtype: m.Dtype, Shape: shape},
			mean:       mean, std: std,
		})
		return &specs[len(specs)-1]
	}
	matrix := func(name string, shape []int64, std float32) {
		add(name, shape, 0, std).decay = true
	}
	add("wte.weight", []int64{v, h}, 0, 0.02).embedding = true
	specs[len(specs)-1].decay = true
	add("wpe.weight", []int64{p, h}, 0, 0.01).embedding = true
	specs[len(specs)-1].decay = true
	for i := range m.Layers {
		prefix := fmt.Sprintf("h.%d.", i)
		add(prefix+"ln_1.weight", []int64{h}, 1, 0.05)
		add(prefix+"ln_1.bias", []int64{h}, 0, 0.01)
		matrix(prefix+"attn.c_attn.weight", []int64{h, 3 * h}, 0.02)
		add(prefix+"attn.c_attn.bias", []int64{3 * h}, 0, 0.01)
		matrix(prefix+"attn.c_proj.weight", []int64{h, h}, residualStd)
		add(prefix+"attn.c_proj.bias", []int64{h}, 0, 0.01)
		add(prefix+"ln_2.weight", []int64{h}, 1, 0.05)
		add(prefix+"ln_2.bias", []int64{h}, 0, 0.01)
		matrix(prefix+"mlp.c_fc.weight", []int64{h, 4 * h}, 0.02)
		add(prefix+"mlp.c_fc.bias", []int64{4 * h}, 0, 0.01)
		matrix(prefix+"mlp.c_proj.weight", []int64{4 * h, h}, residualStd)
		add(prefix+"mlp.c_proj.bias", []int64{h}, 0, 0.01)
	}
	add("ln_f.weight", []int64{h}, 1, 0.05)
	add("ln_f.bias", []int64{h}, 0, 0.01)

	elemSize := int64(m.Dtype.ElemSize())
	var offset int64
	for i := range specs {
		specs[i].Begin = offset
		offset += specs[i].numel() * elemSize
		specs[i].End = offset
	}
	return specs
}

// Tensors lists the model's tensors with GPT-2's names in module order
// (wte, wpe, h.0 ... h.{Layers-1}, ln_f), laid out back to back from offset
// 0 in that order: the layout of a single model.safetensors.
func (m Model) Tensors() []layout.TensorInfo {
	specs := m.specs()
	infos := make([]layout.TensorInfo, len(specs))
	for i, spec := range specs {
		infos[i] = spec.TensorInfo
	}
	return infos
}
