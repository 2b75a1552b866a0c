package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
)

// listedBytes is the size and count of every object under blobs/ and
// manifests/, straight from the backend.
func listedBytes(t *testing.T, b backend.Backend) (int64, int) {
	t.Helper()
	var size int64
	var n int
	for _, prefix := range []string{"blobs/", "manifests/"} {
		require.NoError(t, b.List(context.Background(), prefix, func(oi backend.ObjectInfo) error {
			size += oi.Size
			n++
			return nil
		}))
	}
	return size, n
}

// TestUsageCountsOnlyReferenced: after retention removed three of six
// checkpoints, and before gc's grace period passed, du's stored bytes are
// those of the objects the refs still reach; the rest is reported apart,
// as unreferenced, and gc frees exactly it.
func TestUsageCountsOnlyReferenced(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nb)
			base, ckpts := tinyRun(t, 10, func(s *synth.RunSpec) {
				s.Steps = []int64{100, 200, 300, 400, 500, 600}
				s.EvalLoss = []float64{2.0, 1.8, 1.6, 1.5, 1.4, 1.3}
				s.WeightsOnly = true
			})
			e.push(base, "base", store.PushOptions{Version: "1"})
			for _, ck := range ckpts {
				e.push(ck, "run", store.PushOptions{Base: "base@1"})
			}
			// The base's ref goes too: run still reaches its manifest and
			// blobs, through each record's base, so they stay referenced.
			_, _, err := e.r.Remove(e.ctx, "base", "1")
			require.NoError(t, err)

			full, err := e.r.Usage(e.ctx)
			require.NoError(t, err)
			total, objects := listedBytes(t, e.b)
			assert.Equal(t, total, full.Stored, "everything is referenced")
			assert.Zero(t, full.Unreferenced)
			assert.Zero(t, full.UnreferencedObjects)
			assert.Equal(t, objects, full.Blobs+full.Manifests)

			plan, err := e.r.RetentionPlan(e.ctx, "run", retention.Policy{KeepLast: 3})
			require.NoError(t, err)
			removed, err := e.r.ApplyPlan(e.ctx, "run", plan)
			require.NoError(t, err)
			require.Equal(t, []string{"100", "200", "300"}, removed)

			before, err := e.r.Usage(e.ctx)
			require.NoError(t, err)
			total, objects = listedBytes(t, e.b)
			assert.Equal(t, 3, before.Checkpoints)
			assert.Less(t, before.Stored, total, "removed checkpoints' objects are not stored data any more")
			assert.Positive(t, before.Unreferenced)
			assert.Equal(t, total-before.Stored, before.Unreferenced)
			assert.Equal(t, objects-before.Blobs-before.Manifests, before.UnreferencedObjects)
			assert.Less(t, before.Unique, full.Unique)
			assert.InDelta(t, float64(before.Unique)/float64(before.Stored), before.CompressionRatio(), 1e-12)

			// Within the grace period gc keeps them: du says the same.
			res, err := e.r.GC(e.ctx, store.GCOptions{})
			require.NoError(t, err)
			require.Zero(t, res.DeletedBlobs+res.DeletedManifests)
			same, err := e.r.Usage(e.ctx)
			require.NoError(t, err)
			assert.Equal(t, before, same)

			res, err = e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
			require.NoError(t, err)
			assert.Equal(t, before.Unreferenced, res.FreedBytes, "gc frees what du calls unreferenced")
			assert.Equal(t, before.UnreferencedObjects, res.DeletedBlobs+res.DeletedManifests)
			after, err := e.r.Usage(e.ctx)
			require.NoError(t, err)
			assert.Zero(t, after.Unreferenced)
			assert.Zero(t, after.UnreferencedObjects)
			assert.Equal(t, before.Stored, after.Stored, "gc freed nothing referenced")
			assert.Equal(t, before.Unique, after.Unique)
			assert.Equal(t, before.Blobs, after.Blobs)
			assert.Equal(t, before.Manifests, after.Manifests)
			total, _ = listedBytes(t, e.b)
			assert.Equal(t, total, after.Stored)
		})
	}
}
