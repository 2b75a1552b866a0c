// Package hfcachetest builds Hugging Face cache folders for tests by hand,
// file by file, as the published layout describes them
// (huggingface/hub-docs, docs/hub/local-cache.md) and as huggingface_hub
// writes them, without package hfcache's writer: so that what hfcache
// and ckpt read is checked against the layout, not against themselves.
package hfcachetest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// LFSThreshold is the size from which the Hub keeps a file in Git LFS,
// and the cache names its blob by the SHA-256 of the content; smaller
// files are kept in git, and their blob is named by the git blob SHA-1.
// (The Hub's own rule is by extension and size; any split will do for a
// test that a reader follows the links whatever the blob names.)
const LFSThreshold = 10 << 10

// Snapshot is one snapshot built by Build.
type Snapshot struct {
	// RepoDir is <cache>/models--ORG--NAME, Dir the snapshot folder.
	RepoDir, Dir string
	// Blobs maps each file's path to its blob's name in blobs/.
	Blobs map[string]string
}

// Build copies the regular files of src into the cache at cacheDir as the
// snapshot commit of the model repoID ("ORG/NAME" or "NAME"): each file's
// content once in blobs/ (named by SHA-256 from LFSThreshold bytes, by git
// SHA-1 below), snapshots/<commit>/<path> a relative symlink to it (one
// more ../ per folder of path), and refs/<branch> holding commit without a
// newline, unless branch is "". An empty lock folder .locks/<repo folder>
// is made, as clients leave one.
func Build(tb testing.TB, cacheDir, repoID, commit, branch, src string) Snapshot {
	tb.Helper()
	folder := "models--" + strings.ReplaceAll(repoID, "/", "--")
	repoDir := filepath.Join(cacheDir, folder)
	snap := Snapshot{RepoDir: repoDir, Dir: filepath.Join(repoDir, "snapshots", commit), Blobs: map[string]string{}}
	must(tb, os.MkdirAll(filepath.Join(cacheDir, ".locks", folder), 0o755))
	must(tb, os.MkdirAll(filepath.Join(repoDir, "blobs"), 0o755))
	must(tb, os.MkdirAll(snap.Dir, 0o755))
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		name := BlobName(data)
		blob := filepath.Join(repoDir, "blobs", name)
		if err := os.WriteFile(blob, data, 0o644); err != nil {
			return err
		}
		slash := filepath.ToSlash(rel)
		snap.Blobs[slash] = name
		link := filepath.Join(snap.Dir, rel)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return err
		}
		return os.Symlink(filepath.FromSlash(strings.Repeat("../", strings.Count(slash, "/")+2)+"blobs/"+name), link)
	})
	must(tb, err)
	if branch != "" {
		Ref(tb, cacheDir, repoID, branch, commit)
	}
	return snap
}

// Ref writes refs/<name> of repoID's folder holding content as given.
func Ref(tb testing.TB, cacheDir, repoID, name, content string) {
	tb.Helper()
	p := filepath.Join(cacheDir, "models--"+strings.ReplaceAll(repoID, "/", "--"), "refs", filepath.FromSlash(name))
	must(tb, os.MkdirAll(filepath.Dir(p), 0o755))
	must(tb, os.WriteFile(p, []byte(content), 0o644))
}

// BlobName is the name the Hub's clients give data's blob: the SHA-256 of
// an LFS file, the git blob SHA-1 of another.
func BlobName(data []byte) string {
	if len(data) >= LFSThreshold {
		return SHA256(data)
	}
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// SHA256 is the lowercase hex SHA-256 of data.
func SHA256(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Commit is a made-up 40-hex-digit commit hash derived from seed.
func Commit(seed string) string {
	sum := sha1.Sum([]byte(seed))
	return hex.EncodeToString(sum[:])
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
