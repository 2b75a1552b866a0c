package hfcache

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCheckPath(t *testing.T) {
	for _, p := range []string{
		"config.json", "onnx/model.onnx", "a/b/c/d.bin", ".gitattributes", "a..b", "ü.txt", "with space.txt", "1:2",
	} {
		assert.NoError(t, CheckPath(p), "%q", p)
	}
	for _, p := range []string{
		"", "/etc/passwd", "../x", "a/../../x", "a/..", "./a", "a/./b", "a//b", "a/", `a\b`, `..\x`,
		"C:foo", "c:/x", "a/D:x", "bad\nname", "esc\x1b[31m", "nul\x00", "del\x7f", "c1\u0085",
		"\xff\xfe", strings.Repeat("a", 4097),
	} {
		assert.Error(t, CheckPath(p), "%q", p)
	}
}

func TestIsCommitHash(t *testing.T) {
	assert.True(t, IsCommitHash("bbc77c8132af1cc5cf678da3f1ddf2de43606d48"))
	for _, s := range []string{
		"", "main", "bbc77c8", "BBC77C8132AF1CC5CF678DA3F1DDF2DE43606D48",
		"bbc77c8132af1cc5cf678da3f1ddf2de43606d48\n", "bbc77c8132af1cc5cf678da3f1ddf2de43606d4g",
		"bbc77c8132af1cc5cf678da3f1ddf2de43606d481",
	} {
		assert.False(t, IsCommitHash(s), "%q", s)
	}
}

func TestIsWithin(t *testing.T) {
	root := filepath.FromSlash("/c/models--a/blobs")
	assert.True(t, isWithin(root, filepath.Join(root, "x")))
	assert.False(t, isWithin(root, root), "the folder itself is no blob")
	assert.False(t, isWithin(root, filepath.FromSlash("/c/models--a/blobsX")))
	assert.False(t, isWithin(root, filepath.FromSlash("/c/models--a/refs/main")))
}
