package synth

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/layout"
)

func TestTensors(t *testing.T) {
	for _, m := range []Model{TinyModel(), DemoModel(), {Layers: 3, Hidden: 96, Vocab: 100, Positions: 10, Dtype: layout.DtypeF32}} {
		t.Run(fmt.Sprintf("%d layers %s", m.Layers, m.Dtype), func(t *testing.T) {
			tensors := m.Tensors()
			require.Len(t, tensors, 4+12*m.Layers)
			h, elem := int64(m.Hidden), int64(m.Dtype.ElemSize())

			want := []struct {
				name  string
				shape []int64
			}{
				{"wte.weight", []int64{int64(m.Vocab), h}},
				{"wpe.weight", []int64{int64(m.Positions), h}},
			}
			for i := range m.Layers {
				p := fmt.Sprintf("h.%d.", i)
				want = append(want, []struct {
					name  string
					shape []int64
				}{
					{p + "ln_1.weight", []int64{h}}, {p + "ln_1.bias", []int64{h}},
					{p + "attn.c_attn.weight", []int64{h, 3 * h}}, {p + "attn.c_attn.bias", []int64{3 * h}},
					{p + "attn.c_proj.weight", []int64{h, h}}, {p + "attn.c_proj.bias", []int64{h}},
					{p + "ln_2.weight", []int64{h}}, {p + "ln_2.bias", []int64{h}},
					{p + "mlp.c_fc.weight", []int64{h, 4 * h}}, {p + "mlp.c_fc.bias", []int64{4 * h}},
					{p + "mlp.c_proj.weight", []int64{4 * h, h}}, {p + "mlp.c_proj.bias", []int64{h}},
				}...)
			}
			want = append(want, []struct {
				name  string
				shape []int64
			}{{"ln_f.weight", []int64{h}}, {"ln_f.bias", []int64{h}}}...)

			var offset int64
			for i, tensor := range tensors {
				assert.Equal(t, want[i].name, tensor.Name)
				assert.Equal(t, want[i].shape, tensor.Shape, tensor.Name)
				assert.Equal(t, m.Dtype, tensor.Dtype, tensor.Name)
				assert.Equal(t, offset, tensor.Begin, "%s starts where the previous tensor ends", tensor.Name)
				size, err := tensor.DataSize()
				require.NoError(t, err)
				assert.Equal(t, size, tensor.End-tensor.Begin, tensor.Name)
				offset = tensor.End
			}
			assert.Equal(t, m.WeightBytes(), offset)
			assert.Equal(t, int64(0), m.WeightBytes()%elem)
		})
	}
}

func TestPresetSizes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		model    Model
		min, max int64
	}{
		{"tiny", TinyModel(), 100 << 10, 4 << 20},
		{"demo", DemoModel(), 20 << 20, 60 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.GreaterOrEqual(t, tc.model.WeightBytes(), tc.min)
			assert.LessOrEqual(t, tc.model.WeightBytes(), tc.max)
			assert.NoError(t, tc.model.validate())
		})
	}
}

func TestModelOfSize(t *testing.T) {
	for _, tc := range []struct {
		bytes     int64
		dtype     layout.Dtype
		tolerance float64 // relative
		gpt2Vocab bool
	}{
		{1 << 30, layout.DtypeBF16, 0.02, true},
		{256 << 20, layout.DtypeBF16, 0.02, true},
		{500e6, layout.DtypeF16, 0.02, true},
		{4 << 30, layout.DtypeF32, 0.02, true},
		{20 << 30, layout.DtypeBF16, 0.02, true},
		{64 << 20, layout.DtypeBF16, 0.05, true},
		{8 << 20, layout.DtypeBF16, 0.05, true},
		{1 << 20, layout.DtypeBF16, 0.05, false},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.bytes, tc.dtype), func(t *testing.T) {
			m := ModelOfSize(tc.bytes, tc.dtype)
			require.NoError(t, m.validate())
			assert.Equal(t, tc.dtype, m.Dtype)
			assert.InEpsilon(t, tc.bytes, m.WeightBytes(), tc.tolerance, "%+v", m)
			if tc.gpt2Vocab {
				assert.Equal(t, 50257, m.Vocab)
				assert.Equal(t, 1024, m.Positions)
				assert.Zero(t, m.Hidden%64, "hidden %d is a multiple of 64", m.Hidden)
			}
		})
	}
}

func TestPlanWeightFiles(t *testing.T) {
	specs := DemoModel().specs()
	for _, shards := range []int{0, 1, 2, 4, len(specs)} {
		t.Run(fmt.Sprint(shards), func(t *testing.T) {
			files, err := planWeightFiles(specs, shards)
			require.NoError(t, err)
			require.Len(t, files, max(shards, 1))
			var names []string
			for _, file := range files {
				require.NotEmpty(t, file.tensors, file.name)
				var offset int64
				for _, tensor := range file.tensors {
					assert.Equal(t, offset, tensor.Begin, "%s: %s", file.name, tensor.Name)
					offset = tensor.End
					names = append(names, tensor.Name)
				}
			}
			require.Len(t, names, len(specs))
			for i, spec := range specs {
				assert.Equal(t, spec.Name, names[i])
			}
		})
	}
}
