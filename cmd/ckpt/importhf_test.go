package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/hfcache/hfcachetest"
	"github.com/ckptdev/ckpt/internal/testutil"
)

// TestPushSaysHowManyFilesCameThroughSymlinks pushes a snapshot folder of
// a hand-built Hugging Face cache, whose files all link to ../../blobs/.
func TestPushSaysHowManyFilesCameThroughSymlinks(t *testing.T) {
	c := newCLI(t)
	base, _ := writeRun(t, false)
	files := testutil.ReadTree(t, base)
	snap := hfcachetest.Build(t, filepath.Join(t.TempDir(), "hub"), "org/base", hfcachetest.Commit("b"), "main", base)
	c.ok("init")

	out := c.ok("push", snap.Dir, "base@1")
	assert.Contains(t, out, "pushed base@1")
	assert.Regexp(t, `symlinks +`+strconv.Itoa(len(files))+` of them read through symbolic links`, out)

	var pushed pushOutput
	require.NoError(t, json.Unmarshal([]byte(c.ok("push", snap.Dir, "base@2", "--json")), &pushed))
	assert.Equal(t, len(files), pushed.SymlinkedFiles)
	assert.Equal(t, len(files), pushed.Files)

	plain := c.ok("push", base, "base@3")
	assert.NotContains(t, plain, "symlinks", "a folder without links says nothing about them")
}
