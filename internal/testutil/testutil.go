// Package testutil holds what the tests of several packages need alike: a
// fresh local registry with its own per-machine index, a tiny generated
// training run, and reading a folder back for byte-for-byte comparison.
// Only tests import it.
package testutil

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/miniotest"
	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/local"
)

// LocalRegistry makes an empty registry in a temporary folder, with its own
// index (closed when the test ends).
func LocalRegistry(tb testing.TB, workers int) (*store.Registry, backend.Backend, *store.Index) {
	tb.Helper()
	b, err := local.New(filepath.Join(tb.TempDir(), "registry"))
	require.NoError(tb, err)
	ix, err := store.OpenIndex(filepath.Join(tb.TempDir(), "index.db"))
	require.NoError(tb, err)
	tb.Cleanup(func() { ix.Close() })
	r, created, err := store.Init(context.Background(), b, store.Options{Index: ix, Workers: workers})
	require.NoError(tb, err)
	require.True(tb, created)
	return r, b, ix
}

// ReadTree maps every regular file under dir (slash-separated relative
// path) to its bytes.
func ReadTree(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	require.NoError(tb, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = data
		return err
	}))
	return out
}

// TinyRun writes a tiny base model (the real GPT-2 tokenizer and config of
// testdata/gpt2) and a run fine-tuning it, as spec says; spec.Model,
// TokenizerDir and BaseDir are filled in when empty. It returns the base
// folder and the checkpoint folders in step order.
func TinyRun(tb testing.TB, spec synth.RunSpec) (base string, ckpts []string) {
	tb.Helper()
	root := tb.TempDir()
	if spec.Model == (synth.Model{}) {
		spec.Model = synth.TinyModel()
	}
	if spec.TokenizerDir == "" {
		spec.TokenizerDir = TokenizerDir(tb)
	}
	base = filepath.Join(root, "base")
	require.NoError(tb, synth.WriteBase(base, spec.Model, 1, spec.TokenizerDir))
	if spec.BaseDir == "" {
		spec.BaseDir = base
	}
	ckpts, err := synth.WriteRun(filepath.Join(root, "run"), spec)
	require.NoError(tb, err)
	return base, ckpts
}

// TokenizerDir is the real GPT-2 tokenizer and config in testdata/gpt2.
func TokenizerDir(tb testing.TB) string {
	tb.Helper()
	root, err := miniotest.ModuleRoot()
	require.NoError(tb, err)
	return filepath.Join(root, "testdata", "gpt2")
}
