package store_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/object"
)

// TestPushConfirmsWhatTheCacheKnows: blobs and a manifest deleted from the
// registry behind the per-machine cache's back (a restored or trimmed
// bucket, a lifecycle rule; no gc, so no run marker invalidates the cache)
// are uploaded again by the next push that needs them, whether the cache
// knew them as blobs (push B sharing them) or as a whole unchanged folder
// (A pushed again under another version), before its ref is written.
func TestPushConfirmsWhatTheCacheKnows(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nb)
			_, ckpts := tinyRun(t, 41, func(s *synth.RunSpec) { s.FrozenEmbedding = true })
			for _, ck := range ckpts {
				age(t, ck)
			}
			a := e.push(ckpts[0], "a", store.PushOptions{})
			ma, err := e.r.Manifest(e.ctx, a.Record.Manifest)
			require.NoError(t, err)
			ids := ma.BlobIDs()
			require.Greater(t, len(ids), 4)
			var gone []string
			for i, id := range ids {
				if i%2 == 0 {
					gone = append(gone, object.BlobKey(id))
				}
			}
			gone = append(gone, object.ManifestKey(a.Record.Manifest))
			for _, k := range gone {
				require.NoError(t, e.b.Delete(e.ctx, k))
			}

			b := e.push(ckpts[1], "b", store.PushOptions{})
			again := e.push(ckpts[0], "a", store.PushOptions{Version: "again"})
			assert.Equal(t, a.Record.Manifest, again.Record.Manifest)
			assert.Positive(t, b.NewBlobs+again.NewBlobs, "the deleted blobs were uploaded again")
			for _, k := range gone {
				_, err := e.b.Stat(e.ctx, k)
				assert.NoError(t, err, "%s is back", k)
			}
			rep, err := e.withoutIndex().Verify(e.ctx, allRecords(t, e.r), true)
			require.NoError(t, err)
			assert.Empty(t, rep.Problems)
		})
	}
}

// TestExistenceCheckByListOrStat: the check push runs before publishing
// finds the same missing keys whether it asks for each key or lists their
// folders.
func TestExistenceCheckByListOrStat(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			be := nb(t)
			_, _, err := store.Init(ctx, be, store.Options{Workers: 4})
			require.NoError(t, err)
			var keys, want []string
			for i := 0; i < 600; i++ {
				k := object.BlobKey(object.Hash([]byte(fmt.Sprint("blob ", i))))
				keys = append(keys, k)
				if i%7 == 3 {
					want = append(want, k) // never stored
					continue
				}
				require.NoError(t, be.Put(ctx, k, strings.NewReader("x"), 1))
			}
			sort.Strings(want)
			for _, listAt := range []int{1, 3, 1 << 30} {
				for _, b := range []backend.Backend{be, store.NoCheapStatForTest{Backend: be}} {
					r, err := store.Open(ctx, b, store.Options{Workers: 4})
					require.NoError(t, err)
					got, err := r.MissingKeysForTest(ctx, keys, listAt, 0)
					require.NoError(t, err)
					assert.Equal(t, want, got, "list at %d, %T", listAt, b)
				}
			}
		})
	}
}
