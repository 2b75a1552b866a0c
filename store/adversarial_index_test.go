package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/bolttest"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
)

// indexFixture is a registry with a run pushed, pulled and verified through
// an index, so that the index file holds every kind of entry; pristine is
// the file's bytes afterwards.
type indexFixture struct {
	b        backend.Backend
	path     string // the index file
	pristine []byte
	base     string
	ckpts    []string
}

func newIndexFixture(t *testing.T, nb newBackendFunc) *indexFixture {
	t.Helper()
	ctx := context.Background()
	fx := &indexFixture{b: nb(t), path: filepath.Join(t.TempDir(), "index.db")}
	ix, err := store.OpenIndex(fx.path)
	require.NoError(t, err)
	r, _, err := store.Init(ctx, fx.b, store.Options{Index: ix, Workers: 4})
	require.NoError(t, err)
	fx.base, fx.ckpts = tinyRun(t, 31, nil)
	age(t, filepath.Dir(fx.base))
	_, err = r.Push(ctx, fx.base, store.PushOptions{Name: "base", Version: "1"})
	require.NoError(t, err)
	for _, ck := range fx.ckpts {
		_, err := r.Push(ctx, ck, store.PushOptions{Name: "run", Base: "base@1"})
		require.NoError(t, err)
		// Other folders' stat entries, so that the files bucket spans pages.
		_, err = r.Push(ctx, copyTree(t, ck), store.PushOptions{Name: "copy", Version: filepath.Base(ck)[len("checkpoint-"):]})
		require.NoError(t, err)
	}
	for _, v := range []string{"100", "400"} {
		_, err = r.Pull(ctx, "run", v, filepath.Join(t.TempDir(), "out"), store.PullOptions{Full: true})
		require.NoError(t, err)
	}
	_, err = r.Verify(ctx, allRecords(t, r), true)
	require.NoError(t, err)
	require.NoError(t, ix.Close())
	fx.pristine, err = os.ReadFile(fx.path)
	require.NoError(t, err)
	return fx
}

// copyTree copies a checkpoint folder (aged, so its stat entries are kept).
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	for rel, data := range testutil.ReadTree(t, src) {
		p := filepath.Join(dst, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
	age(t, dst)
	return dst
}

// warnings collects what the index reports.
type warnings struct{ errs []error }

func (w *warnings) add(err error) { w.errs = append(w.errs, err) }

// TestCorruptIndexIsACacheMiss damages the index file in every way of
// bolttest.Corruptions, then pushes, pulls, verifies, lists and
// collects garbage through it: every result is what it would be without
// an index, nothing panics, and structural damage is reported once, with
// the file moved aside.
func TestCorruptIndexIsACacheMiss(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			fx := newIndexFixture(t, nb)
			ctx := context.Background()
			for i, c := range bolttest.Corruptions(t, fx.pristine, 9, 12) {
				t.Run(c.Name, func(t *testing.T) {
					dir := t.TempDir()
					path := filepath.Join(dir, "index.db")
					require.NoError(t, os.WriteFile(path, c.Data, 0o644))
					var w warnings
					ix, err := store.OpenIndexWith(path, store.IndexOptions{Warn: w.add})
					require.NoError(t, err)
					r, err := store.Open(ctx, fx.b, store.Options{Index: ix, Workers: 4})
					require.NoError(t, err)

					// A push through the damaged cache records what a push
					// without one records, and stores every blob.
					ck := fx.ckpts[i%len(fx.ckpts)]
					want, err := store.ScanFolder(ctx, ck)
					require.NoError(t, err)
					_, wantID, err := want.Encode()
					require.NoError(t, err)
					res, err := r.Push(ctx, ck, store.PushOptions{Name: fmt.Sprintf("again-%d", i), Version: "1"})
					require.NoError(t, err)
					assert.Equal(t, wantID, res.Record.Manifest, "the damaged stat cache changed what was recorded")

					out := filepath.Join(t.TempDir(), "out")
					_, err = r.Pull(ctx, "run", "200", out, store.PullOptions{Full: true})
					require.NoError(t, err)
					assert.Equal(t, testutil.ReadTree(t, fx.ckpts[1]), testutil.ReadTree(t, out))
					recs := allRecords(t, r)
					_, err = r.Verify(ctx, recs, true)
					require.NoError(t, err)
					_, err = r.GC(ctx, store.GCOptions{})
					require.NoError(t, err)
					_, err = r.Resolve(ctx, "run", "best")
					require.NoError(t, err)
					require.NoError(t, ix.Close())

					aside, _ := filepath.Glob(path + ".corrupt-*")
					switch c.Detect {
					case bolttest.Structural:
						require.Len(t, w.errs, 1, "one warning for a damaged file")
						var ce *store.CorruptIndexError
						require.True(t, errors.As(w.errs[0], &ce), "%v", w.errs[0])
						assert.Len(t, aside, 1, "the damaged file is moved aside")
						assert.Contains(t, w.errs[0].Error(), "is corrupt; moved aside to "+path+".corrupt-")
					case bolttest.Undetectable:
						assert.Empty(t, w.errs)
						assert.Empty(t, aside)
					default:
						assert.LessOrEqual(t, len(w.errs), 1)
						assert.Len(t, aside, len(w.errs))
					}
					for _, e := range w.errs {
						assert.True(t, strings.HasPrefix(e.Error(), "the per-machine cache "+path+" is corrupt"), e.Error())
					}
				})
			}
		})
	}
}
