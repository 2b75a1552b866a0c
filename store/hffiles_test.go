package store_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/object"
)

// TestWriteFileTo streams every file of a checkpoint, on every backend, to
// the bytes of the folder pushed; a manifest whose chunks do not tile the
// file and a blob whose content changed are errors naming the file.
func TestWriteFileTo(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nb)
			base, _ := tinyRun(t, 41, nil)
			files := testutil.ReadTree(t, base)
			res := e.push(base, "base", store.PushOptions{Version: "1"})
			r := e.withoutIndex()
			rec, err := r.Resolve(e.ctx, "base", "1")
			require.NoError(t, err)
			sel, err := r.Selection(e.ctx, rec, true)
			require.NoError(t, err)
			require.Len(t, sel, len(files))
			m, err := r.Manifest(e.ctx, res.Record.Manifest)
			require.NoError(t, err)
			for i := range m.Files {
				f := &m.Files[i]
				var buf bytes.Buffer
				n, err := r.WriteFileTo(e.ctx, f, &buf)
				require.NoError(t, err, f.Path)
				assert.Equal(t, f.Size, n)
				assert.Equal(t, files[f.Path], buf.Bytes(), f.Path)
			}

			var weights = m.Files[0]
			for _, f := range m.Files {
				if len(f.Chunks) > 1 {
					weights = f
				}
			}
			require.Greater(t, len(weights.Chunks), 1)
			gap := weights
			gap.Chunks = append(gap.Chunks[:0:0], weights.Chunks...)
			gap.Chunks[1].Offset++
			_, err = r.WriteFileTo(e.ctx, &gap, &bytes.Buffer{})
			assert.ErrorContains(t, err, "do not tile")
			assert.ErrorContains(t, err, weights.Path)

			c := weights.Chunks[0]
			require.NoError(t, e.b.Delete(context.Background(), object.BlobKey(c.ID)))
			require.NoError(t, e.b.Put(context.Background(), object.BlobKey(c.ID), bytes.NewReader([]byte("not the blob")), int64(len("not the blob"))))
			_, err = r.WriteFileTo(e.ctx, &weights, &bytes.Buffer{})
			assert.Error(t, err)
			assert.ErrorContains(t, err, weights.Path)
		})
	}
}
