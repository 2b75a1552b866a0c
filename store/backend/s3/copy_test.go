package s3_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/backend"
)

// TestPlainCopyObjectOverwrites pins why CopyFrom is a one-part multipart
// upload: MinIO ignores If-None-Match on CopyObject and replaces the
// destination, so a plain server-side copy cannot be create-only there.
// (The multipart completion honours it; the conformance suite checks
// CopyFrom's create-only behaviour.) Should MinIO start refusing, this test
// fails, and CopyObject with If-None-Match becomes an option.
func TestPlainCopyObjectOverwrites(t *testing.T) {
	needMinio(t)
	ctx := context.Background()
	client, err := srv.Client()
	require.NoError(t, err)
	bucket := srv.NewBucket(t)
	for key, data := range map[string]string{"src": "new bytes", "dst": "old bytes"} {
		_, err := client.PutObject(ctx, bucket, key, bytes.NewReader([]byte(data)), int64(len(data)), minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	core := minio.Core{Client: client}
	_, err = core.CopyObject(ctx, bucket, "src", bucket, "dst", map[string]string{"If-None-Match": "*"}, minio.CopySrcOptions{}, minio.PutObjectOptions{})
	require.NoError(t, err, "MinIO refused a CopyObject with If-None-Match: * over an existing object")
	obj, err := client.GetObject(ctx, bucket, "dst", minio.GetObjectOptions{})
	require.NoError(t, err)
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, "new bytes", string(got), "the destination was replaced despite If-None-Match: *")
}

// TestCopyFromChecksTheBytesCopied: a source replaced between the caller's
// read and the copy gives ErrCopyMismatch, and nothing is created.
func TestCopyFromChecksTheBytesCopied(t *testing.T) {
	src := newBackend(t, config(t, srv))
	cfg := config(t, srv)
	dst := newBackend(t, cfg)
	read := []byte("the bytes the caller read and verified")
	require.NoError(t, src.Put(t.Context(), "blobs/aa/x", bytes.NewReader(read), int64(len(read))))
	want := backend.CopyCheck{Size: int64(len(read)), MD5: md5.Sum(read)}
	// Someone who can write the source replaces the object, same length.
	require.NoError(t, src.Delete(t.Context(), "blobs/aa/x"))
	swapped := bytes.ToUpper(read)
	require.NoError(t, src.Put(t.Context(), "blobs/aa/x", bytes.NewReader(swapped), int64(len(swapped))))

	err := dst.CopyFrom(t.Context(), src, "blobs/aa/x", "blobs/aa/x", want)
	require.ErrorIs(t, err, backend.ErrCopyMismatch)
	_, err = dst.Stat(t.Context(), "blobs/aa/x")
	require.ErrorIs(t, err, backend.ErrNotFound)
	requireNoUploads(t, srv, cfg.Bucket)
}
