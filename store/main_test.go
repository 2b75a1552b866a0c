package store_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/miniotest"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/s3"
)

// minioServer is one real MinIO for the package; the end-to-end and gc
// tests run against it as well as against a local folder and memory. It is
// nil when there is no MinIO binary and MinIO is not required
// (miniotest.Required): the MinIO tests then skip and the others run.
var minioServer *miniotest.Server

func TestMain(m *testing.M) {
	os.Exit(miniotest.Main(m, "store", func(srv *miniotest.Server) {
		minioServer = srv
		backends["minio"] = newMinio
	}))
}

// newMinio is a fresh registry prefix in a fresh bucket; without MinIO the
// test skips.
func newMinio(t *testing.T) backend.Backend { return newMinioTB(t) }

func newMinioTB(t testing.TB) backend.Backend {
	t.Helper()
	if minioServer == nil {
		t.Skip(miniotest.SkipMessage)
	}
	bucket := minioServer.NewBucket(t)
	b, err := s3.New(context.Background(), s3.Config{
		Bucket: bucket, Prefix: "registry", Endpoint: minioServer.Endpoint, Region: miniotest.Region,
		Creds: minioServer.Creds(), Retry: s3.RetryPolicy{MaxAttempts: 5, BaseDelay: 20 * time.Millisecond, MaxDelay: time.Second},
	})
	require.NoError(t, err)
	return b
}
