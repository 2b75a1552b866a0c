package layout

import (
	"path"
	"strings"
)

// Role is what a file in a Hugging Face folder is for. It decides, among
// other things, which files `ckpt pull` materializes by default.
type Role string

// The roles a file can have.
const (
	// RoleWeights: *.safetensors (including shards such as
	// model-00001-of-00003.safetensors and adapter_model.safetensors),
	// pytorch_model*.bin and adapter_model.bin.
	RoleWeights Role = "weights"
	// RoleWeightsIndex: *.index.json, such as model.safetensors.index.json
	// and pytorch_model.bin.index.json.
	RoleWeightsIndex Role = "weights-index"
	// RoleConfig: config.json, adapter_config.json, and the processor
	// configurations a model needs to run (preprocessor_config.json,
	// processor_config.json, video_preprocessor_config.json).
	RoleConfig Role = "config"
	// RoleGenerationConfig: generation_config.json.
	RoleGenerationConfig Role = "generation-config"
	// RoleTokenizer: tokenizer.json, tokenizer_config.json,
	// special_tokens_map.json, added_tokens.json, vocab.json, vocab.txt,
	// merges.txt, spiece.model, tokenizer.model, sentencepiece.bpe.model,
	// chat_template.jinja, chat_template.json and anything under
	// additional_chat_templates/.
	RoleTokenizer Role = "tokenizer"
	// RoleResumeState: what only resuming training needs: optimizer.pt,
	// scheduler.pt, scaler.pt, rng_state.pth, rng_state_<k>.pth,
	// training_args.bin, Accelerate's optimizer.bin, scheduler.bin,
	// sampler.bin and random_states_<k>.pkl, DeepSpeed's "latest" tag file,
	// and anything under a DeepSpeed global_step*/ folder or an FSDP
	// optimizer_<k>/ or pytorch_model_fsdp_<k>/ folder.
	RoleResumeState Role = "resume-state"
	// RoleTrainerState: trainer_state.json.
	RoleTrainerState Role = "trainer-state"
	// RoleOther: everything else (README.md, .gitattributes, runs/ tensorboard
	// logs, tf_model.h5, ...).
	RoleOther Role = "other"
)

// Valid reports whether r is one of the Role constants.
func (r Role) Valid() bool {
	switch r {
	case RoleWeights, RoleWeightsIndex, RoleConfig, RoleGenerationConfig,
		RoleTokenizer, RoleResumeState, RoleTrainerState, RoleOther:
		return true
	}
	return false
}

// Runnable reports whether files of role r are needed to run the model: the
// set `ckpt pull` materializes by default.
func (r Role) Runnable() bool {
	switch r {
	case RoleWeights, RoleWeightsIndex, RoleConfig, RoleGenerationConfig, RoleTokenizer:
		return true
	}
	return false
}

// Inheritable reports whether files of role r are taken from a checkpoint's
// base chain when the checkpoint has no file of that role (docs/format.md,
// section 7): config, generation config and tokenizer. Every inheritable
// role is runnable.
func (r Role) Inheritable() bool {
	switch r {
	case RoleConfig, RoleGenerationConfig, RoleTokenizer:
		return true
	}
	return false
}

// String returns the role's name.
func (r Role) String() string { return string(r) }

var roleByBaseName = map[string]Role{
	"config.json":                    RoleConfig,
	"adapter_config.json":            RoleConfig,
	"preprocessor_config.json":       RoleConfig,
	"processor_config.json":          RoleConfig,
	"video_preprocessor_config.json": RoleConfig,
	"generation_config.json":         RoleGenerationConfig,
	"tokenizer.json":                 RoleTokenizer,
	"tokenizer_config.json":          RoleTokenizer,
	"special_tokens_map.json":        RoleTokenizer,
	"added_tokens.json":              RoleTokenizer,
	"vocab.json":                     RoleTokenizer,
	"vocab.txt":                      RoleTokenizer,
	"merges.txt":                     RoleTokenizer,
	"spiece.model":                   RoleTokenizer,
	"tokenizer.model":                RoleTokenizer,
	"sentencepiece.bpe.model":        RoleTokenizer,
	"chat_template.jinja":            RoleTokenizer,
	"chat_template.json":             RoleTokenizer,
	"adapter_model.bin":              RoleWeights,
	"optimizer.pt":                   RoleResumeState,
	"scheduler.pt":                   RoleResumeState,
	"scaler.pt":                      RoleResumeState,
	"rng_state.pth":                  RoleResumeState,
	"training_args.bin":              RoleResumeState,
	"optimizer.bin":                  RoleResumeState,
	"scheduler.bin":                  RoleResumeState,
	"sampler.bin":                    RoleResumeState,
	"latest":                         RoleResumeState,
	"trainer_state.json":             RoleTrainerState,
}

// Classify returns the role of the file at relPath, a slash-separated path
// relative to the folder root. Classification is by base name, matched
// case-sensitively as Hugging Face libraries write them, except that
// everything under a DeepSpeed global_step*/ folder or an FSDP sharded-state
// folder is resume state, and everything under additional_chat_templates/ is
// tokenizer.
func Classify(relPath string) Role {
	relPath = strings.TrimPrefix(path.Clean("/"+relPath), "/")
	dir, base := path.Split(relPath)
	if dir != "" {
		for _, component := range strings.Split(strings.TrimSuffix(dir, "/"), "/") {
			if isResumeStateFolder(component) {
				return RoleResumeState
			}
			if component == "additional_chat_templates" {
				return RoleTokenizer
			}
		}
	}
	if role, ok := roleByBaseName[base]; ok {
		return role
	}
	switch {
	case strings.HasSuffix(base, ".index.json") && len(base) > len(".index.json"):
		return RoleWeightsIndex
	case strings.HasSuffix(base, ".safetensors") && len(base) > len(".safetensors"):
		return RoleWeights
	case strings.HasPrefix(base, "pytorch_model") && strings.HasSuffix(base, ".bin"):
		return RoleWeights
	case hasNumberedName(base, "rng_state_", ".pth"), hasNumberedName(base, "random_states_", ".pkl"):
		return RoleResumeState
	}
	return RoleOther
}

// isResumeStateFolder reports whether a folder of that name holds training
// state only: DeepSpeed's global_step<N> and FSDP's sharded optimizer_<k> and
// pytorch_model_fsdp_<k> (distributed checkpoint, not loadable as a model).
func isResumeStateFolder(name string) bool {
	return strings.HasPrefix(name, "global_step") ||
		hasNumberedName(name, "optimizer_", "") ||
		hasNumberedName(name, "pytorch_model_fsdp_", "")
}

// hasNumberedName reports whether name is prefix, one or more ASCII digits,
// then suffix.
func hasNumberedName(name, prefix, suffix string) bool {
	if len(name) <= len(prefix)+len(suffix) ||
		!strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) {
		return false
	}
	digits := name[len(prefix) : len(name)-len(suffix)]
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
