package hfbridge_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/miniotest"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/local"
	"github.com/ckptdev/ckpt/store/backend/mem"
	"github.com/ckptdev/ckpt/store/backend/s3"
)

// minioServer is one real MinIO for the package, nil when there is none
// and MinIO is not required (the MinIO cases then skip).
var minioServer *miniotest.Server

func TestMain(m *testing.M) {
	os.Exit(miniotest.Main(m, "hfbridge", func(srv *miniotest.Server) {
		minioServer = srv
	}))
}

type newBackendFunc func(t *testing.T) backend.Backend

// backends are the registries the tests run on: a local folder, memory
// and a real MinIO.
var backends = map[string]newBackendFunc{
	"local": func(t *testing.T) backend.Backend {
		b, err := local.New(filepath.Join(t.TempDir(), "registry"))
		require.NoError(t, err)
		return b
	},
	"mem": func(t *testing.T) backend.Backend { return mem.New() },
	"minio": func(t *testing.T) backend.Backend {
		if minioServer == nil {
			t.Skip(miniotest.SkipMessage)
		}
		b, err := s3.New(context.Background(), s3.Config{
			Bucket: minioServer.NewBucket(t), Prefix: "registry", Endpoint: minioServer.Endpoint, Region: miniotest.Region,
			Creds: minioServer.Creds(), Retry: s3.RetryPolicy{MaxAttempts: 5, BaseDelay: 20 * time.Millisecond, MaxDelay: time.Second},
		})
		require.NoError(t, err)
		return b
	},
}

// newRegistry initializes a registry on b and returns it with a second
// handle without a per-machine index, as another machine sees it.
func newRegistry(t *testing.T, b backend.Backend) (*store.Registry, *store.Registry) {
	t.Helper()
	ix, err := store.OpenIndex(filepath.Join(t.TempDir(), "index.db"))
	require.NoError(t, err)
	t.Cleanup(func() { ix.Close() })
	r, created, err := store.Init(context.Background(), b, store.Options{Index: ix, Workers: 4})
	require.NoError(t, err)
	require.True(t, created)
	other, err := store.Open(context.Background(), b, store.Options{Workers: 4})
	require.NoError(t, err)
	return r, other
}
