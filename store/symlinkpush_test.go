package store_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/hfcache/hfcachetest"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/store"
)

// TestPushThroughSymlinks pushes a snapshot of a Hugging Face cache, built
// by hand (blobs, relative symlinks into ../../blobs, refs/main), on every
// backend: every file comes through a symlink that resolves outside the
// snapshot folder, is recorded with its target's content, and push counts
// them. The manifest is the one the same files give as a plain folder,
// and a pull gives them back byte for byte.
func TestPushThroughSymlinks(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nb)
			base, _ := tinyRun(t, 31, nil)
			cache := filepath.Join(t.TempDir(), "hub")
			snap := hfcachetest.Build(t, cache, "org/base", hfcachetest.Commit("base"), "main", base)
			files := testutil.ReadTree(t, base)

			res := e.push(snap.Dir, "hub-base", store.PushOptions{Version: "1"})
			assert.Equal(t, len(files), res.Files)
			assert.Equal(t, len(files), res.Symlinked, "every file of the snapshot is a symlink")

			plain := e.push(base, "plain-base", store.PushOptions{Version: "1"})
			assert.Equal(t, 0, plain.Symlinked)
			assert.Equal(t, plain.Record.Manifest, res.Record.Manifest, "the same files give the same manifest, links or not")

			out := filepath.Join(t.TempDir(), "out")
			_, err := e.withoutIndex().Pull(e.ctx, "hub-base", "1", out, store.PullOptions{Full: true})
			require.NoError(t, err)
			assert.Equal(t, files, testutil.ReadTree(t, out))
			for p := range files {
				info, err := os.Lstat(filepath.Join(out, filepath.FromSlash(p)))
				require.NoError(t, err)
				assert.True(t, info.Mode().IsRegular(), "%s is pulled as a regular file", p)
			}
		})
	}
}
