package store_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/refs"
)

// peftBase is the NAME the fixture's base_model_name_or_path names.
const peftBase = testutil.PEFTFixtureBase

func TestPEFTAdapter(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			t.Run("LinksItsBase", func(t *testing.T) { testAdapterLinksBase(t, nb) })
			t.Run("PullWithBase", func(t *testing.T) { testAdapterPullWithBase(t, nb) })
			t.Run("LinksImportedHFBase", func(t *testing.T) { testAdapterLinksHFBase(t, nb) })
		})
	}
}

func testAdapterLinksBase(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	base, _ := tinyRun(t, 81, nil)

	// No NAME of the registry is the base: nothing is linked, but the
	// push knows it is an adapter.
	res := e.push(testutil.WriteAdapter(t, nil, 1), "lora", store.PushOptions{Version: "1"})
	require.NotNil(t, res.Adapter)
	assert.Equal(t, peftBase, res.Adapter.Config.BaseModelNameOrPath)
	assert.Equal(t, "adapter_model.safetensors", res.Adapter.Weights)
	assert.False(t, res.AutoBase)
	assert.Nil(t, res.Record.Base)

	// Once the base is recorded under that NAME, it is linked (latest).
	e.push(base, peftBase, store.PushOptions{Version: "1"})
	baseRes := e.push(base, peftBase, store.PushOptions{Version: "2", Force: true})
	res = e.push(testutil.WriteAdapter(t, nil, 2), "lora", store.PushOptions{Version: "2"})
	assert.True(t, res.AutoBase)
	require.NotNil(t, res.Record.Base)
	assert.Equal(t, peftBase, res.Record.Base.Name)
	assert.Equal(t, "2", res.Record.Base.Version)
	assert.Equal(t, baseRes.Record.Manifest, res.Record.Base.Manifest)
	// ... as the stored record says, for every reader.
	rec, err := e.withoutIndex().Resolve(e.ctx, "lora", "2")
	require.NoError(t, err)
	require.NotNil(t, rec.Base)
	assert.Equal(t, "2", rec.Base.Version)

	// The revision adapter_config.json names picks the version (or tag).
	res = e.push(testutil.WriteAdapter(t, func(m map[string]any) { m["revision"] = "1" }, 3), "lora", store.PushOptions{Version: "3"})
	assert.True(t, res.AutoBase)
	assert.Equal(t, "1", res.Record.Base.Version)

	// An explicit base wins, and is not called automatic.
	e.push(base, "other-base", store.PushOptions{Version: "1"})
	res = e.push(testutil.WriteAdapter(t, nil, 4), "lora", store.PushOptions{Version: "4", Base: "other-base@1"})
	assert.False(t, res.AutoBase)
	assert.Equal(t, "other-base", res.Record.Base.Name)

	// A local path or an unknown id links nothing (no guessing from a
	// path's last element).
	for i, named := range []string{"/models/" + peftBase, "Llama-3.2-1B", ""} {
		res = e.push(testutil.WriteAdapter(t, func(m map[string]any) { m["base_model_name_or_path"] = named }, float32(5+i)), "lora2", store.PushOptions{Version: string(rune('a' + i))})
		assert.False(t, res.AutoBase, named)
		assert.Nil(t, res.Record.Base, named)
	}

	// A full model is not an adapter.
	res = e.push(base, "full", store.PushOptions{Version: "1"})
	assert.Nil(t, res.Adapter)
}

func testAdapterPullWithBase(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	base, _ := tinyRun(t, 82, nil)
	e.push(base, peftBase, store.PushOptions{Version: "1"})
	adapter := testutil.WriteAdapter(t, nil, 1)
	e.push(adapter, "lora", store.PushOptions{Version: "1"})

	// Without --with-base: the adapter folder, runnable with its base.
	dir := filepath.Join(t.TempDir(), "only")
	res, err := e.r.Pull(e.ctx, "lora", "1", dir, store.PullOptions{})
	require.NoError(t, err)
	assert.True(t, res.Runnable)
	assert.Nil(t, res.Base)
	assert.FileExists(t, filepath.Join(dir, "adapter_config.json"))
	assert.NoDirExists(t, filepath.Join(dir, store.BaseDir))
	var nb2 *layout.NeedsBaseError
	require.ErrorAs(t, layout.CheckRunnableAloneDir(dir), &nb2)

	// With it: the pair, the base runnable by itself in base/.
	dir = filepath.Join(t.TempDir(), "pair")
	res, err = e.r.Pull(e.ctx, "lora", "1", dir, store.PullOptions{WithBase: true})
	require.NoError(t, err)
	assert.True(t, res.Runnable)
	require.NotNil(t, res.Base)
	assert.Equal(t, peftBase, res.Base.Name)
	assert.Equal(t, "1", res.Base.Version)
	require.NoError(t, layout.CheckRunnableAloneDir(filepath.Join(dir, store.BaseDir)))
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "base/config.json", "base/model.safetensors", "base/tokenizer.json"} {
		assert.FileExists(t, filepath.Join(dir, filepath.FromSlash(f)))
	}
	for _, f := range res.Files {
		if strings.HasPrefix(f.Path, "base/") {
			assert.Equal(t, peftBase+"@1", f.From, f.Path)
		}
	}
	want, err := os.ReadFile(filepath.Join(base, "model.safetensors"))
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(dir, "base", "model.safetensors"))
	require.NoError(t, err)
	assert.Equal(t, want, got)
	got, err = os.ReadFile(filepath.Join(dir, "adapter_model.safetensors"))
	require.NoError(t, err)
	want, err = os.ReadFile(filepath.Join(adapter, "adapter_model.safetensors"))
	require.NoError(t, err)
	assert.Equal(t, want, got)

	// The base's ref removed: its manifest, kept by the adapter's record,
	// still serves it.
	_, _, err = e.r.Remove(e.ctx, peftBase, "1")
	require.NoError(t, err)
	dir = filepath.Join(t.TempDir(), "gone")
	res, err = e.r.Pull(e.ctx, "lora", "1", dir, store.PullOptions{WithBase: true})
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(dir, "base", "model.safetensors"))
	require.NotNil(t, res.Base)
	assert.Equal(t, peftBase, res.Base.Name)
	assert.True(t, res.Runnable)

	// Not an adapter, or an adapter without a base: refused, nothing written.
	e.push(base, "full", store.PushOptions{Version: "1"})
	e.push(testutil.WriteAdapter(t, func(m map[string]any) { m["base_model_name_or_path"] = "nowhere" }, 9), "lonely", store.PushOptions{Version: "1"})
	for _, ref := range [][2]string{{"full", "1"}, {"lonely", "1"}} {
		dir := filepath.Join(t.TempDir(), "x")
		_, err := e.r.Pull(e.ctx, ref[0], ref[1], dir, store.PullOptions{WithBase: true})
		require.ErrorIs(t, err, store.ErrNotAdapter, ref[0])
		assert.NoDirExists(t, dir)
	}
}

// A base imported from the Hugging Face cache is found by the repo id its
// record holds (import-hf), under whatever NAME it was imported as.
func testAdapterLinksHFBase(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	base, _ := tinyRun(t, 83, nil)
	commitA, commitB := strings.Repeat("a", 40), strings.Repeat("b", 40)
	e.push(base, "llama-base", store.PushOptions{Version: "aaaaaaaaaaaa", HF: &refs.HFOrigin{Repo: peftBase, Revision: commitA}})

	res := e.push(testutil.WriteAdapter(t, nil, 1), "lora", store.PushOptions{Version: "1"})
	assert.True(t, res.AutoBase)
	require.NotNil(t, res.Record.Base)
	assert.Equal(t, "llama-base", res.Record.Base.Name)
	assert.Equal(t, "aaaaaaaaaaaa", res.Record.Base.Version)

	// The most recent import of the repo, unless the adapter names a commit.
	e.push(base, "llama-base", store.PushOptions{Version: "bbbbbbbbbbbb", HF: &refs.HFOrigin{Repo: peftBase, Revision: commitB}})
	res = e.push(testutil.WriteAdapter(t, nil, 2), "lora", store.PushOptions{Version: "2"})
	assert.Equal(t, "bbbbbbbbbbbb", res.Record.Base.Version)
	res = e.push(testutil.WriteAdapter(t, func(m map[string]any) { m["revision"] = commitA }, 3), "lora", store.PushOptions{Version: "3"})
	assert.Equal(t, "aaaaaaaaaaaa", res.Record.Base.Version)
	// A branch name is no commit: the most recent import.
	res = e.push(testutil.WriteAdapter(t, func(m map[string]any) { m["revision"] = "main" }, 4), "lora", store.PushOptions{Version: "4"})
	assert.Equal(t, "bbbbbbbbbbbb", res.Record.Base.Version)

	// The repo imported under two NAMEs: which one is not guessed.
	e.push(base, "llama-copy", store.PushOptions{Version: "1", HF: &refs.HFOrigin{Repo: peftBase, Revision: commitB}})
	res = e.push(testutil.WriteAdapter(t, nil, 5), "lora", store.PushOptions{Version: "5"})
	assert.False(t, res.AutoBase)
	assert.Nil(t, res.Record.Base)
}
