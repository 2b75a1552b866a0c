package hfcache

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFindSnapshotHostileCaches breaks a good cache in one way per case:
// each must be refused with a *CorruptError naming the offending path,
// without a panic and with a message that prints safely on a terminal.
func TestFindSnapshotHostileCaches(t *testing.T) {
	snapFile := func(c *handCache, file string) []string {
		return []string{specFolder, "snapshots", newCommit, file}
	}
	for _, tc := range []struct {
		name     string
		breakIt  func(t *testing.T, c *handCache) (badPath string)
		revision string
		problem  string
		notExist bool // the error also matches fs.ErrNotExist
	}{
		{name: "ref holds garbage", problem: "not a 40-hex-digit commit hash",
			breakIt: func(t *testing.T, c *handCache) string { return c.ref(specFolder, "main", "not a commit\n") }},
		{name: "ref is empty", problem: `ref holds "" (0 bytes)`,
			breakIt: func(t *testing.T, c *handCache) string { return c.ref(specFolder, "main", "") }},
		{name: "ref in upper case", problem: "not a 40-hex-digit commit hash",
			breakIt: func(t *testing.T, c *handCache) string {
				return c.ref(specFolder, "main", strings.ToUpper(newCommit))
			}},
		{name: "ref with trailing space", problem: "not a 40-hex-digit commit hash",
			breakIt: func(t *testing.T, c *handCache) string { return c.ref(specFolder, "main", newCommit+" ") }},
		{name: "ref with two newlines", problem: "not a 40-hex-digit commit hash",
			breakIt: func(t *testing.T, c *handCache) string { return c.ref(specFolder, "main", newCommit+"\n\n") }},
		{name: "ref with a NUL", problem: "not a 40-hex-digit commit hash",
			breakIt: func(t *testing.T, c *handCache) string { return c.ref(specFolder, "main", newCommit[:39]+"\x00") }},
		{name: "ref too large", problem: "larger than 1024 bytes",
			breakIt: func(t *testing.T, c *handCache) string {
				return c.ref(specFolder, "main", strings.Repeat(newCommit, 1<<16))
			}},
		{name: "ref is a symlink", problem: "ref is not a regular file (a symlink)",
			breakIt: func(t *testing.T, c *handCache) string {
				c.write([]byte(newCommit), "elsewhere")
				require.NoError(t, os.Remove(c.path(specFolder, "refs", "main")))
				return c.symlink(c.path("elsewhere"), specFolder, "refs", "main")
			}},
		{name: "ref is a folder", problem: "ref is not a regular file (a directory)",
			breakIt: func(t *testing.T, c *handCache) string {
				require.NoError(t, os.Remove(c.path(specFolder, "refs", "main")))
				return c.mkdir(specFolder, "refs", "main")
			}},
		{name: "refs folder is a symlink", problem: "not a directory (a symlink)",
			breakIt: func(t *testing.T, c *handCache) string {
				other := t.TempDir()
				require.NoError(t, os.WriteFile(filepath.Join(other, "main"), []byte(newCommit), 0o644))
				require.NoError(t, os.RemoveAll(c.path(specFolder, "refs")))
				return c.symlink(other, specFolder, "refs")
			}},
		{name: "ref through a symlinked folder out of refs", revision: "pr/1", problem: "cannot read ref",
			breakIt: func(t *testing.T, c *handCache) string {
				other := t.TempDir()
				require.NoError(t, os.WriteFile(filepath.Join(other, "1"), []byte(newCommit), 0o644))
				c.symlink(other, specFolder, "refs", "pr")
				return c.path(specFolder, "refs", "pr", "1")
			}},
		{name: "symlink loop", problem: "cannot resolve symlink",
			breakIt: func(t *testing.T, c *handCache) string {
				c.symlink("loop-b", snapFile(c, "loop-a")...)
				return c.symlink("loop-a", snapFile(c, "loop-b")...)
			}},
		{name: "symlink to itself", problem: "cannot resolve symlink",
			breakIt: func(t *testing.T, c *handCache) string { return c.symlink("self", snapFile(c, "self")...) }},
		{name: "symlink to a directory in blobs", problem: "which is not a regular file (a directory)",
			breakIt: func(t *testing.T, c *handCache) string {
				c.mkdir(specFolder, "blobs", "adir")
				return c.symlink("../../blobs/adir", snapFile(c, "dirlink")...)
			}},
		{name: "symlink to a directory outside", problem: "outside the repository's blobs folder",
			breakIt: func(t *testing.T, c *handCache) string { return c.symlink(t.TempDir(), snapFile(c, "dirlink")...) }},
		{name: "symlink out of the cache, absolute", problem: "outside the repository's blobs folder",
			breakIt: func(t *testing.T, c *handCache) string {
				secret := filepath.Join(t.TempDir(), "id_rsa")
				require.NoError(t, os.WriteFile(secret, []byte("secret"), 0o600))
				return c.symlink(secret, snapFile(c, "config.json")...)
			}},
		{name: "symlink out of the cache, relative", problem: "outside the repository's blobs folder",
			breakIt: func(t *testing.T, c *handCache) string {
				c.write([]byte("secret"), "..", "outside.txt")
				return c.symlink("../../../../outside.txt", snapFile(c, "config.json")...)
			}},
		{name: "symlink into the repository but not into blobs", problem: "outside the repository's blobs folder",
			breakIt: func(t *testing.T, c *handCache) string {
				return c.symlink("../../refs/main", snapFile(c, "config.json")...)
			}},
		{name: "symlink to the blobs folder itself", problem: "outside the repository's blobs folder",
			breakIt: func(t *testing.T, c *handCache) string { return c.symlink("../../blobs", snapFile(c, "blobs")...) }},
		{name: "missing blob", problem: "symlink to a missing blob (../../blobs/" + strings.Repeat("e", 64) + ")", notExist: true,
			breakIt: func(t *testing.T, c *handCache) string {
				return c.symlink("../../blobs/"+strings.Repeat("e", 64), snapFile(c, "model.safetensors")...)
			}},
		{name: "symlink to a named pipe in blobs", problem: "not a regular file (a named pipe)",
			breakIt: func(t *testing.T, c *handCache) string {
				mkfifo(t, c.path(specFolder, "blobs", "fifo"))
				return c.symlink("../../blobs/fifo", snapFile(c, "pipe")...)
			}},
		{name: "named pipe in the snapshot", problem: "not a regular file, folder or symlink (a named pipe)",
			breakIt: func(t *testing.T, c *handCache) string {
				p := c.path(snapFile(c, "pipe")...)
				mkfifo(t, p)
				return p
			}},
		{name: "file name with a newline", problem: "file name not accepted",
			breakIt: func(t *testing.T, c *handCache) string {
				c.link(specFolder, newCommit, "evil\nname.json", gitBlobSHA1([]byte("# EsperBERTo\n")))
				return c.path(snapFile(c, "evil\nname.json")...)
			}},
		{name: "folder name with an escape sequence", problem: "file name not accepted",
			breakIt: func(t *testing.T, c *handCache) string {
				return c.mkdir(snapFile(c, "\x1b[2Jdir")...)
			}},
		{name: "file name with a backslash", problem: "contains a backslash",
			breakIt: func(t *testing.T, c *handCache) string {
				c.link(specFolder, newCommit, `..\..\x`, gitBlobSHA1([]byte("# EsperBERTo\n")))
				return c.path(snapFile(c, `..\..\x`)...)
			}},
		{name: "file name not UTF-8", problem: "not UTF-8",
			breakIt: func(t *testing.T, c *handCache) string {
				c.link(specFolder, newCommit, "bad\xff", gitBlobSHA1([]byte("# EsperBERTo\n")))
				return c.path(snapFile(c, "bad\xff")...)
			}},
		{name: "snapshot folder is a symlink", problem: "not a directory (a symlink)",
			breakIt: func(t *testing.T, c *handCache) string {
				snap := c.path(specFolder, "snapshots", newCommit)
				moved := filepath.Join(t.TempDir(), "snap")
				require.NoError(t, os.Rename(snap, moved))
				require.NoError(t, os.Symlink(moved, snap))
				return snap
			}},
		{name: "snapshots folder is a symlink", problem: "not a directory (a symlink)",
			breakIt: func(t *testing.T, c *handCache) string {
				snaps := c.path(specFolder, "snapshots")
				moved := filepath.Join(t.TempDir(), "snaps")
				require.NoError(t, os.Rename(snaps, moved))
				require.NoError(t, os.Symlink(moved, snaps))
				return snaps
			}},
		{name: "snapshot is a file", problem: "not a directory (a regular file)",
			breakIt: func(t *testing.T, c *handCache) string {
				snap := c.path(specFolder, "snapshots", newCommit)
				require.NoError(t, os.RemoveAll(snap))
				return c.write(nil, specFolder, "snapshots", newCommit)
			}},
		{name: "blobs is a file", problem: "not a directory (a regular file)",
			breakIt: func(t *testing.T, c *handCache) string {
				require.NoError(t, os.RemoveAll(c.path(specFolder, "blobs")))
				return c.write(nil, specFolder, "blobs")
			}},
		{name: "repository folder is a file", problem: "not a directory",
			breakIt: func(t *testing.T, c *handCache) string {
				require.NoError(t, os.RemoveAll(c.path(specFolder)))
				return c.write(nil, specFolder)
			}},
		{name: "folders nested too deep", problem: "nested deeper than 64",
			breakIt: func(t *testing.T, c *handCache) string {
				c.mkdir(snapFile(c, strings.Repeat("d/", 70))...)
				return c.path(snapFile(c, strings.Repeat("d/", 64)+"d")...) // the 65th folder down
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newHandCache(t)
			buildSpecRepo(c)
			bad := tc.breakIt(t, c)
			snap, err := FindSnapshot(c.dir, specRepo, tc.revision)
			require.Error(t, err, "found %+v", snap)
			var ce *CorruptError
			require.ErrorAs(t, err, &ce)
			assert.ErrorIs(t, err, ErrCorrupt)
			assert.NotErrorIs(t, err, ErrNotCached)
			assert.Equal(t, tc.notExist, errors.Is(err, fs.ErrNotExist), "matches fs.ErrNotExist")
			assert.Contains(t, []string{bad, filepath.Dir(bad)}, ce.Path, "the error names the offending path")
			assert.Contains(t, err.Error(), tc.problem)
			assert.NotContains(t, err.Error(), "\n", "control characters are quoted")
			assert.NotContains(t, err.Error(), "\x1b")
			assert.NotContains(t, err.Error(), "secret", "the content of files out of the cache is never shown")
		})
	}
}

func TestFindSnapshotBoundsTheListing(t *testing.T) {
	c := newHandCache(t)
	buildSpecRepo(c) // 3 files and 1 folder in the newer snapshot
	defer func(n int) { maxSnapshotEntries = n }(maxSnapshotEntries)
	maxSnapshotEntries = 4
	snap, err := FindSnapshot(c.dir, specRepo, "main")
	require.NoError(t, err)
	require.Len(t, snap.Files, 3)

	maxSnapshotEntries = 3
	_, err = FindSnapshot(c.dir, specRepo, "main")
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.ErrorContains(t, err, "snapshot has more than 3 files and folders")
}
