package chaos

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/ckptdev/ckpt/internal/miniotest"
)

// registry is where a campaign's registry lives and how to reach it, both
// for the ckpt binary (repo and environment) and for listing its raw keys.
type registry struct {
	name string
	repo string   // --repo
	env  []string // added to every ckpt process's environment
	// keys lists every object key of the registry, and the files a local
	// registry keeps under .tmp/ (partial writes of killed processes).
	keys func(ctx context.Context) (keys []string, tmpFiles int, err error)
	// put writes an object directly, for staging registry states.
	put func(ctx context.Context, key string, data []byte) error
	// ageTemp, for a local registry, backdates the partial files of killed
	// writes under .tmp/ past any grace period (as if days had passed), so
	// that the next gc must remove them; it returns how many there were.
	ageTemp func() (int, error)
}

func localRegistry(t *testing.T) *registry {
	root := filepath.Join(t.TempDir(), "registry")
	return &registry{
		name: "local",
		repo: root,
		keys: func(ctx context.Context) ([]string, int, error) {
			var keys []string
			tmp := 0
			err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) && p == root {
						return fs.SkipAll
					}
					return err
				}
				if d.IsDir() {
					return nil
				}
				rel, err := filepath.Rel(root, p)
				if err != nil {
					return err
				}
				rel = filepath.ToSlash(rel)
				if strings.HasPrefix(rel, ".tmp/") {
					tmp++
					return nil
				}
				keys = append(keys, rel)
				return nil
			})
			return keys, tmp, err
		},
		ageTemp: func() (int, error) {
			entries, err := os.ReadDir(filepath.Join(root, ".tmp"))
			if err != nil {
				return 0, err
			}
			old := time.Now().Add(-7 * 24 * time.Hour)
			n := 0
			for _, e := range entries {
				if err := os.Chtimes(filepath.Join(root, ".tmp", e.Name()), old, old); err != nil {
					return n, err
				}
				n++
			}
			return n, nil
		},
		put: func(ctx context.Context, key string, data []byte) error {
			p := filepath.Join(root, filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			return os.WriteFile(p, data, 0o444)
		},
	}
}

func minioRegistry(t *testing.T) *registry {
	if minioServer == nil {
		t.Skip(miniotest.SkipMessage)
	}
	srv := minioServer
	bucket := srv.NewBucket(t)
	const prefix = "registry"
	client, err := srv.Client()
	if err != nil {
		t.Fatalf("MinIO client: %v", err)
	}
	return &registry{
		name: "minio",
		repo: "s3://" + bucket + "/" + prefix,
		env: []string{
			"CKPT_S3_ENDPOINT=" + srv.Endpoint,
			"AWS_ACCESS_KEY_ID=" + srv.AccessKey,
			"AWS_SECRET_ACCESS_KEY=" + srv.SecretKey,
			"AWS_REGION=" + miniotest.Region,
		},
		keys: func(ctx context.Context) ([]string, int, error) {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			var keys []string
			for oi := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true}) {
				if oi.Err != nil {
					return nil, 0, oi.Err
				}
				keys = append(keys, strings.TrimPrefix(oi.Key, prefix+"/"))
			}
			return keys, 0, nil
		},
		put: func(ctx context.Context, key string, data []byte) error {
			_, err := client.PutObject(ctx, bucket, prefix+"/"+key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
			return err
		},
	}
}

// baseEnv is the whole environment of a ckpt process: nothing ambient (no
// AWS profile, no proxy, no CKPT_REPO), a private HOME, and the cache.
func baseEnv(home, cache string, extra []string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"TMPDIR=" + os.TempDir(),
		"XDG_CACHE_HOME=" + cache,
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
	}
	return append(env, extra...)
}
