package store_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
)

// LocalManifest gives the ID push records for a folder, without storing
// anything, and tells a rewritten folder from the pushed one even when the
// rewrite kept every size and modification time.
func TestLocalManifest(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nb)
			_, ckpts := tinyRun(t, 5, nil)
			dir := ckpts[0]
			age(t, dir)

			_, id, err := e.r.LocalManifest(e.ctx, dir)
			require.NoError(t, err)
			var blobs int
			require.NoError(t, e.b.List(e.ctx, "blobs/", func(backend.ObjectInfo) error { blobs++; return nil }))
			assert.Zero(t, blobs, "nothing stored")

			res := e.push(dir, "run", store.PushOptions{})
			assert.Equal(t, res.Record.Manifest, id, "the ID push records")
			assert.Equal(t, res.NewRaw, res.BytesRead, "the scan filled the stat cache: the push read only what it uploaded")
			_, again, err := e.r.LocalManifest(e.ctx, dir)
			require.NoError(t, err)
			assert.Equal(t, id, again)

			// Same size, same modification time, other bytes: the change
			// time gives it away.
			cfg := filepath.Join(dir, "config.json")
			fi, err := os.Stat(cfg)
			require.NoError(t, err)
			data, err := os.ReadFile(cfg)
			require.NoError(t, err)
			data[len(data)-2] ^= 0x01
			require.NoError(t, os.WriteFile(cfg, data, fi.Mode()))
			require.NoError(t, os.Chtimes(cfg, fi.ModTime(), fi.ModTime()))
			_, changed, err := e.r.LocalManifest(e.ctx, dir)
			require.NoError(t, err)
			assert.NotEqual(t, id, changed)
		})
	}
}
