package hfcache

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFindSnapshotInTheSpecLayout(t *testing.T) {
	c := newHandCache(t)
	f := buildSpecRepo(c)
	weights := c.realBlob(specFolder, sha256Hex(f.weights))

	for _, rev := range []string{"", "main"} {
		snap, err := FindSnapshot(c.dir, specRepo, rev)
		require.NoError(t, err, "revision %q", rev)
		assert.Equal(t, newCommit, snap.Commit)
		assert.Equal(t, "main", snap.Ref)
		assert.Equal(t, c.path(specFolder), snap.RepoDir)
		assert.Equal(t, c.path(specFolder, "snapshots", newCommit), snap.Dir)
		assert.Equal(t, []File{
			{Path: "README.md", Blob: c.realBlob(specFolder, gitBlobSHA1(f.newReadme)), Size: int64(len(f.newReadme)), Linked: true},
			{Path: "onnx/model.onnx", Blob: c.realBlob(specFolder, sha256Hex(f.onnx)), Size: int64(len(f.onnx)), Linked: true},
			{Path: "pytorch_model.bin", Blob: weights, Size: int64(len(f.weights)), Linked: true},
		}, snap.Files)
	}

	for _, rev := range []string{oldCommit, "refs/pr/1"} {
		snap, err := FindSnapshot(c.dir, specRepo, rev)
		require.NoError(t, err, "revision %q", rev)
		assert.Equal(t, oldCommit, snap.Commit)
		assert.Equal(t, map[string]string{oldCommit: "", "refs/pr/1": "refs/pr/1"}[rev], snap.Ref)
		assert.Equal(t, []File{
			{Path: "README.md", Blob: c.realBlob(specFolder, gitBlobSHA1(f.oldReadme)), Size: int64(len(f.oldReadme)), Linked: true},
			{Path: "pytorch_model.bin", Blob: weights, Size: int64(len(f.weights)), Linked: true},
		}, snap.Files, "the weights blob is shared between the two snapshots")
	}
}

func TestFindSnapshotToleratesOneTrailingNewlineInARef(t *testing.T) {
	c := newHandCache(t)
	buildSpecRepo(c)
	c.ref(specFolder, "v1.0", newCommit+"\n")
	snap, err := FindSnapshot(c.dir, specRepo, "v1.0")
	require.NoError(t, err)
	assert.Equal(t, newCommit, snap.Commit)
	assert.Equal(t, "v1.0", snap.Ref)
}

// Users move big caches to other disks with symlinks: the cache folder,
// a repository folder or its blobs/ folder may be one.
func TestFindSnapshotThroughMovedFolders(t *testing.T) {
	c := newHandCache(t)
	f := buildSpecRepo(c)
	elsewhere := t.TempDir()

	movedRepo := filepath.Join(elsewhere, "repo")
	require.NoError(t, os.Rename(c.path(specFolder), movedRepo))
	require.NoError(t, os.Symlink(movedRepo, c.path(specFolder)))
	movedBlobs := filepath.Join(elsewhere, "blobs")
	require.NoError(t, os.Rename(filepath.Join(movedRepo, "blobs"), movedBlobs))
	require.NoError(t, os.Symlink(movedBlobs, filepath.Join(movedRepo, "blobs")))
	linkedCache := filepath.Join(t.TempDir(), "hub-link")
	require.NoError(t, os.Symlink(c.dir, linkedCache))

	snap, err := FindSnapshot(linkedCache, specRepo, "main")
	require.NoError(t, err)
	require.Len(t, snap.Files, 3)
	real, err := filepath.EvalSymlinks(movedBlobs)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(real, sha256Hex(f.weights)), snap.Files[2].Blob)
}

// Where symlinks are unavailable, Hub clients put the files themselves in
// the snapshot folder.
func TestFindSnapshotAcceptsPlainFiles(t *testing.T) {
	c := newHandCache(t)
	commit := "0123456789abcdef0123456789abcdef01234567"
	config := c.write([]byte(`{"model_type": "gpt2"}`), "models--gpt2", "snapshots", commit, "config.json")
	c.ref("models--gpt2", "main", commit)
	snap, err := FindSnapshot(c.dir, "gpt2", "")
	require.NoError(t, err)
	assert.Equal(t, []File{{Path: "config.json", Blob: config, Size: 22, Linked: false}}, snap.Files)
}

func TestFindSnapshotEmptySnapshot(t *testing.T) {
	c := newHandCache(t)
	commit := "0123456789abcdef0123456789abcdef01234567"
	c.mkdir("models--gpt2", "snapshots", commit)
	snap, err := FindSnapshot(c.dir, "gpt2", commit)
	require.NoError(t, err)
	assert.Empty(t, snap.Files)
}

func TestFindSnapshotRepoNotFound(t *testing.T) {
	c := newHandCache(t)
	buildSpecRepo(c)
	c.mkdir("models--openai-community--gpt2", "snapshots")
	c.mkdir("models--distilbert--distilgpt2", "snapshots")
	c.mkdir("datasets--julien-c--EsperBERTo-smal", "snapshots")
	c.mkdir("models--bert-base-cased", "snapshots")
	c.write([]byte("1"), "version.txt")

	for _, tc := range []struct {
		repo    string
		similar []string
		msg     string
	}{
		{"julien-c/EsperBERTo-smal", []string{"julien-c/EsperBERTo-small"}, "close matches: julien-c/EsperBERTo-small"},
		{"julien-c/esperberto-small", []string{"julien-c/EsperBERTo-small"}, "models--julien-c--esperberto-small"},
		{"gpt2", []string{"openai-community/gpt2"}, "close matches: openai-community/gpt2"},
		{"bert-base-uncased", []string{"bert-base-cased"}, "close matches: bert-base-cased"},
		{"meta-llama/Llama-3.1-8B", nil, "none of its 4 model ids is close"},
	} {
		_, err := FindSnapshot(c.dir, tc.repo, "")
		var nf *RepoNotFoundError
		require.ErrorAs(t, err, &nf, tc.repo)
		assert.ErrorIs(t, err, ErrNotCached)
		assert.NotErrorIs(t, err, ErrCorrupt)
		var got []string
		for _, id := range nf.Similar {
			got = append(got, id.String())
		}
		assert.Equal(t, tc.similar, got, tc.repo)
		assert.Equal(t, 4, nf.Cached, "model folders in the cache")
		assert.ErrorContains(t, err, "model "+tc.repo+" is not in the Hugging Face cache "+c.dir)
		assert.ErrorContains(t, err, tc.msg)
	}

	_, err := FindSnapshot(filepath.Join(t.TempDir(), "nowhere"), "gpt2", "")
	var nf *RepoNotFoundError
	require.ErrorAs(t, err, &nf)
	assert.True(t, nf.CacheMissing)
	assert.ErrorContains(t, err, "nowhere does not exist")

	empty := t.TempDir()
	_, err = FindSnapshot(empty, "gpt2", "")
	assert.ErrorContains(t, err, "it holds no model")

	_, err = FindSnapshot(c.dir, "a--b", "")
	assert.ErrorIs(t, err, ErrInvalidRepoID)
}

func TestFindSnapshotRevisionNotFound(t *testing.T) {
	c := newHandCache(t)
	buildSpecRepo(c)
	refs := []CachedRef{{Name: "main", Commit: newCommit}, {Name: "refs/pr/1", Commit: oldCommit}}
	snapshots := []string{oldCommit, newCommit}
	missing := "ffffffffffffffffffffffffffffffffffffffff"
	c.ref(specFolder, "stale", missing)

	for _, tc := range []struct {
		revision, commit string
		prefixed         []string
		msg              string
	}{
		{"v9", "", nil, `no ref "v9" and it is not a full commit hash`},
		{missing, missing, nil, "no snapshot of commit " + missing},
		{"stale", missing, nil, `ref "stale" holds commit ` + missing + ", which has no snapshot"},
		{"bbc77c8", "", []string{newCommit}, `snapshots whose commit starts with "bbc77c8": ` + newCommit},
		{"BBC77C8132AF1CC5CF678DA3F1DDF2DE43606D48", "", nil, `no ref "BBC77C8132AF1CC5CF678DA3F1DDF2DE43606D48"`},
	} {
		_, err := FindSnapshot(c.dir, specRepo, tc.revision)
		var nf *RevisionNotFoundError
		require.ErrorAs(t, err, &nf, tc.revision)
		assert.ErrorIs(t, err, ErrNotCached)
		assert.Equal(t, tc.commit, nf.Commit, tc.revision)
		assert.Equal(t, tc.prefixed, nf.Prefixed, tc.revision)
		assert.Equal(t, snapshots, nf.Snapshots)
		assert.ElementsMatch(t, append(refs, CachedRef{Name: "stale", Commit: missing}), nf.Refs)
		assert.ErrorContains(t, err, tc.msg)
		assert.ErrorContains(t, err, "refs: ")
		assert.ErrorContains(t, err, "main -> "+newCommit)
	}
}

func TestFindSnapshotRefusesHostileRevisions(t *testing.T) {
	c := newHandCache(t)
	buildSpecRepo(c)
	c.write([]byte(newCommit), "secret") // a file holding a commit hash, outside refs/
	for _, rev := range []string{"../../secret", "/etc/passwd", `..\..\secret`, "main/../../../secret", "a\nb"} {
		_, err := FindSnapshot(c.dir, specRepo, rev)
		require.Error(t, err, "%q", rev)
		assert.Contains(t, err.Error(), "ref name", "%q", rev)
		assert.False(t, errors.Is(err, ErrNotCached) || errors.Is(err, ErrCorrupt), "%q is refused as input, not looked up", rev)
	}
}
