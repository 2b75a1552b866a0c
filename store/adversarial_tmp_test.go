package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend/local"
)

// TestPushRemovesStaleTemporaryFiles: partial files a killed push left in
// the local registry's .tmp folder are removed by the next push (and gc)
// once older than the grace period, by the storage's own clock; younger
// ones may belong to a push in flight and stay.
func TestPushRemovesStaleTemporaryFiles(t *testing.T) {
	for _, grace := range []time.Duration{0, 10 * time.Minute} {
		t.Run(grace.String(), func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "registry")
			b, err := local.New(root)
			require.NoError(t, err)
			b.TempGrace = grace
			effective := grace
			if effective == 0 {
				effective = local.DefaultTempGrace
			}
			ctx := context.Background()
			r, _, err := store.Init(ctx, b, store.Options{Workers: 2})
			require.NoError(t, err)
			_, ckpts := tinyRun(t, 43, nil)

			tmp := filepath.Join(root, ".tmp")
			plant := func(name string, age time.Duration) string {
				p := filepath.Join(tmp, name)
				require.NoError(t, os.WriteFile(p, []byte("partial"), 0o644))
				when := time.Now().Add(-age)
				require.NoError(t, os.Chtimes(p, when, when))
				return p
			}
			staleA := plant("put-aaaaaa-1", effective+time.Minute)
			staleB := plant("put-bbbbbb-2", 48*time.Hour)
			fresh := plant("put-cccccc-3", effective-time.Minute)
			justNow := plant("put-dddddd-4", 0)

			_, err = r.Push(ctx, ckpts[0], store.PushOptions{Name: "run"})
			require.NoError(t, err)
			assert.NoFileExists(t, staleA)
			assert.NoFileExists(t, staleB)
			assert.FileExists(t, fresh)
			assert.FileExists(t, justNow)

			// gc does the same, except a dry run, which deletes nothing.
			staleC := plant("put-eeeeee-5", effective+time.Hour)
			_, err = r.GC(ctx, store.GCOptions{DryRun: true})
			require.NoError(t, err)
			assert.FileExists(t, staleC)
			_, err = r.GC(ctx, store.GCOptions{})
			require.NoError(t, err)
			assert.NoFileExists(t, staleC)
			assert.FileExists(t, fresh)
			entries, err := os.ReadDir(tmp)
			require.NoError(t, err)
			assert.Len(t, entries, 2, "only the young files are left")
		})
	}
}
