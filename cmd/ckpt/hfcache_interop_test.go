package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/hfcache/hfcachetest"
	"github.com/ckptdev/ckpt/internal/testutil"
)

// TestInteropPullHFCacheHubJS checks what ckpt pull --hf-cache writes with
// a Hugging Face client no one here wrote, @huggingface/hub: its
// scanCacheDir lists each repo, the revision pull printed with the branch
// pointing at it, and every file with its size; its cached-file lookup
// (downloadFileToCacheDir, every network request refused) resolves each
// file at that revision to the bytes a plain pull writes. Two models go
// into one cache: a base imported from a hand-built cache (back under its
// Hub id) and a fine-tune whose config and tokenizer come from that base
// (under --hf-repo, on branch best).
func TestInteropPullHFCacheHubJS(t *testing.T) {
	pkgDir := hfcachetest.InstallHubJS(t)
	c := newCLI(t)
	base, ckpts := writeRun(t, true)
	src := filepath.Join(t.TempDir(), "src-hub")
	hfcachetest.Build(t, src, "org/base", hfcachetest.Commit("base"), "main", base)
	c.ok("init")
	c.ok("import-hf", "org/base", "base@1", "--cache-dir", src)
	for _, ck := range ckpts {
		c.ok("push", ck, "run", "--base", "base@1")
	}

	cache := filepath.Join(t.TempDir(), "hub")
	type pulled struct {
		out  pullHFCacheOutput
		want map[string][]byte
	}
	var models []pulled
	for _, args := range [][]string{
		{"base@1"},
		{"run@best", "--hf-repo", "me/run", "--hf-revision", "best"},
	} {
		var p pulled
		require.NoError(t, json.Unmarshal([]byte(c.ok(append([]string{"pull", "--hf-cache", "--cache-dir", cache, "--json"}, args...)...)), &p.out))
		dir := filepath.Join(t.TempDir(), "plain")
		c.ok("pull", args[0], dir)
		p.want = testutil.ReadTree(t, dir)
		require.Len(t, p.out.Files, len(p.want))
		models = append(models, p)
	}
	require.Equal(t, "org/base", models[0].out.HFRepo)
	require.Equal(t, "me/run", models[1].out.HFRepo)

	req := hfcachetest.HubJSRequest{Scan: []string{cache}}
	for _, m := range models {
		for p := range m.want {
			req.Lookups = append(req.Lookups, hfcachetest.HubJSLookup{CacheDir: cache, Repo: m.out.HFRepo, Path: p, Revision: m.out.HFRevision})
		}
	}
	out := hfcachetest.RunHubJS(t, pkgDir, map[string]string{"HF_HUB_CACHE": cache, "HF_HUB_OFFLINE": "1"}, req)

	require.Len(t, out.Scans, 1)
	scan := out.Scans[0]
	assert.Empty(t, scan.Warnings)
	repos := map[string]hfcachetest.HubJSRepo{}
	for _, r := range scan.Repos {
		repos[r.Name] = r
	}
	require.Len(t, repos, 2)
	for _, m := range models {
		repo, ok := repos[m.out.HFRepo]
		require.True(t, ok, "scanCacheDir lists %s", m.out.HFRepo)
		assert.Equal(t, "model", repo.Type)
		require.Len(t, repo.Revisions, 1, m.out.HFRepo)
		rev := repo.Revisions[0]
		assert.Equal(t, m.out.HFRevision, rev.Commit)
		assert.Equal(t, []string{m.out.HFBranch}, rev.Refs)
		sizes := map[string]int64{}
		for _, f := range rev.Files {
			sizes[f.Path] = f.Size
		}
		want := map[string]int64{}
		for p, data := range m.want {
			want[p] = int64(len(data))
		}
		assert.Equal(t, want, sizes, "%s: the files scanCacheDir lists, with sizes", m.out.HFRepo)
	}

	require.Len(t, out.Lookups, len(req.Lookups))
	for _, l := range out.Lookups {
		var want []byte
		for _, m := range models {
			if m.out.HFRepo == l.Repo {
				want = m.want[l.Path]
			}
		}
		assert.Empty(t, l.Error, "%s %s", l.Repo, l.Path)
		assert.Empty(t, l.Requests, "%s %s: no request", l.Repo, l.Path)
		assert.Equal(t, int64(len(want)), l.Size, "%s %s", l.Repo, l.Path)
		sum := sha256.Sum256(want)
		assert.Equal(t, hex.EncodeToString(sum[:]), l.SHA256, "%s %s: the bytes node read", l.Repo, l.Path)
	}
}
