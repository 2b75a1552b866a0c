package hfcache

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/hfcache/hfcachetest"
)

// The client and its harness are in hfcachetest (HubJS, RunHubJS), shared
// with the tests of ckpt pull --hf-cache.
type (
	jsLookup = hfcachetest.HubJSLookup
	jsFile   = hfcachetest.HubJSFile
)

// TestInteropHuggingFaceHubJS checks WriteSnapshot's output, and the
// hand-built cache FindSnapshot is tested on, with @huggingface/hub's own
// cache code: scanCacheDir lists the repository, its revision and refs,
// and the files with their sizes; downloadFileToCacheDir resolves every
// file to the right bytes with every network request refused; and, for
// the record, it does go to the network for a branch name, which is why
// the revision must be a commit hash.
func TestInteropHuggingFaceHubJS(t *testing.T) {
	pkgDir := hfcachetest.InstallHubJS(t)

	cache := filepath.Join(t.TempDir(), "hub")
	files := testFiles(t)
	var calls int
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", sources(t, files, &calls)))
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "v1", sources(t, files, &calls)))
	// What a killed writer leaves behind must not disturb the clients.
	require.NoError(t, os.WriteFile(filepath.Join(cache, testFolder, "blobs", ".ckpt-0123456789abcdef.incomplete"), []byte("half"), 0o644))

	hand := newHandCache(t)
	spec := buildSpecRepo(hand)

	var lookups []jsLookup
	for _, f := range files {
		lookups = append(lookups, jsLookup{CacheDir: cache, Repo: testRepo, Path: f.path, Revision: testRevision})
	}
	lookups = append(lookups,
		jsLookup{CacheDir: cache, Repo: testRepo, Path: "config.json", Revision: "main"},
		jsLookup{CacheDir: hand.dir, Repo: specRepo, Path: "README.md", Revision: newCommit},
		jsLookup{CacheDir: hand.dir, Repo: specRepo, Path: "onnx/model.onnx", Revision: newCommit},
		jsLookup{CacheDir: hand.dir, Repo: specRepo, Path: "README.md", Revision: oldCommit},
	)
	out := hfcachetest.RunHubJS(t, pkgDir, map[string]string{"HF_HUB_CACHE": cache, "HF_HUB_OFFLINE": "1"}, hfcachetest.HubJSRequest{
		FolderNames: []string{testRepo, specRepo, "gpt2"},
		Scan:        []string{cache, hand.dir},
		Lookups:     lookups,
	})

	assert.Equal(t, cache, out.CachePath, "getHFHubCachePath with HF_HUB_CACHE set")
	for name, folder := range out.FolderNames {
		id, err := ParseRepoID(name)
		require.NoError(t, err)
		assert.Equal(t, folder, id.FolderName(), "getRepoFolderName(%s)", name)
	}

	t.Run("scanCacheDir on what WriteSnapshot wrote", func(t *testing.T) {
		scan := out.Scans[0]
		assert.Empty(t, scan.Warnings)
		require.Len(t, scan.Repos, 1)
		repo := scan.Repos[0]
		assert.Equal(t, "model", repo.Type)
		assert.Equal(t, testRepo, repo.Name)
		assert.Equal(t, filepath.Join(cache, testFolder), repo.Path)
		require.Len(t, repo.Revisions, 1)
		rev := repo.Revisions[0]
		assert.Equal(t, testRevision, rev.Commit)
		assert.ElementsMatch(t, []string{"main", "v1"}, rev.Refs)

		// @huggingface/hub 2.17.5's scanSnapshotDir lists the files at the
		// top of a snapshot and skips its folders, so nested files such as
		// onnx/model.onnx are not in its listing (huggingface_hub's
		// scan_cache_dir walks them). They are checked by the lookups below.
		blobs := realBlobsDir(t, cache, testFolder)
		want := map[string]jsFile{}
		distinct := map[string]int64{}
		for _, f := range files {
			if strings.Contains(f.path, "/") {
				continue
			}
			sum := sha256Hex(f.data)
			want[f.path] = jsFile{Path: f.path, Size: int64(len(f.data)), Blob: filepath.Join(blobs, sum)}
			distinct[sum] = int64(len(f.data))
		}
		got := map[string]jsFile{}
		for _, f := range rev.Files {
			got[f.Path] = f
		}
		assert.Equal(t, want, got, "the files scanCacheDir lists, with sizes and blobs")
		var size int64
		for _, s := range distinct {
			size += s
		}
		assert.Equal(t, len(distinct), repo.FilesCount, "blobs counted once")
		assert.Equal(t, size, repo.Size)
	})

	t.Run("scanCacheDir on the hand-built cache", func(t *testing.T) {
		scan := out.Scans[1]
		assert.Empty(t, scan.Warnings)
		require.Len(t, scan.Repos, 1)
		repo := scan.Repos[0]
		assert.Equal(t, specRepo, repo.Name)
		sort.Slice(repo.Revisions, func(i, j int) bool { return repo.Revisions[i].Commit < repo.Revisions[j].Commit })
		require.Len(t, repo.Revisions, 2)
		assert.Equal(t, oldCommit, repo.Revisions[0].Commit)
		assert.Empty(t, repo.Revisions[0].Refs, "refs/refs/pr/1 is in a folder, which this client's scanRefsDir skips")
		assert.Equal(t, newCommit, repo.Revisions[1].Commit)
		assert.Equal(t, []string{"main"}, repo.Revisions[1].Refs)
		blobs := realBlobsDir(t, hand.dir, specFolder)
		assert.ElementsMatch(t, []jsFile{
			{Path: "README.md", Size: int64(len(spec.newReadme)), Blob: filepath.Join(blobs, gitBlobSHA1(spec.newReadme))},
			{Path: "pytorch_model.bin", Size: int64(len(spec.weights)), Blob: filepath.Join(blobs, sha256Hex(spec.weights))},
		}, repo.Revisions[1].Files)
	})

	t.Run("downloadFileToCacheDir resolves every file without the network", func(t *testing.T) {
		for i, f := range files {
			l := out.Lookups[i]
			require.Equal(t, f.path, l.Path)
			assert.Empty(t, l.Error, f.path)
			assert.Empty(t, l.Requests, "%s: no request", f.path)
			assert.Equal(t, filepath.Join(cache, testFolder, "snapshots", testRevision, filepath.FromSlash(f.path)), l.Pointer, f.path)
			assert.Equal(t, int64(len(f.data)), l.Size, f.path)
			assert.Equal(t, sha256Hex(f.data), l.SHA256, "%s: the bytes node read", f.path)
		}
		for _, l := range out.Lookups[len(files)+1:] {
			assert.Empty(t, l.Error, "%s@%s", l.Path, l.Revision)
			assert.Empty(t, l.Requests, "%s@%s", l.Path, l.Revision)
		}
		want := map[string][]byte{"README.md@" + newCommit: spec.newReadme, "onnx/model.onnx@" + newCommit: spec.onnx, "README.md@" + oldCommit: spec.oldReadme}
		for _, l := range out.Lookups[len(files)+1:] {
			assert.Equal(t, sha256Hex(want[l.Path+"@"+l.Revision]), l.SHA256, "%s@%s in the hand-built cache", l.Path, l.Revision)
		}
	})

	t.Run("a branch name sends the client to the Hub", func(t *testing.T) {
		l := out.Lookups[len(files)]
		require.Equal(t, "main", l.Revision)
		assert.NotEmpty(t, l.Requests, "downloadFileToCacheDir asks the Hub which commit a branch is at, even when refs/main is cached")
		assert.Contains(t, l.Error, "network access attempted")
	})
}

// TestInteropCacheDir compares Dir with @huggingface/hub's
// getHFHubCachePath in the same environments.
func TestInteropCacheDir(t *testing.T) {
	pkgDir := hfcachetest.InstallHubJS(t)
	for _, c := range dirCases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"HOME": "/home/u"}
			for k, v := range c.env {
				env[k] = v
			}
			out := hfcachetest.RunHubJS(t, pkgDir, env, hfcachetest.HubJSRequest{})
			got, err := DirFrom(lookupIn(c.env), func() (string, error) { return "/home/u", nil })
			require.NoError(t, err)
			assert.Equal(t, out.CachePath, got)
		})
	}
}

func realBlobsDir(t *testing.T, cache, folder string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(filepath.Join(cache, folder, "blobs"))
	require.NoError(t, err)
	return p
}
