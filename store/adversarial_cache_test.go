//go:build linux

package store_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/store"
)

// withModes copies ckpt and gives its files the modes in modes.
func withModes(t *testing.T, ckpt string, modes map[string]fs.FileMode) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), filepath.Base(ckpt))
	require.NoError(t, os.CopyFS(dir, os.DirFS(ckpt)))
	for p, m := range modes {
		require.NoError(t, os.Chmod(filepath.Join(dir, p), m))
	}
	return dir
}

func nlink(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	require.NoError(t, err)
	return uint64(fi.Sys().(*syscall.Stat_t).Nlink)
}

func TestPullRespectsUmask(t *testing.T) {
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	recorded := map[string]fs.FileMode{"config.json": 0o666, "tokenizer.json": 0o600, "model.safetensors": 0o644, "vocab.json": 0o640}
	src := withModes(t, ckpts[0], recorded)
	e.push(src, "c", store.PushOptions{})
	fc, err := store.OpenContentCache(filepath.Join(t.TempDir(), "files"), 1<<30)
	require.NoError(t, err)
	r, err := store.Open(e.ctx, e.b, store.Options{Index: e.ix, Cache: fc, Workers: 4})
	require.NoError(t, err)

	for _, tc := range []struct {
		umask int
		link  bool
	}{{0o077, false}, {0o022, false}, {0o002, false}, {0o000, false}, {0o022, true}, {0o077, true}, {0o002, true}} {
		t.Run(fmt.Sprintf("umask%03o", tc.umask)+map[bool]string{true: "-link"}[tc.link], func(t *testing.T) {
			withUmask(t, tc.umask)
			out := filepath.Join(t.TempDir(), "model")
			_, err := r.Pull(e.ctx, "c", "100", out, store.PullOptions{Link: tc.link})
			require.NoError(t, err)
			fi, err := os.Stat(out)
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o777&^tc.umask), fi.Mode().Perm(), "the folder gets the mode mkdir would give it")
			for p := range runnableTree(t, src) {
				want, ok := recorded[p]
				if !ok {
					want = 0o644
				}
				want &^= fs.FileMode(tc.umask)
				full := filepath.Join(out, p)
				fi, err := os.Lstat(full)
				require.NoError(t, err)
				if tc.link && nlink(t, full) > 1 {
					// A hard link to a cache entry has the entry's mode: of
					// the file's mode class (its read and execute bits), and
					// write bits only where the file has them (an entry a
					// plain pull fed is that pull's file).
					assert.Equal(t, want&^0o222, fi.Mode().Perm()&^0o222, p)
					assert.Zero(t, fi.Mode().Perm()&0o222&^want, "%s: %v has write bits %v lacks", p, fi.Mode().Perm(), want)
				} else {
					assert.Equal(t, want, fi.Mode().Perm(), p)
				}
				assert.Zero(t, fi.Mode().Perm()&fs.FileMode(tc.umask), "%s: %v has bits the umask %03o clears", p, fi.Mode().Perm(), tc.umask)
			}
		})
	}
}

// A file recorded 0600 must not become readable by others because the
// same content was linked from the file cache before with mode 0644.
func TestPullLinkKeepsModeClass(t *testing.T) {
	withUmask(t, 0o022)
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	e.push(withModes(t, ckpts[0], map[string]fs.FileMode{"tokenizer.json": 0o644}), "open", store.PushOptions{})
	e.push(withModes(t, ckpts[0], map[string]fs.FileMode{"tokenizer.json": 0o600}), "private", store.PushOptions{})
	fc, err := store.OpenContentCache(filepath.Join(t.TempDir(), "files"), 1<<30)
	require.NoError(t, err)
	r, err := store.Open(e.ctx, e.b, store.Options{Cache: fc})
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		want fs.FileMode // without write bits: hard links are read-only
	}{{"open", 0o444}, {"private", 0o400}, {"open", 0o444}} {
		out := filepath.Join(t.TempDir(), tc.name)
		_, err := r.Pull(e.ctx, tc.name, "100", out, store.PullOptions{Link: true})
		require.NoError(t, err)
		fi, err := os.Stat(filepath.Join(out, "tokenizer.json"))
		require.NoError(t, err)
		assert.Equal(t, tc.want, fi.Mode().Perm()&^0o222, tc.name)
		assert.Equal(t, digests(testutil.ReadTree(t, ckpts[0]))["tokenizer.json"], digests(testutil.ReadTree(t, out))["tokenizer.json"])
	}
}

// cacheEntriesWith lists the cache entries under dir holding exactly data.
func cacheEntriesWith(t *testing.T, dir string, data []byte) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "tmp" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Equal(b, data) {
			out = append(out, p)
		}
		return err
	}))
	return out
}

// flipByte flips one bit in the middle of p through its own name, keeping
// its size, mode and mtime (a bit flip keeps them too).
func flipByte(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(p, fi.Mode().Perm()|0o200)) // chmod u+w, as a user would
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	b := make([]byte, 1)
	off := fi.Size() / 2
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	b[0] ^= 0x10
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Chmod(p, fi.Mode().Perm()))
	require.NoError(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
}

// isCacheTemp tells whether p lies in the temporary folder of the disk
// cache at dir.
func isCacheTemp(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && strings.HasPrefix(filepath.ToSlash(rel), "tmp/")
}

// stripRecords renames every file cache entry under dir to its key alone,
// as ckpt named entries before it recorded their hash: such entries are
// unverified until checked against their chunk IDs.
func stripRecords(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || isCacheTemp(dir, p) {
			return err
		}
		if name := d.Name(); len(name) > 64 {
			return os.Rename(p, filepath.Join(filepath.Dir(p), name[:64]))
		}
		return nil
	}))
}

func TestPullLinkNeverServesCorruptEntries(t *testing.T) {
	withUmask(t, 0o022)
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	e.push(ckpts[0], "c", store.PushOptions{})
	want := runnableTree(t, ckpts[0])
	const victim = "model.safetensors"

	cases := []struct {
		name    string
		corrupt func(t *testing.T, pulled, cacheDir string)
	}{
		{"edited through a pulled hard link", func(t *testing.T, pulled, cacheDir string) {
			require.Greater(t, nlink(t, filepath.Join(pulled, victim)), uint64(1), "expected a hard link on this file system")
			flipByte(t, filepath.Join(pulled, victim))
		}},
		{"bit flipped in the cache entry", func(t *testing.T, pulled, cacheDir string) {
			entries := cacheEntriesWith(t, cacheDir, want[victim])
			require.Len(t, entries, 1)
			flipByte(t, entries[0])
		}},
		{"bit flipped in an entry without a record", func(t *testing.T, pulled, cacheDir string) {
			stripRecords(t, cacheDir)
			entries := cacheEntriesWith(t, cacheDir, want[victim])
			require.Len(t, entries, 1)
			flipByte(t, entries[0])
		}},
		{"truncated cache entry", func(t *testing.T, pulled, cacheDir string) {
			entries := cacheEntriesWith(t, cacheDir, want[victim])
			require.Len(t, entries, 1)
			require.NoError(t, os.Chmod(entries[0], 0o644))
			require.NoError(t, os.Truncate(entries[0], int64(len(want[victim])-1)))
			require.NoError(t, os.Chmod(entries[0], 0o444))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cacheDir := filepath.Join(t.TempDir(), "files")
			fc, err := store.OpenContentCache(cacheDir, 1<<30)
			require.NoError(t, err)
			counting := &countingBackend{Backend: e.b}
			r, err := store.Open(e.ctx, counting, store.Options{Cache: fc, Workers: 4})
			require.NoError(t, err)
			first := filepath.Join(t.TempDir(), "first")
			_, err = r.Pull(e.ctx, "c", "100", first, store.PullOptions{Link: true})
			require.NoError(t, err)
			tc.corrupt(t, first, cacheDir)
			corrupted := testutil.ReadTree(t, first)[victim] // a hard link shows the damage
			before := counting.blobGets.Load()
			second := filepath.Join(t.TempDir(), "second")
			_, err = r.Pull(e.ctx, "c", "100", second, store.PullOptions{Link: true})
			require.NoError(t, err)
			assert.Equal(t, digests(want), digests(testutil.ReadTree(t, second)), "bad bytes served from the file cache")
			assert.Greater(t, counting.blobGets.Load(), before, "the damaged entry must be fetched again")
			if !bytes.Equal(corrupted, want[victim]) {
				assert.Empty(t, cacheEntriesWith(t, cacheDir, corrupted), "the damaged entry is still in the cache")
			}

			// The cache is whole again: the next pull fetches nothing.
			before = counting.blobGets.Load()
			_, err = r.Pull(e.ctx, "c", "100", filepath.Join(t.TempDir(), "third"), store.PullOptions{Link: true})
			require.NoError(t, err)
			assert.Equal(t, before, counting.blobGets.Load())
		})
	}
}

// The record an entry is checked against survives losing the per-machine
// index, and an entry without one is checked against its chunk IDs once and
// then served without any download.
func TestPullLinkEntryRecords(t *testing.T) {
	withUmask(t, 0o022)
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	e.push(ckpts[0], "c", store.PushOptions{})
	cacheDir := filepath.Join(t.TempDir(), "files")
	fc, err := store.OpenContentCache(cacheDir, 1<<30)
	require.NoError(t, err)
	counting := &countingBackend{Backend: e.b}
	r, err := store.Open(e.ctx, counting, store.Options{Cache: fc, Index: e.ix})
	require.NoError(t, err)
	_, err = r.Pull(e.ctx, "c", "100", filepath.Join(t.TempDir(), "a"), store.PullOptions{Link: true})
	require.NoError(t, err)

	ix2, err := store.OpenIndex(filepath.Join(t.TempDir(), "fresh.db"))
	require.NoError(t, err)
	defer ix2.Close()
	r2, err := store.Open(e.ctx, counting, store.Options{Cache: fc, Index: ix2})
	require.NoError(t, err)
	before := counting.blobGets.Load()
	out := filepath.Join(t.TempDir(), "b")
	_, err = r2.Pull(e.ctx, "c", "100", out, store.PullOptions{Link: true})
	require.NoError(t, err)
	assert.Equal(t, before, counting.blobGets.Load(), "a fresh index must not cost downloads")
	assert.Equal(t, digests(runnableTree(t, ckpts[0])), digests(testutil.ReadTree(t, out)))

	stripRecords(t, cacheDir)
	out = filepath.Join(t.TempDir(), "c")
	_, err = r2.Pull(e.ctx, "c", "100", out, store.PullOptions{Link: true})
	require.NoError(t, err)
	assert.Equal(t, before, counting.blobGets.Load(), "intact entries without a record are checked, not fetched")
	assert.Equal(t, digests(runnableTree(t, ckpts[0])), digests(testutil.ReadTree(t, out)))
	require.NoError(t, filepath.WalkDir(cacheDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !isCacheTemp(cacheDir, p) {
			assert.Greater(t, len(d.Name()), 64, "%s: its record was not written back", d.Name())
		}
		return err
	}))
}

// A pulled file that shares its inode with the pull cache and was
// bit-flipped is never read back as a chunk: the chunk is fetched again.
func TestPullCacheNeverServesFlippedFile(t *testing.T) {
	for bname, nb := range backends {
		t.Run(bname, func(t *testing.T) {
			e := newEnv(t, nb)
			_, ckpts := tinyRun(t, 10, nil)
			e.push(ckpts[0], "c", store.PushOptions{})
			pc, err := store.OpenContentCache(filepath.Join(t.TempDir(), "pulled"), 1<<30)
			require.NoError(t, err)
			counting := &countingBackend{Backend: e.b}
			r, err := store.Open(e.ctx, counting, store.Options{Cache: pc, Index: e.ix, Workers: 4})
			require.NoError(t, err)
			first := filepath.Join(t.TempDir(), "first")
			_, err = r.Pull(e.ctx, "c", "100", first, store.PullOptions{})
			require.NoError(t, err)
			require.Greater(t, nlink(t, filepath.Join(first, "model.safetensors")), uint64(1), "pulled files are linked into the pull cache")
			flipByte(t, filepath.Join(first, "model.safetensors"))

			before := counting.blobGets.Load()
			second := filepath.Join(t.TempDir(), "second")
			_, err = r.Pull(e.ctx, "c", "100", second, store.PullOptions{})
			require.NoError(t, err)
			assert.Equal(t, digests(runnableTree(t, ckpts[0])), digests(testutil.ReadTree(t, second)))
			assert.Equal(t, before+1, counting.blobGets.Load(), "only the chunk holding the flipped bit is fetched again")
		})
	}
}

func TestDiskCachesArePrivate(t *testing.T) {
	withUmask(t, 0o022)
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	e.push(ckpts[0], "c", store.PushOptions{})
	dir := filepath.Join(t.TempDir(), "content")
	require.NoError(t, os.Mkdir(dir, 0o755)) // made by an older ckpt
	cache, err := store.OpenContentCache(dir, 1<<30)
	require.NoError(t, err)
	r, err := store.Open(e.ctx, e.b, store.Options{Cache: cache, Index: e.ix})
	require.NoError(t, err)
	_, err = r.Pull(e.ctx, "c", "100", filepath.Join(t.TempDir(), "a"), store.PullOptions{Link: true})
	require.NoError(t, err)
	_, err = r.Pull(e.ctx, "c", "100", filepath.Join(t.TempDir(), "b"), store.PullOptions{})
	require.NoError(t, err)
	n := 0
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		n++
		fi, err := os.Lstat(p)
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm(), p)
		return nil
	}))
	assert.Greater(t, n, 3, "%s: expected the cache folder, tmp, seals and entry folders", dir)
}

// One content cache: a plain pull feeds it, so a `pull --link` of the same
// checkpoint afterwards reads no file content from the registry and hard-
// links the plain pull's files (their mode class matches). A file edited
// through the plain pull's folder is never linked: its blobs are fetched
// again.
func TestPullLinkAfterPlainPullReadsNoContent(t *testing.T) {
	withUmask(t, 0o022)
	for bname, nb := range backends {
		t.Run(bname, func(t *testing.T) {
			e := newEnv(t, nb)
			_, ckpts := tinyRun(t, 10, nil)
			e.push(ckpts[0], "c", store.PushOptions{})
			want := runnableTree(t, ckpts[0])
			cache, err := store.OpenContentCache(filepath.Join(t.TempDir(), "content"), 1<<30)
			require.NoError(t, err)
			counting := &countingBackend{Backend: e.b}
			r, err := store.Open(e.ctx, counting, store.Options{Cache: cache, Index: e.ix, Workers: 4})
			require.NoError(t, err)
			plain := filepath.Join(t.TempDir(), "plain")
			_, err = r.Pull(e.ctx, "c", "100", plain, store.PullOptions{})
			require.NoError(t, err)
			// The plain pull hashed nothing again: its entries are named by
			// key and mode alone, and sealed (their chunks were checked as
			// they were written).
			for p := range want {
				entries := cacheEntriesWith(t, cache.Dir(), want[p])
				require.Len(t, entries, 1, p)
				name := filepath.Base(entries[0])
				assert.Len(t, strings.Split(name, "-"), 2, "%s: entry %s", p, name)
				assert.FileExists(t, filepath.Join(cache.Dir(), "seals", name), p)
			}

			before := counting.blobGets.Load()
			linked := filepath.Join(t.TempDir(), "linked")
			res, err := r.Pull(e.ctx, "c", "100", linked, store.PullOptions{Link: true})
			require.NoError(t, err)
			assert.Equal(t, before, counting.blobGets.Load(), "the plain pull fed the cache: nothing to download")
			assert.Equal(t, map[store.LinkMethod]int{store.LinkHardlink: len(want)}, res.Linked)
			assert.Equal(t, digests(want), digests(testutil.ReadTree(t, linked)))
			for p := range want {
				a, err := os.Stat(filepath.Join(plain, p))
				require.NoError(t, err)
				b, err := os.Stat(filepath.Join(linked, p))
				require.NoError(t, err)
				assert.True(t, os.SameFile(a, b), "%s: linked, not copied", p)
			}

			// Edited through the plain pull's folder: never linked again.
			const victim = "model.safetensors"
			flipByte(t, filepath.Join(plain, victim))
			before = counting.blobGets.Load()
			again := filepath.Join(t.TempDir(), "again")
			_, err = r.Pull(e.ctx, "c", "100", again, store.PullOptions{Link: true})
			require.NoError(t, err)
			assert.Equal(t, digests(want), digests(testutil.ReadTree(t, again)), "an edited entry was served")
			assert.Greater(t, counting.blobGets.Load(), before, "the edited file's blobs are fetched again")
			a, err := os.Stat(filepath.Join(plain, victim))
			require.NoError(t, err)
			b, err := os.Stat(filepath.Join(again, victim))
			require.NoError(t, err)
			assert.False(t, os.SameFile(a, b))
		})
	}
}

// The two caches of earlier versions (pulled/: hard links named by key;
// files/: --link entries) are taken over: their entries are moved into the
// content cache, checked before their first use, and the old folders
// removed; anything else in them (a planted link, a stray file) is dropped,
// never followed.
func TestContentCacheAdoptsOldFolders(t *testing.T) {
	withUmask(t, 0o022)
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	e.push(ckpts[0], "c", store.PushOptions{})
	want := runnableTree(t, ckpts[0])
	root := t.TempDir()
	files, pulled := filepath.Join(root, "files"), filepath.Join(root, "pulled")

	// files/ as an earlier --link left it.
	old, err := store.OpenContentCache(files, 1<<30)
	require.NoError(t, err)
	r, err := store.Open(e.ctx, e.b, store.Options{Cache: old})
	require.NoError(t, err)
	_, err = r.Pull(e.ctx, "c", "100", filepath.Join(t.TempDir(), "old-link"), store.PullOptions{Link: true})
	require.NoError(t, err)
	require.NoError(t, os.RemoveAll(filepath.Join(files, "seals")))
	// pulled/ as an earlier plain pull left it: entries named by key alone.
	require.NoError(t, os.CopyFS(pulled, os.DirFS(files)))
	stripRecords(t, pulled)
	victim := cacheEntriesWith(t, files, want["model.safetensors"])
	require.Len(t, victim, 1)
	flipByte(t, victim[0]) // damaged in the old folder: pulled/'s copy serves
	outside := filepath.Join(t.TempDir(), "outside")
	require.NoError(t, os.WriteFile(outside, []byte("not ckpt's"), 0o644))
	require.NoError(t, os.Symlink(outside, filepath.Join(pulled, "planted")))

	cache, err := store.OpenContentCache(filepath.Join(root, "content"), 1<<30)
	require.NoError(t, err)
	for _, dir := range []string{files, pulled} {
		moved, err := cache.Adopt(dir)
		require.NoError(t, err)
		assert.Positive(t, moved, dir)
		assert.NoDirExists(t, dir)
	}
	content, err := os.ReadFile(outside)
	require.NoError(t, err)
	assert.Equal(t, "not ckpt's", string(content), "a planted link was followed")

	counting := &countingBackend{Backend: e.b}
	r, err = store.Open(e.ctx, counting, store.Options{Cache: cache, Index: e.ix})
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "new")
	_, err = r.Pull(e.ctx, "c", "100", out, store.PullOptions{Link: true})
	require.NoError(t, err)
	assert.Equal(t, digests(want), digests(testutil.ReadTree(t, out)), "a damaged adopted entry was served")
	assert.Zero(t, counting.blobGets.Load(), "the adopted entries are used")
}
