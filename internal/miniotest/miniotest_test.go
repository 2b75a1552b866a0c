package miniotest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMissingBinaryFails(t *testing.T) {
	tests := []struct {
		name string
		bin  string
	}{
		{"absent", filepath.Join(t.TempDir(), "no-minio")},
		{"folder", t.TempDir()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CKPT_MINIO_BIN", tt.bin)
			_, err := StartServer()
			require.Error(t, err)
			assert.Contains(t, err.Error(), InstallHint)
		})
	}
}

// Without a binary (CKPT_MINIO_BIN unset, no bin/minio in the module), a
// MinIO test skips with the message saying how to get one, unless CI or
// make test requires MinIO.
func TestNoBinarySkipsUnlessRequired(t *testing.T) {
	module := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(module, "go.mod"), []byte("module x\n"), 0o644))
	t.Chdir(module)
	t.Setenv("CKPT_MINIO_BIN", "")
	tests := []struct {
		name, ci, require string
		skip              bool
	}{
		{"skips", "", "", true},
		{"CI", "true", "", false},
		{"make test", "", "1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			t.Setenv("CKPT_REQUIRE_MINIO", tt.require)
			_, err := StartServer()
			require.ErrorIs(t, err, ErrNoBinary)
			assert.Contains(t, err.Error(), InstallHint)
			assert.Equal(t, !tt.skip, Required())
			assert.Equal(t, tt.skip, Skippable(err))
			if !tt.skip {
				return
			}
			var skipped bool
			t.Run("Start", func(t *testing.T) {
				defer func() { skipped = t.Skipped() }()
				Start(t)
			})
			assert.True(t, skipped, "Start skips the test")
		})
	}
	assert.NotContains(t, SkipMessage, "\n", "one line")
	assert.Contains(t, SkipMessage, "CKPT_MINIO_BIN")
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(root, "go.mod"))
	assert.FileExists(t, filepath.Join(root, "internal", "miniotest", "miniotest.go"))
}

func healthy(endpoint string) bool {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(endpoint + "/minio/health/cluster")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	require.True(t, healthy(s.Endpoint))
	require.True(t, strings.HasPrefix(s.Endpoint, "http://127.0.0.1:"), s.Endpoint)
	require.NotEmpty(t, s.AccessKey)
	require.GreaterOrEqual(t, len(s.SecretKey), 20)

	// The server got a clean environment: no ambient AWS_* or MINIO_*
	// variable except its own credentials.
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	environ, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err == nil {
		for _, kv := range bytes.Split(environ, []byte{0}) {
			v := string(kv)
			assert.False(t, strings.HasPrefix(v, "AWS_"), "ambient variable reached MinIO: %s", v)
			if strings.HasPrefix(v, "MINIO_") {
				assert.Contains(t, []string{"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "MINIO_BROWSER", "MINIO_UPDATE"},
					strings.SplitN(v, "=", 2)[0])
			}
		}
	}

	bucket := s.NewBucket(t)
	other := s.NewBucket(t)
	require.NotEqual(t, bucket, other)

	client, err := s.Client()
	require.NoError(t, err)
	ctx := context.Background()
	_, err = client.PutObject(ctx, bucket, "a/b", strings.NewReader("hello"), 5, minio.PutObjectOptions{})
	require.NoError(t, err)

	s.Stop()
	require.False(t, healthy(s.Endpoint))
	s.Stop() // stopping twice is fine

	s.Restart(t)
	require.True(t, healthy(s.Endpoint))
	obj, err := client.GetObject(ctx, bucket, "a/b", minio.GetObjectOptions{})
	require.NoError(t, err)
	data, err := io.ReadAll(obj)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(data))

	log, err := os.ReadFile(s.LogFile)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(log), "=== miniotest: starting MinIO"))
	assert.NotContains(t, s.LogTail(10000), s.SecretKey)
}
