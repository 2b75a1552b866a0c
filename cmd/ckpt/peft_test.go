package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
)

func TestPEFTAdapterCLI(t *testing.T) {
	c := newCLI(t)
	base, _ := writeRun(t, false)
	adapter := testutil.WriteAdapter(t, nil, 1)

	// Before its base is recorded: an adapter, with no base linked, and
	// push says how to link one.
	out := c.ok("push", adapter, "lora@1")
	assert.Contains(t, out, "adapter    PEFT LORA r=16 alpha=32 dropout=0.05 on q_proj, v_proj")
	assert.Contains(t, out, "none linked: adapter_config.json names meta-llama/Llama-3.2-1B, which is neither a NAME nor an imported repo of this registry")

	// The base under the NAME adapter_config.json names: linked by itself.
	c.ok("push", base, testutil.PEFTFixtureBase+"@1")
	adapter2 := testutil.WriteAdapter(t, nil, 2)
	var pushed pushOutput
	require.NoError(t, json.Unmarshal([]byte(c.ok("push", adapter2, "lora@2", "--json")), &pushed))
	require.NotNil(t, pushed.Adapter)
	assert.Equal(t, "LORA", pushed.Adapter.PeftType)
	assert.Equal(t, testutil.PEFTFixtureBase, pushed.Adapter.BaseModelNameOrPath)
	assert.True(t, pushed.BaseLinked)
	require.NotNil(t, pushed.Record.Base)
	assert.Equal(t, testutil.PEFTFixtureBase, pushed.Record.Base.Name)
	out = c.ok("push", testutil.WriteAdapter(t, nil, 3), "lora@3")
	assert.Contains(t, out, "base       meta-llama/Llama-3.2-1B@1, linked automatically: adapter_config.json names meta-llama/Llama-3.2-1B (--base chooses another)")

	// pull --with-base: the runnable pair.
	dir := filepath.Join(t.TempDir(), "pair")
	out = c.ok("pull", "lora@2", dir, "--with-base")
	assert.Contains(t, out, "base meta-llama/Llama-3.2-1B@1 written into base/")
	assert.NoError(t, layout.CheckRunnableAloneDir(filepath.Join(dir, "base")))
	assert.FileExists(t, filepath.Join(dir, "adapter_model.safetensors"))
	dir = filepath.Join(t.TempDir(), "pair-json")
	var pulled pullOutput
	require.NoError(t, json.Unmarshal([]byte(c.ok("pull", "lora@2", dir, "--with-base", "--json")), &pulled))
	require.NotNil(t, pulled.Base)
	assert.Equal(t, "1", pulled.Base.Version)
	assert.True(t, pulled.Runnable)

	// diff of two adapters in the registry: settings and tensors.
	c.ok("push", testutil.WriteAdapter(t, func(m map[string]any) {
		m["r"] = 8
		m["target_modules"] = []string{"q_proj", "k_proj", "v_proj", "o_proj"}
	}, 4), "lora@4")
	out = c.ok("diff", "lora@2", "lora@4")
	assert.Contains(t, out, "adapter: r 16 -> 8, target_modules [q_proj, v_proj] -> [k_proj, o_proj, q_proj, v_proj]")
	var d diffOutput
	require.NoError(t, json.Unmarshal([]byte(c.ok("diff", "lora@2", "lora@4", "--json")), &d))
	require.NotNil(t, d.Adapter)
	require.Len(t, d.Adapter.Changes, 2)
	assert.Equal(t, diffAdapterChangeOutput{Setting: "r", A: "16", B: "8"}, d.Adapter.Changes[0])
	shapes := 0
	for _, tc := range d.Tensors {
		if tc.Kind == "shape-changed" {
			shapes++
		}
	}
	assert.Equal(t, 8, shapes, "the q and v factors of two layers changed rank")

	// --with-base of an adapter without a base, or of a full model, fails.
	for _, ref := range []string{"lora@1", testutil.PEFTFixtureBase + "@1"} {
		code, _, errs := c.run("pull", ref, filepath.Join(t.TempDir(), "x"), "--with-base")
		assert.Equal(t, 1, code, ref)
		assert.Contains(t, errs, "not a PEFT adapter with a base", ref)
	}
}
