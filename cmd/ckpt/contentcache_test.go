package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/testutil"
)

// Every pull feeds the one content cache: `pull --link` after a plain pull
// links every file, and the caches of earlier versions (pulled/, files/)
// are taken over and removed.
func TestPullLinkAfterPlainPullUsesContentCache(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false)
	c.ok("init")
	c.ok("push", ckpts[0], "run@1")
	cacheDir := filepath.Join(os.Getenv("XDG_CACHE_HOME"), "ckpt")
	for _, old := range []string{"pulled/ab", "files/tmp"} {
		require.NoError(t, os.MkdirAll(filepath.Join(cacheDir, old), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(cacheDir, old, "left-by-an-earlier-ckpt"), []byte("x"), 0o644))
	}

	plain := filepath.Join(t.TempDir(), "plain")
	c.ok("pull", "run@1", plain)
	assert.NoDirExists(t, filepath.Join(cacheDir, "pulled"))
	assert.NoDirExists(t, filepath.Join(cacheDir, "files"))
	assert.DirExists(t, filepath.Join(cacheDir, "content"))

	linked := filepath.Join(t.TempDir(), "linked")
	out := c.ok("pull", "run@1", linked, "--link")
	n := len(testutil.ReadTree(t, plain))
	assert.Contains(t, out, "materialized from the content cache: "+strconv.Itoa(n)+" by hardlink")
	assert.Equal(t, testutil.ReadTree(t, plain), testutil.ReadTree(t, linked))
}
