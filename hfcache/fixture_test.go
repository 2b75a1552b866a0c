package hfcache

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// handCache builds a Hugging Face cache by hand, file by file, as the
// published layout describes it (huggingface/hub-docs, docs/hub/local-cache.md),
// without this package's writer.
type handCache struct {
	t   *testing.T
	dir string
}

func newHandCache(t *testing.T) *handCache {
	t.Helper()
	return &handCache{t: t, dir: filepath.Join(t.TempDir(), "hub")}
}

func (c *handCache) path(parts ...string) string {
	return filepath.Join(append([]string{c.dir}, parts...)...)
}

func (c *handCache) mkdir(parts ...string) string {
	c.t.Helper()
	p := c.path(parts...)
	require.NoError(c.t, os.MkdirAll(p, 0o755))
	return p
}

func (c *handCache) write(data []byte, parts ...string) string {
	c.t.Helper()
	p := c.path(parts...)
	require.NoError(c.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(c.t, os.WriteFile(p, data, 0o644))
	return p
}

// blob stores data in folder's blobs/ under name and returns name.
func (c *handCache) blob(folder, name string, data []byte) string {
	c.t.Helper()
	c.write(data, folder, "blobs", name)
	return name
}

// link makes snapshots/<commit>/<file> a relative symlink to the blob, as
// Hub clients do: ../../blobs/<name>, one more ../ per folder of file.
func (c *handCache) link(folder, commit, file, blobName string) {
	c.t.Helper()
	c.symlink(strings.Repeat("../", strings.Count(file, "/")+2)+"blobs/"+blobName, folder, "snapshots", commit, file)
}

func (c *handCache) symlink(target string, parts ...string) string {
	c.t.Helper()
	p := c.path(parts...)
	require.NoError(c.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(c.t, os.Symlink(target, p))
	return p
}

// ref writes refs/<name> holding commit exactly as given.
func (c *handCache) ref(folder, name, content string) string {
	c.t.Helper()
	return c.write([]byte(content), append([]string{folder, "refs"}, strings.Split(name, "/")...)...)
}

func (c *handCache) realBlob(folder, name string) string {
	c.t.Helper()
	p, err := filepath.EvalSymlinks(c.path(folder, "blobs", name))
	require.NoError(c.t, err)
	return p
}

// gitBlobSHA1 is the git object id of a file: the etag the Hub gives a
// file kept in git rather than LFS.
func gitBlobSHA1(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// The spec's example repository: two snapshots sharing the LFS weights,
// each with its own README (git blobs), refs/main at the newer one, a pull
// request ref and a .no_exist marker; plus, in the newer snapshot, a
// nested LFS file.
const (
	specFolder = "models--julien-c--EsperBERTo-small"
	specRepo   = "julien-c/EsperBERTo-small"
	oldCommit  = "2439f60ef33a0d46d85da5001d52aeda5b00ce9f"
	newCommit  = "bbc77c8132af1cc5cf678da3f1ddf2de43606d48"
)

type specRepoFiles struct {
	oldReadme, newReadme, weights, onnx []byte
}

func buildSpecRepo(c *handCache) specRepoFiles {
	c.t.Helper()
	f := specRepoFiles{
		oldReadme: []byte("# EsperBERTo\n"),
		newReadme: []byte("# EsperBERTo-small\n\nA small RoBERTa-like model trained on Esperanto.\n"),
		weights:   []byte(strings.Repeat("\x00\x01weights", 4096)),
		onnx:      []byte(strings.Repeat("onnx-graph", 777)),
	}
	c.mkdir(".locks", specFolder)
	oldReadme := c.blob(specFolder, gitBlobSHA1(f.oldReadme), f.oldReadme)
	newReadme := c.blob(specFolder, gitBlobSHA1(f.newReadme), f.newReadme)
	weights := c.blob(specFolder, sha256Hex(f.weights), f.weights)
	onnx := c.blob(specFolder, sha256Hex(f.onnx), f.onnx)
	c.link(specFolder, oldCommit, "README.md", oldReadme)
	c.link(specFolder, oldCommit, "pytorch_model.bin", weights)
	c.link(specFolder, newCommit, "README.md", newReadme)
	c.link(specFolder, newCommit, "pytorch_model.bin", weights)
	c.link(specFolder, newCommit, "onnx/model.onnx", onnx)
	c.ref(specFolder, "main", newCommit)
	c.ref(specFolder, "refs/pr/1", oldCommit)
	c.write(nil, specFolder, ".no_exist", oldCommit, "optional_config.json")
	return f
}
