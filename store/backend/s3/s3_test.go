package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/miniotest"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/backendtest"
	"github.com/ckptdev/ckpt/store/backend/s3"
)

// srv is the MinIO shared by the package's tests (the one that stops its
// server runs its own). It is nil when there is no MinIO binary and MinIO
// is not required (miniotest.Required): the tests that need it skip
// (needMinio), the others run.
var srv *miniotest.Server

func TestMain(m *testing.M) {
	os.Exit(miniotest.Main(m, "store/backend/s3", func(s *miniotest.Server) {
		srv = s
	}))
}

const (
	testPrefix = "reg/v1"
	partSize   = s3.MinPartSize
	// largeSize goes multipart in two parts of unequal sizes.
	largeSize = partSize + 2<<20 + 12345
)

// testRetry keeps failing tests fast.
var testRetry = s3.RetryPolicy{MaxAttempts: 4, BaseDelay: 2 * time.Millisecond, MaxDelay: 20 * time.Millisecond}

// needMinio skips t when the package has no MinIO.
func needMinio(t *testing.T) {
	t.Helper()
	if srv == nil {
		t.Skip(miniotest.SkipMessage)
	}
}

// config returns the configuration of a backend on a fresh bucket of s.
func config(t *testing.T, s *miniotest.Server) s3.Config {
	needMinio(t)
	return s3.Config{
		Bucket:      s.NewBucket(t),
		Prefix:      testPrefix,
		Endpoint:    s.Endpoint,
		Region:      miniotest.Region,
		Creds:       s.Creds(),
		Retry:       testRetry,
		PartSize:    partSize,
		Concurrency: 3,
	}
}

func newBackend(t *testing.T, cfg s3.Config) *s3.Backend {
	t.Helper()
	b, err := s3.New(t.Context(), cfg)
	require.NoError(t, err)
	return b
}

// requireNoUploads checks that no multipart upload was left incomplete in
// the bucket: failed uploads are aborted.
func requireNoUploads(t *testing.T, s *miniotest.Server, bucket string) {
	t.Helper()
	client, err := s.Client()
	require.NoError(t, err)
	var left []string
	for u := range client.ListIncompleteUploads(context.Background(), bucket, "", true) {
		require.NoError(t, u.Err)
		left = append(left, u.Key+" "+u.UploadID)
	}
	assert.Empty(t, left, "incomplete multipart uploads left in %s", bucket)
}

func TestConformance(t *testing.T) {
	needMinio(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		cfg := config(t, srv)
		t.Cleanup(func() { requireNoUploads(t, srv, cfg.Bucket) })
		return newBackend(t, cfg)
	}, backendtest.Options{LargeObjectSize: largeSize})
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url            string
		bucket, prefix string
		wantErr        string
	}{
		{url: "s3://bkt", bucket: "bkt"},
		{url: "s3://bkt/", bucket: "bkt"},
		{url: "s3://bkt/ckpt", bucket: "bkt", prefix: "ckpt"},
		{url: "s3://my-bucket.data/team/ckpt/", bucket: "my-bucket.data", prefix: "team/ckpt"},
		{url: "s3://bkt/a_b/c-d.e", bucket: "bkt", prefix: "a_b/c-d.e"},
		{url: "", wantErr: "want s3://"},
		{url: "bkt/prefix", wantErr: "want s3://"},
		{url: "http://bkt/prefix", wantErr: "want s3://"},
		{url: "S3://bkt", wantErr: "want s3://"},
		{url: "s3://", wantErr: "no bucket"},
		{url: "s3:///prefix", wantErr: "no bucket"},
		{url: "s3://Bkt/p", wantErr: "bucket"},
		{url: "s3://b/p", wantErr: "bucket"},
		{url: "s3://bkt_1/p", wantErr: "bucket"},
		{url: "s3://bkt:9000/p", wantErr: "port"},
		{url: "s3://bkt/p?versionId=1", wantErr: "query"},
		{url: "s3://bkt/p#x", wantErr: "fragment"},
		{url: "s3://bkt//p", wantErr: "prefix"},
		{url: "s3://bkt/.tmp", wantErr: "prefix"},
		{url: "s3://bkt/a b", wantErr: "prefix"},
		{url: "s3://bkt/a/../b", wantErr: "prefix"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.url), func(t *testing.T) {
			bucket, prefix, err := s3.ParseURL(tt.url)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.bucket, bucket)
			assert.Equal(t, tt.prefix, prefix)
		})
	}
	t.Run("CredentialsNotEchoed", func(t *testing.T) {
		_, _, err := s3.ParseURL("s3://AKIAEXAMPLE:hunter2secret@bkt/p")
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "hunter2secret")
		assert.NotContains(t, err.Error(), "AKIAEXAMPLE")
	})
}

func TestNewValidation(t *testing.T) {
	needMinio(t)
	bucket := srv.NewBucket(t)
	valid := s3.Config{Bucket: bucket, Endpoint: srv.Endpoint, Region: miniotest.Region, Creds: srv.Creds(), Retry: testRetry}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, []byte("not a certificate"), 0o644))
	tests := []struct {
		name    string
		edit    func(*s3.Config)
		wantErr string
	}{
		{"Valid", func(*s3.Config) {}, ""},
		{"PrefixSlashesTrimmed", func(c *s3.Config) { c.Prefix = "/a/b/" }, ""},
		{"BadBucketName", func(c *s3.Config) { c.Bucket = "x" }, "bucket"},
		{"MissingBucket", func(c *s3.Config) { c.Bucket = "no-such-bucket-here" }, "does not exist"},
		{"BadPrefix", func(c *s3.Config) { c.Prefix = "a/.b" }, "prefix"},
		{"EndpointScheme", func(c *s3.Config) { c.Endpoint = "ftp://127.0.0.1:1" }, "endpoint"},
		{"EndpointNoScheme", func(c *s3.Config) { c.Endpoint = "127.0.0.1:9000" }, "endpoint"},
		{"EndpointPath", func(c *s3.Config) { c.Endpoint = srv.Endpoint + "/bucket" }, "no path"},
		{"PartTooSmall", func(c *s3.Config) { c.PartSize = 1 << 20 }, "part size"},
		{"NegativeConcurrency", func(c *s3.Config) { c.Concurrency = -1 }, "concurrency"},
		{"CAFileWithTransport", func(c *s3.Config) {
			c.Endpoint = "https://127.0.0.1:1"
			c.CAFile = caFile
			c.Transport = &faultRT{}
		}, "CAFile"},
		{"CAFileNotPEM", func(c *s3.Config) { c.Endpoint = "https://127.0.0.1:1"; c.CAFile = caFile }, "no PEM certificate"},
		{"CAFileMissing", func(c *s3.Config) {
			c.Endpoint = "https://127.0.0.1:1"
			c.CAFile = filepath.Join(t.TempDir(), "none.pem")
		}, "CA file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			b, err := s3.New(t.Context(), cfg)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, b.Put(t.Context(), "k", strings.NewReader("v"), 1))
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestLocation(t *testing.T) {
	cfg := config(t, srv)
	b := newBackend(t, cfg)
	assert.Equal(t, "s3://"+cfg.Bucket+"/"+testPrefix+" at "+srv.Endpoint, b.Location())
	cfg.Prefix = ""
	b = newBackend(t, cfg)
	assert.Equal(t, "s3://"+cfg.Bucket+" at "+srv.Endpoint, b.Location())
}

// No error message and no Location ever shows the secret key.
func TestSecretsNeverShown(t *testing.T) {
	cfg := config(t, srv)
	good := newBackend(t, cfg)
	require.NoError(t, good.Put(t.Context(), "k", strings.NewReader("v"), 1))

	secret := srv.SecretKey
	var msgs []string
	check := func(err error) {
		t.Helper()
		require.Error(t, err)
		msgs = append(msgs, err.Error())
	}

	// Wrong secret: New fails at the bucket check.
	bad := cfg
	bad.Creds = credentials.NewStaticV4(srv.AccessKey, secret+"x", "")
	_, err := s3.New(t.Context(), bad)
	check(err)

	// Endpoint with credentials in it.
	withUser := cfg
	withUser.Endpoint = strings.Replace(srv.Endpoint, "http://", "http://"+srv.AccessKey+":"+secret+"@", 1)
	_, err = s3.New(t.Context(), withUser)
	check(err)

	// Server down: every operation fails, naming the key.
	down := cfg
	down.Endpoint = "http://127.0.0.1:1"
	down.Retry = s3.RetryPolicy{MaxAttempts: 1}
	_, err = s3.New(t.Context(), down)
	check(err)

	msgs = append(msgs, good.Location())
	_, err = good.Stat(t.Context(), "missing")
	check(err)
	check(good.Put(t.Context(), "k", strings.NewReader("v"), 1))
	for _, m := range msgs {
		assert.NotContains(t, m, secret)
		assert.NotContains(t, m, secret[:10])
	}
}

// Keys live under the prefix only: other prefixes of the bucket, and
// objects that are not valid keys, are invisible.
func TestPrefixIsolation(t *testing.T) {
	cfg := config(t, srv)
	client, err := srv.Client()
	require.NoError(t, err)
	ctx := t.Context()
	for _, name := range []string{"reg/v1/.hidden", "reg/v1/dir/", "reg/v1x/k", "reg/k", "k"} {
		_, err := client.PutObject(ctx, cfg.Bucket, name, strings.NewReader("foreign"), 7, minio.PutObjectOptions{})
		require.NoError(t, err, name)
	}
	b := newBackend(t, cfg)
	require.NoError(t, b.Put(ctx, "k", strings.NewReader("mine"), 4))

	var keys []string
	require.NoError(t, b.List(ctx, "", func(info backend.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}))
	assert.Equal(t, []string{"k"}, keys)

	rc, err := b.Get(ctx, "k", 0, -1)
	require.NoError(t, err)
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	rc.Close()
	assert.Equal(t, "mine", string(data))

	// The object's real name carries the prefix.
	_, err = client.StatObject(ctx, cfg.Bucket, "reg/v1/k", minio.StatObjectOptions{})
	require.NoError(t, err)

	// No prefix: keys are object names.
	root := cfg
	root.Prefix = ""
	rb := newBackend(t, root)
	keys = nil
	require.NoError(t, rb.List(ctx, "reg/", func(info backend.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}))
	sort.Strings(keys)
	assert.Equal(t, []string{"reg/k", "reg/v1/k", "reg/v1x/k"}, keys)
	require.ErrorIs(t, rb.Put(ctx, "reg/v1/k", bytes.NewReader([]byte("x")), 1), backend.ErrExists)
}
