package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/miniotest"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/s3"
)

// TestPushSurvivesMinIORestart: MinIO stops in the middle of a push. The
// push fails with a clear error and no checkpoint becomes visible; after a
// restart the same push completes, uploading only what was missing.
func TestPushSurvivesMinIORestart(t *testing.T) {
	srv := miniotest.Start(t) // its own server: this test stops it
	bucket := srv.NewBucket(t)
	open := func(t *testing.T) backend.Backend {
		b, err := s3.New(context.Background(), s3.Config{
			Bucket: bucket, Prefix: "registry", Endpoint: srv.Endpoint, Region: miniotest.Region, Creds: srv.Creds(),
			Retry: s3.RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
		})
		require.NoError(t, err)
		return b
	}
	e := newEnv(t, open)
	_, ckpts := tinyRun(t, 10, nil)

	var blobs atomic.Int64
	stopped := make(chan struct{})
	hooked := &hookBackend{Backend: e.b, beforePut: func(key string) {
		if strings.HasPrefix(key, "blobs/") && blobs.Add(1) == 5 {
			srv.Stop()
			close(stopped)
		}
	}}
	r, err := store.Open(e.ctx, hooked, store.Options{Index: e.ix, Workers: 2})
	require.NoError(t, err)
	_, err = r.Push(e.ctx, ckpts[0], store.PushOptions{Name: "interrupted"})
	<-stopped
	require.Error(t, err)
	assert.Contains(t, err.Error(), "push "+ckpts[0])
	assert.Contains(t, err.Error(), "giving up after")

	require.NoError(t, srv.Launch())
	names, err := e.r.Names(e.ctx)
	require.NoError(t, err)
	assert.Empty(t, names, "a failed push left a visible checkpoint")

	res := e.push(ckpts[0], "interrupted", store.PushOptions{})
	assert.Less(t, res.NewBlobs, res.Chunks, "the second push uploaded everything again")
	assert.Positive(t, res.NewBlobs)
	verifyAll(t, e.r)
	out := filepath.Join(t.TempDir(), "out")
	_, err = e.withoutIndex().Pull(e.ctx, "interrupted", "100", out, store.PullOptions{Full: true})
	require.NoError(t, err)
	assert.Equal(t, testutil.ReadTree(t, ckpts[0]), testutil.ReadTree(t, out))
}
