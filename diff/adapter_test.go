package diff_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/diff"
	"github.com/ckptdev/ckpt/internal/testutil"
)

func compareFolders(t *testing.T, a, b string) *diff.Report {
	t.Helper()
	ctx := context.Background()
	sa, err := diff.FromFolder(ctx, a)
	require.NoError(t, err)
	sb, err := diff.FromFolder(ctx, b)
	require.NoError(t, err)
	rep, err := diff.Compare(ctx, sa, sb, diff.Options{})
	require.NoError(t, err)
	return rep
}

func TestDiffAdapters(t *testing.T) {
	fixture := testutil.WriteAdapter(t, nil, 1)
	const desc = "LORA r=16 alpha=32 dropout=0.05 on q_proj, v_proj"

	t.Run("rank, alpha and target modules", func(t *testing.T) {
		wider := testutil.WriteAdapter(t, func(m map[string]any) {
			m["r"] = 8
			m["lora_alpha"] = 16
			m["target_modules"] = []string{"k_proj", "v_proj", "q_proj"}
		}, 1)
		rep := compareFolders(t, fixture, wider)
		require.NotNil(t, rep.Adapter)
		assert.Equal(t, desc, rep.Adapter.A)
		assert.Equal(t, "LORA r=8 alpha=16 dropout=0.05 on k_proj, q_proj, v_proj", rep.Adapter.B)
		assert.Equal(t, []diff.AdapterChange{
			{Setting: "r", A: "16", B: "8"},
			{Setting: "lora_alpha", A: "32", B: "16"},
			{Setting: "target_modules", A: "[q_proj, v_proj]", B: "[k_proj, q_proj, v_proj]"},
		}, rep.Adapter.Changes)
		// Per tensor: the q/v factors changed shape, the k factors are new.
		kinds := map[diff.Kind]int{}
		for _, tc := range rep.Tensors {
			kinds[tc.Kind]++
		}
		assert.Equal(t, map[diff.Kind]int{diff.ShapeChanged: 8, diff.Added: 4}, kinds)
		assert.Contains(t, rep.Summary(), "adapter: r 16 -> 8, lora_alpha 32 -> 16, target_modules [q_proj, v_proj] -> [k_proj, q_proj, v_proj]")
		var text bytes.Buffer
		require.NoError(t, rep.WriteText(&text))
		assert.Contains(t, text.String(), "adapter: "+desc+" -> LORA r=8")
		assert.Regexp(t, `target_modules\s+\[q_proj, v_proj\]\s+-> \[k_proj, q_proj, v_proj\]`, text.String())
	})

	t.Run("target modules reordered is no change", func(t *testing.T) {
		reordered := testutil.WriteAdapter(t, func(m map[string]any) { m["target_modules"] = []string{"q_proj", "v_proj"} }, 1)
		rep := compareFolders(t, fixture, reordered)
		require.NotNil(t, rep.Adapter)
		assert.Empty(t, rep.Adapter.Changes)
		for _, c := range rep.JSON {
			assert.NotEqual(t, "target_modules", c.Key[:min(len(c.Key), len("target_modules"))], "%+v", c)
		}
		assert.Contains(t, rep.Summary(), "adapter: same ("+desc+")")
		for _, tc := range rep.Tensors {
			assert.Equal(t, diff.Same, tc.Kind, tc.Name)
		}
	})

	t.Run("trained further: same settings, tensors changed", func(t *testing.T) {
		later := testutil.WriteAdapter(t, nil, 2)
		rep := compareFolders(t, fixture, later)
		assert.Empty(t, rep.Adapter.Changes)
		for _, tc := range rep.Tensors {
			assert.Equal(t, diff.Changed, tc.Kind, tc.Name)
		}
	})

	t.Run("adapter against a full model", func(t *testing.T) {
		base, _ := writeRun(t, 3, nil)
		rep := compareFolders(t, fixture, base)
		require.NotNil(t, rep.Adapter)
		assert.Equal(t, desc, rep.Adapter.A)
		assert.Empty(t, rep.Adapter.B)
		assert.Contains(t, rep.Summary(), "adapter: "+desc+" in A, none in B")
	})

	t.Run("neither is an adapter", func(t *testing.T) {
		base, ckpts := writeRun(t, 3, nil)
		assert.Nil(t, compareFolders(t, base, ckpts[0]).Adapter)
	})

	t.Run("a broken adapter_config.json is a note", func(t *testing.T) {
		broken := testutil.WriteAdapter(t, nil, 1)
		require.NoError(t, os.WriteFile(filepath.Join(broken, "adapter_config.json"), []byte(`{"r": "sixteen"}`), 0o644))
		rep := compareFolders(t, fixture, broken)
		assert.Nil(t, rep.Adapter)
		assert.Contains(t, rep.Notes[0], "adapter settings not compared")
	})
}
