package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// chainEnv is a two-level base chain: wo@200 (weights only) on mid@1
// (weights and a config of its own) on gpt2@1 (the model).
func chainEnv(t *testing.T, nb newBackendFunc) *env {
	t.Helper()
	e := newEnv(t, nb)
	base, ckpts := tinyRun(t, 10, func(s *synth.RunSpec) { s.WeightsOnly = true })
	e.push(base, "gpt2", store.PushOptions{Version: "1"})
	mid := filepath.Join(t.TempDir(), "mid")
	require.NoError(t, os.CopyFS(mid, os.DirFS(ckpts[0])))
	cfg, err := os.ReadFile(filepath.Join(base, "config.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(mid, "config.json"), bytes.Replace(cfg, []byte("{"), []byte(`{"mid": true,`), 1), 0o644))
	e.push(mid, "mid", store.PushOptions{Version: "1", Base: "gpt2@1"})
	e.push(ckpts[1], "wo", store.PushOptions{Base: "mid@1"})
	return e
}

func TestResolveChain(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := chainEnv(t, nb)
			rec, err := e.r.Resolve(e.ctx, "wo", "200")
			require.NoError(t, err)
			c, err := e.r.ResolveChain(e.ctx, rec)
			require.NoError(t, err)
			var bases []string
			for _, b := range c.Bases {
				bases = append(bases, b.String())
			}
			assert.Equal(t, []string{"mid@1", "gpt2@1"}, bases, "nearest first")
			from := map[string]string{}
			inherited := map[string]bool{}
			for i, f := range c.Files {
				from[f.Path], inherited[f.Path] = f.From, f.Inherited
				if i > 0 {
					assert.Less(t, c.Files[i-1].Path, f.Path, "sorted by path")
				}
			}
			assert.Equal(t, "wo@200", from["model.safetensors"])
			assert.False(t, inherited["model.safetensors"])
			assert.Equal(t, "mid@1", from["config.json"], "the nearest base with a config gives it")
			assert.True(t, inherited["config.json"])
			assert.Equal(t, "gpt2@1", from["tokenizer.json"], "mid has no tokenizer: gpt2's")
			assert.Equal(t, "gpt2@1", from["generation_config.json"])
			assert.Len(t, c.Manifest().Files, len(c.Files))
			require.NoError(t, c.Manifest().Validate())
		})
	}
}

// Verify of one checkpoint checks every manifest its pull reads, down its
// base chain: a base's base whose manifest is gone is a problem, naming the
// checkpoint that needs it.
func TestVerifyChecksTheWholeBaseChain(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := chainEnv(t, nb)
			gpt2, err := e.r.Resolve(e.ctx, "gpt2", "1")
			require.NoError(t, err)
			require.NoError(t, e.b.Delete(e.ctx, object.ManifestKey(gpt2.Manifest)))

			wo, err := e.r.Resolve(e.ctx, "wo", "200")
			require.NoError(t, err)
			rep, err := e.withoutIndex().Verify(e.ctx, []refs.Record{wo}, false)
			require.ErrorIs(t, err, store.ErrVerifyFailed)
			p := problemFor(t, rep, object.ManifestKey(gpt2.Manifest))
			assert.Equal(t, []string{"wo@200 (base gpt2@1)"}, p.Files)
			assert.Equal(t, 3, rep.Manifests)

			_, err = e.withoutIndex().Pull(e.ctx, "wo", "200", filepath.Join(t.TempDir(), "out"), store.PullOptions{})
			require.Error(t, err, "pull needs that manifest too")
		})
	}
}

// A base chain that comes back to a checkpoint already in it is an error
// for every reader, and verify names the ref whose chain loops.
func TestBaseChainLoop(t *testing.T) {
	e := chainEnv(t, newLocal)
	// Make gpt2@1 name wo@200 as its base, closing the loop.
	wo, err := e.r.Resolve(e.ctx, "wo", "200")
	require.NoError(t, err)
	key := refs.VersionKey("gpt2", "1")
	rec, err := e.r.Resolve(e.ctx, "gpt2", "1")
	require.NoError(t, err)
	rec.Base = &refs.BaseRef{Name: "wo", Version: "200", Manifest: wo.Manifest}
	data, err := refs.Encode(rec)
	require.NoError(t, err)
	require.NoError(t, e.b.Delete(e.ctx, key))
	require.NoError(t, e.b.Put(e.ctx, key, bytes.NewReader(data), int64(len(data))))

	_, err = e.r.ResolveChain(e.ctx, wo)
	require.ErrorContains(t, err, "base chain of wo@200 loops at wo@200")
	_, err = e.r.Pull(e.ctx, "wo", "200", filepath.Join(t.TempDir(), "out"), store.PullOptions{})
	require.ErrorContains(t, err, "loops")

	rep, err := e.r.Verify(e.ctx, []refs.Record{wo}, false)
	require.ErrorIs(t, err, store.ErrVerifyFailed)
	assert.ErrorContains(t, problemFor(t, rep, refs.VersionKey("wo", "200")).Err, "loops")
	rep, err = e.r.VerifyAll(e.ctx, false)
	require.ErrorIs(t, err, store.ErrVerifyFailed)
	for _, k := range []string{refs.VersionKey("wo", "200"), refs.VersionKey("mid", "1"), key} {
		assert.ErrorContains(t, problemFor(t, rep, k).Err, "loops", k)
	}
}

// The chain stops at a base whose version ref is gone; its manifest (kept
// by the record that names it) still gives what it has.
func TestBaseChainStopsWhereARefIsGone(t *testing.T) {
	e := chainEnv(t, newLocal)
	_, _, err := e.r.Remove(context.Background(), "mid", "1")
	require.NoError(t, err)
	wo, err := e.r.Resolve(e.ctx, "wo", "200")
	require.NoError(t, err)
	c, err := e.r.ResolveChain(e.ctx, wo)
	require.NoError(t, err)
	require.Len(t, c.Bases, 1)
	assert.Equal(t, "mid@1", c.Bases[0].String())
	from := map[string]string{}
	for _, f := range c.Files {
		from[f.Path] = f.From
	}
	assert.Equal(t, "mid@1", from["config.json"])
	assert.NotContains(t, from, "tokenizer.json", "nothing says mid@1's base was gpt2@1 any more")
	rep, err := e.r.Verify(e.ctx, []refs.Record{wo}, false)
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Manifests)
}
