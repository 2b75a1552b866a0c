package layout

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const peftFixture = "../testdata/peft/adapter_config.json"

// TestParseAdapterConfigFixture reads the adapter_config.json PEFT writes
// for a LoRA adapter (testdata/peft/README.md says how it was made).
func TestParseAdapterConfigFixture(t *testing.T) {
	data, err := os.ReadFile(peftFixture)
	require.NoError(t, err)
	c, err := ParseAdapterConfig(data)
	require.NoError(t, err)
	extra := c.Extra
	c.Extra = nil
	assert.Equal(t, &AdapterConfig{
		PeftType:            "LORA",
		TaskType:            "CAUSAL_LM",
		BaseModelNameOrPath: "meta-llama/Llama-3.2-1B",
		InferenceMode:       ptr(true),
		R:                   ptr[int64](16),
		LoraAlpha:           ptr(32.0),
		LoraDropout:         ptr(0.05),
		TargetModules:       &Modules{Names: []string{"v_proj", "q_proj"}},
		Bias:                "none",
		FanInFanOut:         ptr(false),
		UseRSLoRA:           ptr(false),
		UseDoRA:             ptr(false),
	}, c)
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	assert.Equal(t, []string{
		"alpha_pattern", "auto_mapping", "exclude_modules", "init_lora_weights", "layer_replication",
		"layers_pattern", "layers_to_transform", "loftq_config", "megatron_config", "megatron_core", "rank_pattern",
	}, keys, "unknown keys are kept")
	assert.JSONEq(t, `"megatron.core"`, string(extra["megatron_core"]))
	assert.JSONEq(t, `{}`, string(extra["rank_pattern"]))
	assert.JSONEq(t, `true`, string(extra["init_lora_weights"]))
	assert.Equal(t, AdapterBase{Name: "meta-llama/Llama-3.2-1B"}, c.Base())
	assert.Equal(t, "meta-llama/Llama-3.2-1B", c.Base().String())
	assert.Equal(t, "LORA r=16 alpha=32 dropout=0.05 on q_proj, v_proj", c.Describe())
}

func TestParseAdapterConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		json  string
		check func(t *testing.T, c *AdapterConfig)
	}{
		{
			// Early PEFT (0.2), as quoted for hfl/chinese-alpaca-2-lora-7b in
			// NVIDIA TensorRT-LLM's LoRA manager: enable_lora and
			// merge_weights, a float lora_alpha, a local base path.
			name: "early PEFT",
			json: `{"base_model_name_or_path": "/Llama-2-7b-hf", "bias": "none", "enable_lora": null,
				"fan_in_fan_out": false, "inference_mode": true, "lora_alpha": 128.0, "lora_dropout": 0.05,
				"merge_weights": false, "modules_to_save": ["embed_tokens", "lm_head"], "peft_type": "LORA",
				"r": 64, "target_modules": ["q_proj", "v_proj", "k_proj", "o_proj", "gate_proj"], "task_type": "CAUSAL_LM"}`,
			check: func(t *testing.T, c *AdapterConfig) {
				assert.Equal(t, "/Llama-2-7b-hf", c.BaseModelNameOrPath)
				assert.Equal(t, 128.0, *c.LoraAlpha)
				assert.Equal(t, int64(64), *c.R)
				assert.Equal(t, []string{"embed_tokens", "lm_head"}, c.ModulesToSave)
				assert.Equal(t, []string{"enable_lora", "merge_weights"}, sortedKeys(c.Extra))
				assert.Equal(t, "LORA r=64 alpha=128 dropout=0.05 on gate_proj, k_proj, o_proj, q_proj, v_proj", c.Describe())
			},
		},
		{
			name: "target_modules as a regular expression",
			json: `{"peft_type": "LORA", "target_modules": ".*decoder.*(SelfAttention|EncDecAttention).*(q|v)$"}`,
			check: func(t *testing.T, c *AdapterConfig) {
				assert.Equal(t, &Modules{Pattern: ".*decoder.*(SelfAttention|EncDecAttention).*(q|v)$", IsPattern: true}, c.TargetModules)
				assert.Equal(t, "LORA on .*decoder.*(SelfAttention|EncDecAttention).*(q|v)$", c.Describe())
			},
		},
		{
			name: "target_modules all-linear, DoRA, rsLoRA, revision",
			json: `{"peft_type": "LORA", "r": 8.0, "target_modules": "all-linear", "use_dora": true, "use_rslora": true,
				"base_model_name_or_path": "org/base", "revision": "v2"}`,
			check: func(t *testing.T, c *AdapterConfig) {
				assert.Equal(t, int64(8), *c.R, "an integral float is an integer")
				assert.Equal(t, "LORA r=8 DoRA rsLoRA on all-linear", c.Describe())
				assert.Equal(t, "org/base at revision v2", c.Base().String())
			},
		},
		{
			name: "every key optional",
			json: `{}`,
			check: func(t *testing.T, c *AdapterConfig) {
				assert.Equal(t, &AdapterConfig{}, c)
				assert.Equal(t, "adapter", c.Describe())
				assert.Equal(t, "", c.Base().String())
			},
		},
		{
			name: "nulls are absent values",
			json: `{"peft_type": null, "base_model_name_or_path": null, "revision": null, "r": null, "lora_alpha": null,
				"target_modules": null, "modules_to_save": null, "inference_mode": null, "use_dora": null, "bias": null}`,
			check: func(t *testing.T, c *AdapterConfig) { assert.Equal(t, &AdapterConfig{}, c) },
		},
		{
			name: "NaN and Infinity as Python writes them",
			json: `{"lora_dropout": NaN, "lora_alpha": Infinity, "note": "NaN"}`,
			check: func(t *testing.T, c *AdapterConfig) {
				assert.Nil(t, c.LoraDropout)
				assert.Nil(t, c.LoraAlpha)
				assert.JSONEq(t, `"NaN"`, string(c.Extra["note"]))
			},
		},
		{
			name: "newer PEFT keys are kept",
			json: `{"peft_type": "LORA", "peft_version": "0.17.1", "lora_bias": false, "target_parameters": null,
				"trainable_token_indices": null, "corda_config": null, "eva_config": null, "modules_to_save": []}`,
			check: func(t *testing.T, c *AdapterConfig) {
				assert.Equal(t, "0.17.1", c.PeftVersion)
				assert.Equal(t, []string{}, c.ModulesToSave)
				assert.Equal(t, []string{"corda_config", "eva_config", "lora_bias", "target_parameters", "trainable_token_indices"}, sortedKeys(c.Extra))
			},
		},
		{
			name: "other PEFT types",
			json: `{"peft_type": "IA3", "task_type": "SEQ_2_SEQ_LM", "target_modules": ["k", "v", "wo"], "feedforward_modules": ["wo"]}`,
			check: func(t *testing.T, c *AdapterConfig) {
				assert.Equal(t, "IA3 on k, v, wo", c.Describe())
				assert.Equal(t, []string{"feedforward_modules"}, sortedKeys(c.Extra))
			},
		},
		{
			name: "names that are not plain text are quoted in messages",
			json: `{"peft_type": "LO\u001bRA", "base_model_name_or_path": "org/na\nme"}`,
			check: func(t *testing.T, c *AdapterConfig) {
				assert.Equal(t, `"LO\x1bRA"`, c.Describe())
				assert.Equal(t, `"org/na\nme"`, c.Base().String())
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseAdapterConfig([]byte(tc.json))
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestParseAdapterConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		json, want string
	}{
		{``, "adapter_config.json: not a JSON object"},
		{`[]`, "adapter_config.json: not a JSON object"},
		{`{"r": 8`, "adapter_config.json: not valid JSON: unexpected end of JSON input"},
		{`{"r": "8"}`, `adapter_config.json: r is "8", want a number`},
		{`{"r": 1.5}`, `adapter_config.json: r is 1.5, want an integer`},
		{`{"r": -1}`, `adapter_config.json: r is -1, want a rank of 0 or more`},
		{`{"lora_alpha": "16"}`, `adapter_config.json: lora_alpha is "16", want a number`},
		{`{"lora_dropout": [0.1]}`, `adapter_config.json: lora_dropout is [0.1], want a number`},
		{`{"target_modules": 5}`, `adapter_config.json: target_modules is 5, want a list of module names or a string`},
		{`{"target_modules": ["q", 1]}`, `adapter_config.json: target_modules is ["q", 1], want a list of strings`},
		{`{"modules_to_save": "lm_head"}`, `adapter_config.json: modules_to_save is "lm_head", want a list of strings`},
		{`{"bias": 1}`, `adapter_config.json: bias is 1, want a string`},
		{`{"peft_type": ["LORA"]}`, `adapter_config.json: peft_type is ["LORA"], want a string`},
		{`{"base_model_name_or_path": {"id": "x"}}`, `adapter_config.json: base_model_name_or_path is {"id": "x"}, want a string`},
		{`{"inference_mode": "yes"}`, `adapter_config.json: inference_mode is "yes", want true or false`},
		{`{"use_dora": 1}`, `adapter_config.json: use_dora is 1, want true or false`},
		{`{"x": "` + strings.Repeat("a", MaxAdapterConfig) + `"}`,
			"adapter_config.json: larger than 4194304 bytes, the most an adapter configuration may have"},
	} {
		c, err := ParseAdapterConfig([]byte(tc.json))
		assert.Nil(t, c)
		var configErr *AdapterConfigError
		if assert.ErrorAs(t, err, &configErr, tc.json) {
			assert.Equal(t, tc.want, err.Error())
		}
	}
}

func TestAdapterFiles(t *testing.T) {
	// Adapter files keep the roles of a model's config and weights ...
	assert.Equal(t, RoleConfig, Classify("adapter_config.json"))
	assert.Equal(t, RoleWeights, Classify("adapter_model.safetensors"))
	assert.Equal(t, RoleWeights, Classify("adapter_model.bin"))
	// ... and IsAdapterFile tells them apart.
	for name, want := range map[string]bool{
		"adapter_config.json": true, "adapter_model.safetensors": true, "adapter_model.bin": true,
		"config.json": false, "model.safetensors": false, "pytorch_model.bin": false,
		"sub/adapter_config.json": false, "adapter_model.gguf": false,
	} {
		assert.Equal(t, want, IsAdapterFile(name), name)
	}
}

func TestModules(t *testing.T) {
	list := func(names ...string) Modules { return Modules{Names: names} }
	pattern := func(p string) Modules { return Modules{Pattern: p, IsPattern: true} }
	assert.True(t, list("q_proj", "v_proj").Equal(list("v_proj", "q_proj")), "a set: order does not matter")
	assert.True(t, list("q", "q").Equal(list("q")))
	assert.False(t, list("q_proj").Equal(list("q_proj", "v_proj")))
	assert.False(t, list().Equal(pattern("")), "an empty list is not an empty pattern")
	assert.True(t, pattern("all-linear").Equal(pattern("all-linear")))
	assert.False(t, pattern("q").Equal(list("q")))
	assert.Equal(t, "k, q, v", list("v", "q", "k").String())
	assert.Equal(t, `".*\\.(q|v)$"`, pattern(`.*\.(q|v)$`).String(), "a pattern with a backslash is quoted")
	assert.Equal(t, "all-linear", pattern("all-linear").String())
}

// adapterFolder is a LoRA adapter folder as a Trainer checkpoint of a PEFT
// run holds it.
func adapterFolder(t *testing.T) fstest.MapFS {
	config, err := os.ReadFile(peftFixture)
	require.NoError(t, err)
	return fstest.MapFS{
		"adapter_config.json":       {Data: config},
		"adapter_model.safetensors": {Data: []byte("weights")},
		"tokenizer.json":            {Data: []byte("{}")},
		"tokenizer_config.json":     {Data: []byte("{}")},
		"trainer_state.json":        {Data: []byte("{}")},
		"optimizer.pt":              {Data: []byte("x")},
		"README.md":                 {Data: []byte("x")},
	}
}

func TestDetectAdapter(t *testing.T) {
	with := func(fsys fstest.MapFS, files ...string) fstest.MapFS {
		out := fstest.MapFS{}
		for k, v := range fsys {
			out[k] = v
		}
		for _, f := range files {
			out[f] = &fstest.MapFile{Data: []byte("x")}
		}
		return out
	}
	without := func(fsys fstest.MapFS, files ...string) fstest.MapFS {
		out := with(fsys)
		for _, f := range files {
			delete(out, f)
		}
		return out
	}
	base := adapterFolder(t)
	for _, tc := range []struct {
		name        string
		fsys        fstest.MapFS
		wantWeights string // "-" for not an adapter
	}{
		{"safetensors adapter", base, "adapter_model.safetensors"},
		{"bin adapter", with(without(base, "adapter_model.safetensors"), "adapter_model.bin"), "adapter_model.bin"},
		{"both: safetensors first", with(base, "adapter_model.bin"), "adapter_model.safetensors"},
		{"config without weights: an incomplete adapter", without(base, "adapter_model.safetensors"), ""},
		{"weights without config", without(base, "adapter_config.json"), "-"},
		{"full model that carries adapter files", with(base, "config.json", "model.safetensors"), "-"},
		{"sharded model that carries adapter files", with(base, "model.safetensors.index.json"), "-"},
		{"plain model", fstest.MapFS{"config.json": {Data: []byte("{}")}, "model.safetensors": {Data: []byte("x")}}, "-"},
		{"adapter in a subfolder only", fstest.MapFS{"sub/adapter_config.json": base["adapter_config.json"], "sub/adapter_model.bin": {Data: []byte("x")}}, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adapter, err := DetectAdapter(tc.fsys)
			require.NoError(t, err)
			if tc.wantWeights == "-" {
				assert.Nil(t, adapter)
				return
			}
			require.NotNil(t, adapter)
			assert.Equal(t, tc.wantWeights, adapter.Weights)
			assert.Equal(t, "meta-llama/Llama-3.2-1B", adapter.Config.BaseModelNameOrPath)
		})
	}

	broken := with(base)
	broken["adapter_config.json"] = &fstest.MapFile{Data: []byte(`{"r": "sixteen"}`)}
	_, err := DetectAdapter(broken)
	require.EqualError(t, err, `adapter_config.json: r is "sixteen", want a number`)
	huge := with(base)
	huge["adapter_config.json"] = &fstest.MapFile{Data: []byte(`{"x": "` + strings.Repeat("a", 2*MaxAdapterConfig) + `"}`)}
	_, err = DetectAdapter(huge)
	require.EqualError(t, err, "adapter_config.json: larger than 4194304 bytes, the most an adapter configuration may have")
}

func TestCheckRunnableAdapter(t *testing.T) {
	adapter := adapterFolder(t)
	// Runnable with its base: CheckRunnable accepts it, CheckRunnableAlone
	// says which base it needs.
	require.NoError(t, CheckRunnable(adapter))
	err := CheckRunnableAlone(adapter)
	var needsBase *NeedsBaseError
	require.ErrorAs(t, err, &needsBase)
	assert.Equal(t, AdapterBase{Name: "meta-llama/Llama-3.2-1B"}, needsBase.Base)
	assert.EqualError(t, err, "model is a PEFT adapter: it needs base meta-llama/Llama-3.2-1B")

	// A full model runs alone.
	model := fstest.MapFS{"config.json": {Data: []byte("{}")}, "model.safetensors": {Data: []byte("x")}}
	require.NoError(t, CheckRunnableAlone(model))
	model["adapter_config.json"] = adapter["adapter_config.json"]
	require.NoError(t, CheckRunnableAlone(model), "a full model that carries adapter files")

	// Without a base name.
	unnamed := fstest.MapFS{"adapter_config.json": {Data: []byte(`{"peft_type": "LORA"}`)}, "adapter_model.bin": {Data: []byte("x")}}
	assert.EqualError(t, CheckRunnableAlone(unnamed), "model is a PEFT adapter: it needs a base model, which adapter_config.json does not name")

	// Incomplete: the MissingError names the base too.
	incomplete := fstest.MapFS{"adapter_config.json": adapter["adapter_config.json"], "tokenizer_config.json": {Data: []byte("{}")}}
	err = CheckRunnable(incomplete)
	var missing *MissingError
	require.ErrorAs(t, err, &missing)
	assert.Equal(t, &AdapterBase{Name: "meta-llama/Llama-3.2-1B"}, missing.NeedsBase)
	assert.EqualError(t, err, "model is not runnable: missing adapter weights (adapter_model.safetensors or adapter_model.bin); "+
		"tokenizer vocabulary (found tokenizer_config.json but no tokenizer.json, vocab.json+merges.txt, vocab.txt, spiece.model or tokenizer.model); "+
		"as a PEFT adapter it also needs base meta-llama/Llama-3.2-1B")
	assert.ErrorAs(t, CheckRunnableAlone(incomplete), &missing)
	// Weights without a config: no base to name.
	err = CheckRunnable(fstest.MapFS{"adapter_model.safetensors": {Data: []byte("x")}})
	require.ErrorAs(t, err, &missing)
	assert.Nil(t, missing.NeedsBase)

	// A malformed adapter_config.json is named.
	adapter["adapter_config.json"] = &fstest.MapFile{Data: []byte(`{"target_modules": 3}`)}
	var configErr *AdapterConfigError
	require.ErrorAs(t, CheckRunnable(adapter), &configErr)
	assert.EqualError(t, CheckRunnable(adapter), "adapter_config.json: target_modules is 3, want a list of module names or a string")

	// On a local folder, the folder is named.
	dir := t.TempDir()
	for name, f := range adapterFolder(t) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), f.Data, 0o644))
	}
	require.NoError(t, CheckRunnableDir(dir))
	assert.EqualError(t, CheckRunnableAloneDir(dir), "model "+dir+" is a PEFT adapter: it needs base meta-llama/Llama-3.2-1B")
	require.NoError(t, os.Remove(filepath.Join(dir, "adapter_model.safetensors")))
	assert.ErrorContains(t, CheckRunnableAloneDir(dir), "model "+dir+" is not runnable: missing adapter weights")
}

func FuzzParseAdapterConfig(f *testing.F) {
	fixture, err := os.ReadFile(peftFixture)
	require.NoError(f, err)
	for _, seed := range []string{
		string(fixture), `{}`, `[]`, ``, `{"r": "8"}`, `{"r": 8.0, "lora_alpha": NaN}`, `{"target_modules": "all-linear"}`,
		`{"target_modules": ["q", null]}`, `{"modules_to_save": []}`, `{"r": 1e400}`, `{"r": -0}`, `{"a": {"b": [1, 2]}}`,
		`{"base_model_name_or_path": "a", "base_model_name_or_path": "b"}`, `{"inference_mode": tru}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c *AdapterConfig
		var err error
		n := allocs(func() { c, err = ParseAdapterConfig(data) })
		require.LessOrEqual(t, n, jsonExpansion*uint64(len(data))+parseOverhead, "allocated %d bytes", n)
		if err != nil {
			require.Nil(t, c)
			var configErr *AdapterConfigError
			require.ErrorAs(t, err, &configErr)
			require.Equal(t, "adapter_config.json", configErr.Path)
			return
		}
		for _, key := range adapterConfigKeys {
			require.NotContains(t, c.Extra, key, "a known key is not extra")
		}
		if c.R != nil {
			require.GreaterOrEqual(t, *c.R, int64(0))
		}
		if c.TargetModules != nil && !c.TargetModules.IsPattern {
			require.NotNil(t, c.TargetModules.Names)
		}
		_ = c.Describe()
		_ = c.Base().String()
	})
}
