package hfcache

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{newCommit, newCommit + "\n", newCommit + "\r\n", "", "main", strings.ToUpper(newCommit), newCommit + newCommit} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		commit, err := parseRef(data)
		if err != nil {
			require.NotContains(t, err.Error(), "\n", "the message quotes what it shows")
			return
		}
		require.True(t, IsCommitHash(commit))
		require.Contains(t, []string{commit, commit + "\n"}, string(data))
	})
}

func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"config.json", "onnx/model.onnx", "../x", "/abs", `a\b`, "a//b", "C:x", "a\x00", "\u0085", "ü/ß"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if CheckPath(p) != nil {
			return
		}
		require.True(t, filepath.IsLocal(filepath.FromSlash(p)), "%q stays below the folder it is joined to", p)
		require.Equal(t, p, path.Clean(p))
		require.True(t, utf8.ValidString(p))
		require.False(t, strings.ContainsAny(p, `\`))
		require.Equal(t, -1, strings.IndexFunc(p, unicode.IsControl))
		for _, seg := range strings.Split(p, "/") {
			require.NotContains(t, []string{"", ".", ".."}, seg)
		}
	})
}

func FuzzParseFolderName(f *testing.F) {
	for _, s := range []string{specFolder, "models--gpt2", "datasets--glue", "spaces--a--b", ".locks", "models--a--b--c", "models----a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		id, err := ParseFolderName(name)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidRepoID)
			return
		}
		require.Equal(t, name, id.FolderName(), "a folder name maps to one id and back")
		again, err := ParseTypedRepoID(id.Type, id.String())
		require.NoError(t, err)
		require.Equal(t, id, again)
	})
}

// FuzzFindSnapshot puts fuzzed bytes in refs/main and a fuzzed name in the
// snapshot: FindSnapshot must resolve a valid ref, refuse anything else as
// corrupt, and never list a path that CheckPath refuses.
func FuzzFindSnapshot(f *testing.F) {
	f.Add([]byte(newCommit), "config.json", "../../blobs/"+sha256Hex([]byte("x")))
	f.Add([]byte(newCommit+"\n"), "onnx", "/etc/passwd")
	f.Add([]byte("garbage"), "a\nb", "loop")
	f.Add([]byte(newCommit), "x", "../../../../../x")
	f.Fuzz(func(t *testing.T, ref []byte, name, target string) {
		c := newHandCache(t)
		buildSpecRepo(c)
		c.write([]byte("x"), specFolder, "blobs", sha256Hex([]byte("x")))
		require.NoError(t, os.WriteFile(c.path(specFolder, "refs", "main"), ref, 0o644))
		if name != "" && !strings.ContainsAny(name, "/\x00") && name != "." && name != ".." && len(name) < 200 &&
			!strings.Contains(target, "\x00") && target != "" {
			_ = os.Symlink(target, c.path(specFolder, "snapshots", newCommit, name))
		}
		snap, err := FindSnapshot(c.dir, specRepo, "main")
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotCached) {
				t.Fatalf("an unexpected kind of error: %v", err)
			}
			require.NotContains(t, err.Error(), "\n")
			return
		}
		require.Equal(t, strings.TrimSuffix(string(ref), "\n"), snap.Commit)
		realBlobs, err := filepath.EvalSymlinks(c.path(specFolder, "blobs"))
		require.NoError(t, err)
		for _, file := range snap.Files {
			require.NoError(t, CheckPath(file.Path))
			require.True(t, isWithin(realBlobs, file.Blob), "%s resolves into blobs/", file.Path)
			info, err := os.Stat(file.Blob)
			require.NoError(t, err)
			require.True(t, info.Mode().IsRegular())
			require.Equal(t, info.Size(), file.Size)
		}
	})
}

// FuzzWriteSnapshotPath writes one file under a fuzzed path and branch:
// either the input is refused and nothing is written, or the file lands in
// the snapshot under exactly that path and nothing appears outside the
// cache.
func FuzzWriteSnapshotPath(f *testing.F) {
	for _, s := range []string{"config.json", "onnx/model.onnx", "../x", "a/../../x", "/abs", `..\x`, "C:x", "a\nb", ".no_exist/x"} {
		f.Add(s, "main")
	}
	f.Add("x", "../../outside")
	f.Add("x", "refs/pr/1")
	f.Fuzz(func(t *testing.T, p, branch string) {
		base := t.TempDir()
		cache := filepath.Join(base, "hub")
		err := WriteSnapshot(cache, testRepo, testRevision, branch, []FileSource{{Path: p, Size: 1, Content: BytesContent([]byte("x"))}})
		entries, rerr := os.ReadDir(base)
		require.NoError(t, rerr)
		if err != nil {
			require.Empty(t, entries, "refused input wrote nothing")
			return
		}
		require.Len(t, entries, 1, "nothing beside the cache")
		require.Equal(t, "hub", entries[0].Name())
		require.NoError(t, CheckPath(p))
		if branch == "" {
			branch = "main"
		}
		snap, err := FindSnapshot(cache, testRepo, branch)
		require.NoError(t, err)
		require.Len(t, snap.Files, 1)
		require.Equal(t, p, snap.Files[0].Path)
	})
}
