package layout

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		path string
		want Role
	}{
		// Weights.
		{"model.safetensors", RoleWeights},
		{"model-00001-of-00003.safetensors", RoleWeights},
		{"adapter_model.safetensors", RoleWeights},
		{"consolidated.safetensors", RoleWeights},
		{"pytorch_model.bin", RoleWeights},
		{"pytorch_model-00002-of-00002.bin", RoleWeights},
		{"adapter_model.bin", RoleWeights},
		{"unet/diffusion_pytorch_model.safetensors", RoleWeights},
		{".safetensors", RoleOther},
		// Indexes.
		{"model.safetensors.index.json", RoleWeightsIndex},
		{"pytorch_model.bin.index.json", RoleWeightsIndex},
		{".index.json", RoleOther},
		// Configs.
		{"config.json", RoleConfig},
		{"adapter_config.json", RoleConfig},
		{"preprocessor_config.json", RoleConfig},
		{"processor_config.json", RoleConfig},
		{"generation_config.json", RoleGenerationConfig},
		// Tokenizer.
		{"tokenizer.json", RoleTokenizer},
		{"tokenizer_config.json", RoleTokenizer},
		{"special_tokens_map.json", RoleTokenizer},
		{"added_tokens.json", RoleTokenizer},
		{"vocab.json", RoleTokenizer},
		{"vocab.txt", RoleTokenizer},
		{"merges.txt", RoleTokenizer},
		{"spiece.model", RoleTokenizer},
		{"tokenizer.model", RoleTokenizer},
		{"sentencepiece.bpe.model", RoleTokenizer},
		{"chat_template.jinja", RoleTokenizer},
		{"chat_template.json", RoleTokenizer},
		{"additional_chat_templates/tool_use.jinja", RoleTokenizer},
		// Resume state.
		{"optimizer.pt", RoleResumeState},
		{"scheduler.pt", RoleResumeState},
		{"scaler.pt", RoleResumeState},
		{"rng_state.pth", RoleResumeState},
		{"rng_state_0.pth", RoleResumeState},
		{"rng_state_15.pth", RoleResumeState},
		{"rng_state_x.pth", RoleOther},
		{"rng_state_.pth", RoleOther},
		{"training_args.bin", RoleResumeState},
		{"optimizer.bin", RoleResumeState},
		{"random_states_0.pkl", RoleResumeState},
		{"latest", RoleResumeState},
		{"global_step100/mp_rank_00_model_states.pt", RoleResumeState},
		{"global_step100/bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt", RoleResumeState},
		{"global_step100/config.json", RoleResumeState},
		{"checkpoint-100/global_step100/zero_pp_rank_0_mp_rank_00_model_states.pt", RoleResumeState},
		{"optimizer_0/__0_0.distcp", RoleResumeState},
		{"pytorch_model_fsdp_0/.metadata", RoleResumeState},
		{"trainer_state.json", RoleTrainerState},
		{"checkpoint-500/trainer_state.json", RoleTrainerState},
		// Other.
		{"README.md", RoleOther},
		{".gitattributes", RoleOther},
		{"runs/Jan01_00-00-00_host/events.out.tfevents.1700000000.host.1234.0", RoleOther},
		{"zero_to_fp32.py", RoleOther},
		{"tf_model.h5", RoleOther},
		{"flax_model.msgpack", RoleOther},
		{"model.pt", RoleOther},
		{"Config.json", RoleOther},
		{"CONFIG.JSON", RoleOther},
		{"config.json/", RoleConfig},
		{"./config.json", RoleConfig},
		{"", RoleOther},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			assert.Equal(t, tt.want, Classify(tt.path))
		})
	}
}

func TestRolePredicates(t *testing.T) {
	tests := []struct {
		role                  Role
		runnable, inheritable bool
	}{
		{RoleWeights, true, false},
		{RoleWeightsIndex, true, false},
		{RoleConfig, true, true},
		{RoleGenerationConfig, true, true},
		{RoleTokenizer, true, true},
		{RoleResumeState, false, false},
		{RoleTrainerState, false, false},
		{RoleOther, false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			assert.True(t, tt.role.Valid())
			assert.Equal(t, tt.runnable, tt.role.Runnable())
			assert.Equal(t, tt.inheritable, tt.role.Inheritable())
			if tt.role.Inheritable() {
				assert.True(t, tt.role.Runnable(), "an inherited file is pulled by default")
			}
			assert.Equal(t, string(tt.role), tt.role.String())
		})
	}
	for _, invalid := range []Role{"", "Weights", "weight", "unknown"} {
		assert.False(t, invalid.Valid(), invalid)
		assert.False(t, invalid.Runnable(), invalid)
		assert.False(t, invalid.Inheritable(), invalid)
	}
}

func FuzzClassify(f *testing.F) {
	for _, seed := range []string{"model.safetensors", "global_step1/x", "rng_state_1.pth", "a/b/../c", "", "/"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, relPath string) {
		assert.True(t, Classify(relPath).Valid())
	})
}
