// Package testutil holds what the tests of several packages need alike: a
// fresh local registry with its own per-machine index, and reading a folder
// back for byte-for-byte comparison. Only tests import it.
package testutil

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/local"
)

// LocalRegistry makes an empty registry in a temporary folder, with its own
// index (closed when the test ends).
func LocalRegistry(tb testing.TB, workers int) (*store.Registry, store.Backend, *store.Index) {
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
