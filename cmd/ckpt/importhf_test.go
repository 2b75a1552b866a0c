package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/hfcache"
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

// TestImportHFCommand imports a model from a hand-built Hugging Face
// cache, found through HF_HUB_CACHE or --cache-dir: the branch resolves
// to its commit, the version is the commit's first 12 hex digits, and
// show and ls print the repo id and commit.
func TestImportHFCommand(t *testing.T) {
	c := newCLI(t)
	base, _ := writeRun(t, false)
	cache := filepath.Join(t.TempDir(), "hub")
	commit := hfcachetest.Commit("gpt2")
	hfcachetest.Build(t, cache, "openai-community/gpt2", commit, "main", base)
	t.Setenv("HF_HUB_CACHE", cache)
	c.ok("init")

	out := c.ok("import-hf", "openai-community/gpt2", "gpt2")
	assert.Contains(t, out, "found openai-community/gpt2 at commit "+commit+" (main)")
	assert.Contains(t, out, "pushed gpt2@"+commit[:12])
	assert.Contains(t, c.ok("import-hf", "openai-community/gpt2@"+commit, "gpt2"), "nothing to do")

	show := c.ok("show", "gpt2@latest")
	assert.Contains(t, show, "hf        openai-community/gpt2 at commit "+commit)
	assert.Contains(t, c.ok("ls", "gpt2"), "hf:openai-community/gpt2@"+commit[:12])

	t.Setenv("HF_HUB_CACHE", filepath.Join(t.TempDir(), "empty"))
	var imported importHFOutput
	require.NoError(t, json.Unmarshal([]byte(c.ok("import-hf", "openai-community/gpt2", "gpt2@v1", "--cache-dir", cache, "--tag", "hub", "--json")), &imported))
	assert.Equal(t, "openai-community/gpt2", imported.HFRepo)
	assert.Equal(t, commit, imported.HFCommit)
	assert.Equal(t, "main", imported.HFRef)
	require.NotNil(t, imported.Record.HF)
	assert.Equal(t, commit, imported.Record.HF.Revision)
	assert.Equal(t, "v1", imported.Record.Version)
	assert.Contains(t, c.ok("show", "gpt2@hub"), "hf        openai-community/gpt2")

	code, _, errs := c.run("import-hf", "openai-community/gpt2", "other")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "hf download")
	code, _, errs = c.run("import-hf", "bad--id", "other")
	assert.Equal(t, 2, code, errs)
	code, _, _ = c.run("import-hf", "openai-community/gpt2", "other@latest")
	assert.Equal(t, 2, code)
}

// TestPullHFCacheCommand pulls into a Hugging Face cache: under the repo
// id recorded at import by default, under ckpt/NAME for a checkpoint that
// was not imported, under --hf-repo and --hf-revision when given; and
// refuses a DIR with --hf-cache, and a checkpoint that is not runnable.
func TestPullHFCacheCommand(t *testing.T) {
	c := newCLI(t)
	base, ckpts := writeRun(t, true)
	files := testutil.ReadTree(t, base)
	src := filepath.Join(t.TempDir(), "hub")
	hfcachetest.Build(t, src, "org/base", hfcachetest.Commit("base"), "main", base)
	c.ok("init")
	c.ok("import-hf", "org/base", "base@1", "--cache-dir", src)
	c.ok("push", ckpts[0], "run", "--base", "base@1")
	c.ok("push", ckpts[1], "lonely")

	cache := filepath.Join(t.TempDir(), "out-hub")
	t.Setenv("HF_HUB_CACHE", cache)
	out := c.ok("pull", "base@1", "--hf-cache")
	assert.Contains(t, out, "into the Hugging Face cache as org/base, revision ")
	assert.Equal(t, files, snapshotFiles(t, cache, "org/base", "main"))
	assert.Contains(t, c.ok("pull", "base@1", "--hf-cache"), "pulled base@1", "a second pull succeeds")

	other := filepath.Join(t.TempDir(), "other-hub")
	var pulled pullHFCacheOutput
	require.NoError(t, json.Unmarshal([]byte(c.ok("pull", "run@best", "--hf-cache", "--cache-dir", other, "--hf-revision", "best", "--json")), &pulled))
	assert.Equal(t, "ckpt/run", pulled.HFRepo)
	assert.Equal(t, "best", pulled.HFBranch)
	assert.Len(t, pulled.HFRevision, 40)
	got := snapshotFiles(t, other, "ckpt/run", "best")
	assert.Equal(t, files["config.json"], got["config.json"], "config inherited from the base")
	assert.Contains(t, got, "model.safetensors")

	c.ok("pull", "run@best", "--hf-cache", "--cache-dir", other, "--hf-repo", "me/run-best")
	assert.Equal(t, got, snapshotFiles(t, other, "me/run-best", "main"))

	code, _, errs := c.run("pull", "base@1", t.TempDir(), "--hf-cache")
	assert.Equal(t, 2, code, errs)
	code, _, errs = c.run("pull", "base@1")
	assert.Equal(t, 2, code, errs)
	code, _, errs = c.run("pull", "base@1", "--hf-cache", "--hf-repo", "a--b")
	assert.Equal(t, 2, code, errs)
	code, _, errs = c.run("pull", "lonely@latest", "--hf-cache", "--cache-dir", other)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "not runnable")
	assert.Contains(t, errs, "--allow-incomplete")
	assert.NoDirExists(t, filepath.Join(other, "models--ckpt--lonely"))
}

// snapshotFiles reads repo at branch from the cache with hfcache's reader.
func snapshotFiles(t *testing.T, cache, repo, branch string) map[string][]byte {
	t.Helper()
	snap, err := hfcache.FindSnapshot(cache, repo, branch)
	require.NoError(t, err)
	out := map[string][]byte{}
	for _, f := range snap.Files {
		data, err := os.ReadFile(filepath.Join(snap.Dir, filepath.FromSlash(f.Path)))
		require.NoError(t, err)
		out[f.Path] = data
	}
	return out
}

// TestPullHFCacheProgressLines: pull --hf-cache with stderr not a terminal
// prints plain progress lines, as every transfer does, and --json keeps
// stdout one JSON document.
func TestPullHFCacheProgressLines(t *testing.T) {
	c := newCLI(t)
	base, _ := writeRun(t, true)
	c.ok("push", base, "base@1")
	clk := newFakeClock()
	clk.step = 6 * time.Second // every look at the clock is 6 s later
	saved := progressClock
	progressClock = clk
	t.Cleanup(func() { progressClock = saved })

	redirected, err := os.Create(filepath.Join(t.TempDir(), "stderr.log"))
	require.NoError(t, err)
	defer redirected.Close()
	var stdout, stderr bytes.Buffer
	a := newApp()
	a.stdout, a.stderr, a.progressTo = &stdout, &stderr, redirected
	root := a.rootCommand()
	root.SetArgs([]string{"--repo", c.repo, "pull", "base@1", "--hf-cache", "--hf-repo", "org/base", "--cache-dir", filepath.Join(t.TempDir(), "hub"), "--json"})
	err = root.ExecuteContext(context.Background())
	a.close()
	require.NoError(t, err, stderr.String())

	var out pullHFCacheOutput
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &out), "stdout is one JSON document: %q", stdout.String())
	got := lines(stderr.String())
	require.GreaterOrEqual(t, len(got), 2, "a progress line and the summary: %q", stderr.String())
	assert.Regexp(t, `^ckpt: pull [0-9.]+ [KMG]?i?B / [0-9.]+ [KMG]?i?B \([0-9]+%\), [0-9.]+ [KMG]?i?B/s, ETA `, got[0])
	assert.Regexp(t, `^ckpt: pull moved [0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]?i?B \(100%\) in `, got[len(got)-1])
}
