package hfcache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testRepo   = "ckpt-test/tiny-gpt2"
	testFolder = "models--ckpt-test--tiny-gpt2"
)

var (
	testRevision  = RevisionFor([32]byte{1})
	otherRevision = RevisionFor([32]byte{2})
)

// testFiles is a small model: known and unknown SHA-256s, a nested path,
// an empty file, two paths with the same content, and weights of a few
// MiB read from disk.
type testFile struct {
	path string
	data []byte
	// knownSHA says whether FileSource.SHA256 is given.
	knownSHA bool
}

func testFiles(t *testing.T) []testFile {
	t.Helper()
	weights := make([]byte, 3<<20+12345)
	r := rand.NewChaCha8([32]byte{42})
	_, _ = r.Read(weights)
	return []testFile{
		{path: "config.json", data: []byte(`{"model_type": "gpt2", "n_layer": 2}` + "\n"), knownSHA: true},
		{path: "generation_config.json", data: []byte(`{"max_length": 20}`)},
		{path: "tokenizer.json", data: bytes.Repeat([]byte(`{"vocab": {}}`), 100)},
		{path: "model.safetensors", data: weights, knownSHA: true},
		{path: "onnx/model.onnx", data: []byte(strings.Repeat("onnx", 5000))},
		{path: "onnx/deeper/empty.txt", data: []byte{}},
		{path: "copy_of_config.json", data: []byte(`{"model_type": "gpt2", "n_layer": 2}` + "\n")},
	}
}

// counted counts the calls of a Content.
type counted struct {
	inner io.WriterTo
	calls *int
}

func (c counted) WriteTo(w io.Writer) (int64, error) { *c.calls++; return c.inner.WriteTo(w) }

// sources makes FileSources of files; the weights are read from a file on
// disk. calls counts Content calls.
func sources(t *testing.T, files []testFile, calls *int) []FileSource {
	t.Helper()
	dir := t.TempDir()
	var out []FileSource
	for _, f := range files {
		var content io.WriterTo = BytesContent(f.data)
		if len(f.data) > 1<<20 {
			name := filepath.Join(dir, "weights")
			require.NoError(t, os.WriteFile(name, f.data, 0o644))
			content = FileContent(name)
		}
		src := FileSource{Path: f.path, Size: int64(len(f.data)), Content: counted{content, calls}}
		if f.knownSHA {
			src.SHA256 = sha256Hex(f.data)
		}
		out = append(out, src)
	}
	return out
}

func TestWriteSnapshotLayout(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "hub")
	files := testFiles(t)
	var calls int
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "", sources(t, files, &calls)))
	assert.Equal(t, len(files), calls, "each content is written once")

	repoDir := filepath.Join(cache, testFolder)
	for _, f := range files {
		sum := sha256Hex(f.data)
		data, err := os.ReadFile(filepath.Join(repoDir, "blobs", sum))
		require.NoError(t, err, "blob of %s", f.path)
		assert.Equal(t, f.data, data, "blob of %s", f.path)
		link := filepath.Join(repoDir, "snapshots", testRevision, filepath.FromSlash(f.path))
		target, err := os.Readlink(link)
		require.NoError(t, err, "%s is a symlink", f.path)
		want := map[int]string{0: "../../blobs/", 1: "../../../blobs/", 2: "../../../../blobs/"}[strings.Count(f.path, "/")] + sum
		assert.Equal(t, want, target, "relative link of %s", f.path)
	}
	ref, err := os.ReadFile(filepath.Join(repoDir, "refs", "main"))
	require.NoError(t, err)
	assert.Equal(t, testRevision, string(ref), "refs/main holds the revision, without a newline")

	blobs, err := os.ReadDir(filepath.Join(repoDir, "blobs"))
	require.NoError(t, err)
	assert.Len(t, blobs, len(files)-1, "one blob per distinct content, no temporary files")
	_, err = os.Stat(filepath.Join(repoDir, ".no_exist"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "ckpt never writes .no_exist")

	snap, err := FindSnapshot(cache, testRepo, "main")
	require.NoError(t, err)
	assert.Equal(t, testRevision, snap.Commit)
	require.Len(t, snap.Files, len(files))
	byPath := map[string]File{}
	for _, f := range snap.Files {
		byPath[f.Path] = f
	}
	realBlobs, err := filepath.EvalSymlinks(filepath.Join(repoDir, "blobs"))
	require.NoError(t, err)
	for _, f := range files {
		got := byPath[f.path]
		assert.Equal(t, int64(len(f.data)), got.Size, f.path)
		assert.Equal(t, filepath.Join(realBlobs, sha256Hex(f.data)), got.Blob, f.path)
		assert.True(t, got.Linked, f.path)
	}
}

// entryState is what a rerun must not change about an entry of the cache.
type entryState struct {
	Mode   fs.FileMode
	Size   int64
	Ino    uint64
	Mtime  int64
	Target string
}

func cacheState(t *testing.T, dir string) map[string]entryState {
	t.Helper()
	state := map[string]entryState{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		info, err := d.Info()
		require.NoError(t, err)
		e := entryState{Mode: info.Mode(), Size: info.Size(), Ino: inode(info), Mtime: info.ModTime().UnixNano()}
		if d.Type()&fs.ModeSymlink != 0 {
			e.Target, _ = os.Readlink(p)
		}
		if d.IsDir() {
			e.Size, e.Mtime = 0, 0 // a folder's are the file system's
		}
		rel, _ := filepath.Rel(dir, p)
		state[rel] = e
		return nil
	}))
	return state
}

func TestWriteSnapshotIsIdempotent(t *testing.T) {
	cache := t.TempDir()
	files := testFiles(t)
	var calls int
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", sources(t, files, &calls)))
	before := cacheState(t, cache)

	calls = 0
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", sources(t, files, &calls)))
	assert.Equal(t, before, cacheState(t, cache), "a rerun with the same content changes nothing")
	assert.Zero(t, calls, "no content is produced again: the snapshot's links name blobs that verify")
}

// A blob edited in place (through the snapshot's symlink) no longer
// matches its name: a rerun rewrites it, SHA-256 known or not.
func TestWriteSnapshotRewritesTamperedBlobs(t *testing.T) {
	cache := t.TempDir()
	files := testFiles(t)
	var calls int
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", sources(t, files, &calls)))
	for _, f := range files[:3] { // config.json (SHA-256 known), generation_config.json and tokenizer.json (not)
		link := filepath.Join(cache, testFolder, "snapshots", testRevision, f.path)
		require.NoError(t, os.WriteFile(link, bytes.Repeat([]byte("!"), len(f.data)), 0o644))
	}
	calls = 0
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", sources(t, files, &calls)))
	assert.Equal(t, 3, calls, "the tampered files are produced again, and only they")
	snap, err := FindSnapshot(cache, testRepo, "main")
	require.NoError(t, err)
	for _, f := range snap.Files {
		data, err := os.ReadFile(f.Blob)
		require.NoError(t, err)
		assert.Equal(t, filepath.Base(f.Blob), sha256Hex(data), f.Path)
	}
}

func TestWriteSnapshotVerifiesExistingBlobs(t *testing.T) {
	data := []byte("the right content of config.json\n")
	sum := sha256Hex(data)
	outside := filepath.Join(t.TempDir(), "outside")
	require.NoError(t, os.WriteFile(outside, []byte("not to be touched"), 0o644))

	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, blob string)
	}{
		{"same size, other content", func(t *testing.T, blob string) {
			require.NoError(t, os.WriteFile(blob, bytes.Repeat([]byte("x"), len(data)), 0o644))
		}},
		{"truncated", func(t *testing.T, blob string) { require.NoError(t, os.WriteFile(blob, data[:5], 0o644)) }},
		{"longer", func(t *testing.T, blob string) {
			require.NoError(t, os.WriteFile(blob, append(bytes.Clone(data), 'x'), 0o644))
		}},
		{"a symlink out of the cache", func(t *testing.T, blob string) { require.NoError(t, os.Symlink(outside, blob)) }},
	} {
		for _, known := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, SHA-256 known %v", tc.name, known), func(t *testing.T) {
				cache := t.TempDir()
				blobs := filepath.Join(cache, testFolder, "blobs")
				require.NoError(t, os.MkdirAll(blobs, 0o755))
				tc.plant(t, filepath.Join(blobs, sum))
				src := FileSource{Path: "config.json", Size: int64(len(data)), Content: BytesContent(data)}
				if known {
					src.SHA256 = sum
				}
				require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "", []FileSource{src}))
				info, err := os.Lstat(filepath.Join(blobs, sum))
				require.NoError(t, err)
				assert.True(t, info.Mode().IsRegular(), "the blob is a regular file again")
				got, err := os.ReadFile(filepath.Join(blobs, sum))
				require.NoError(t, err)
				assert.Equal(t, data, got, "the wrong blob was replaced")
				kept, err := os.ReadFile(outside)
				require.NoError(t, err)
				assert.Equal(t, "not to be touched", string(kept))
			})
		}
	}

	t.Run("a folder in the way", func(t *testing.T) {
		cache := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(cache, testFolder, "blobs", sum), 0o755))
		err := WriteSnapshot(cache, testRepo, testRevision, "", []FileSource{{Path: "config.json", Size: int64(len(data)), SHA256: sum, Content: BytesContent(data)}})
		assert.ErrorIs(t, err, ErrCorrupt)
		assert.ErrorContains(t, err, "taken by a folder")
	})
}

func TestWriteSnapshotRepairsSnapshotEntries(t *testing.T) {
	cache := t.TempDir()
	files := testFiles(t)[:2]
	snapDir := filepath.Join(cache, testFolder, "snapshots", testRevision)
	require.NoError(t, os.MkdirAll(snapDir, 0o755))
	require.NoError(t, os.Symlink("../../blobs/"+strings.Repeat("0", 64), filepath.Join(snapDir, files[0].path)))
	require.NoError(t, os.WriteFile(filepath.Join(snapDir, files[1].path), []byte("stale copy"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(snapDir, "kept.txt"), []byte("not ours to remove"), 0o644))

	var calls int
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "", sources(t, files, &calls)))
	for _, f := range files {
		target, err := os.Readlink(filepath.Join(snapDir, f.path))
		require.NoError(t, err)
		assert.Equal(t, "../../blobs/"+sha256Hex(f.data), target)
	}
	kept, err := os.ReadFile(filepath.Join(snapDir, "kept.txt"))
	require.NoError(t, err)
	assert.Equal(t, "not ours to remove", string(kept), "files outside the list are left alone")

	require.NoError(t, os.MkdirAll(filepath.Join(snapDir, "config.json.d"), 0o755))
	err = WriteSnapshot(cache, testRepo, testRevision, "", []FileSource{{Path: "config.json.d", Content: BytesContent(nil)}})
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.ErrorContains(t, err, "a folder is in the way")
}

func TestWriteSnapshotRemovesNoExistMarkers(t *testing.T) {
	cache := t.TempDir()
	noExist := filepath.Join(cache, testFolder, ".no_exist", testRevision)
	require.NoError(t, os.MkdirAll(filepath.Join(noExist, "onnx"), 0o755))
	for _, p := range []string{"config.json", "onnx/model.onnx", "adapter_config.json"} {
		require.NoError(t, os.WriteFile(filepath.Join(noExist, filepath.FromSlash(p)), nil, 0o644))
	}
	var calls int
	files := testFiles(t)
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "", sources(t, files, &calls)))
	for _, p := range []string{"config.json", "onnx/model.onnx"} {
		assert.NoFileExists(t, filepath.Join(noExist, filepath.FromSlash(p)), "the marker of a written file would hide it")
	}
	assert.FileExists(t, filepath.Join(noExist, "adapter_config.json"), "other markers stay")
}

func TestWriteSnapshotBranches(t *testing.T) {
	cache := t.TempDir()
	one := []FileSource{{Path: "config.json", Size: 3, Content: BytesContent([]byte("one"))}}
	two := []FileSource{{Path: "config.json", Size: 3, Content: BytesContent([]byte("two"))}}
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "", one))
	require.NoError(t, WriteSnapshot(cache, testRepo, otherRevision, "main", two))
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "v1", one))
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "refs/pr/1", one))

	for rev, want := range map[string]string{"": otherRevision, "main": otherRevision, "v1": testRevision, "refs/pr/1": testRevision, testRevision: testRevision} {
		snap, err := FindSnapshot(cache, testRepo, rev)
		require.NoError(t, err, rev)
		assert.Equal(t, want, snap.Commit, rev)
		data, err := os.ReadFile(snap.Files[0].Blob)
		require.NoError(t, err)
		assert.Equal(t, map[string]string{testRevision: "one", otherRevision: "two"}[want], string(data))
	}
}

func TestWriteSnapshotRefusesBadInput(t *testing.T) {
	ok := FileSource{Path: "config.json", Size: 2, Content: BytesContent([]byte("{}"))}
	with := func(mod func(*FileSource)) []FileSource { f := ok; mod(&f); return []FileSource{f} }
	for _, tc := range []struct {
		name                   string
		repo, revision, branch string
		files                  []FileSource
		msg                    string
	}{
		{name: "repo id", repo: "a--b", msg: "invalid Hugging Face repo id"},
		{name: "revision is a branch name", revision: "main", msg: "not a full commit hash"},
		{name: "revision in upper case", revision: strings.ToUpper(testRevision), msg: "not a full commit hash"},
		{name: "revision abbreviated", revision: testRevision[:39], msg: "not a full commit hash"},
		{name: "branch escapes", branch: "../../x", msg: `branch "../../x"`},
		{name: "branch absolute", branch: "/tmp/x", msg: "absolute"},
		{name: "branch is a commit hash", branch: otherRevision, msg: "is a commit hash"},
		{name: "branch with a newline", branch: "a\nb", msg: "control character"},
		{name: "path escapes", files: with(func(f *FileSource) { f.Path = "../../../x" }), msg: `contains ".."`},
		{name: "path absolute", files: with(func(f *FileSource) { f.Path = "/etc/x" }), msg: "absolute"},
		{name: "path with a backslash", files: with(func(f *FileSource) { f.Path = `..\..\x` }), msg: "backslash"},
		{name: "path empty", files: with(func(f *FileSource) { f.Path = "" }), msg: "empty path"},
		{name: "path not clean", files: with(func(f *FileSource) { f.Path = "a/./b" }), msg: "not clean"},
		{name: "path with a drive", files: with(func(f *FileSource) { f.Path = "C:x" }), msg: "drive"},
		{name: "path with a control character", files: with(func(f *FileSource) { f.Path = "a\x1bb" }), msg: "control character"},
		{name: "negative size", files: with(func(f *FileSource) { f.Size = -1 }), msg: "negative size"},
		{name: "no content", files: with(func(f *FileSource) { f.Content = nil }), msg: "no content"},
		{name: "bad SHA256", files: with(func(f *FileSource) { f.SHA256 = strings.ToUpper(sha256Hex([]byte("{}"))) }), msg: "64 lowercase hex"},
		{name: "path twice", files: append(with(func(*FileSource) {}), ok), msg: "given twice"},
		{name: "file and folder", files: []FileSource{ok, {Path: "a", Content: BytesContent(nil)}, {Path: "a.txt", Content: BytesContent(nil)}, {Path: "a/b/c", Content: BytesContent(nil)}},
			msg: "a is a file and also the folder of a/b/c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := filepath.Join(t.TempDir(), "hub")
			repo, revision, files := testRepo, testRevision, []FileSource{ok}
			if tc.repo != "" {
				repo = tc.repo
			}
			if tc.revision != "" {
				revision = tc.revision
			}
			if tc.files != nil {
				files = tc.files
			}
			err := WriteSnapshot(cache, repo, revision, tc.branch, files)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
			assert.NoDirExists(t, cache, "nothing is written before the input is checked")
		})
	}
}

// failingContent writes part of its data, then fails.
type failingContent struct{ data []byte }

func (f failingContent) WriteTo(w io.Writer) (int64, error) {
	n, _ := w.Write(f.data[:len(f.data)/2])
	return int64(n), errors.New("the registry went away")
}

func TestWriteSnapshotRefusesWrongContent(t *testing.T) {
	data := []byte("weights weights weights")
	for _, tc := range []struct {
		name string
		src  FileSource
		msg  string
	}{
		{"shorter than its size", FileSource{Size: int64(len(data)) + 1, Content: BytesContent(data)}, "content is 23 bytes, not the expected 24"},
		{"longer than its size", FileSource{Size: int64(len(data)) - 1, Content: BytesContent(data)}, "content is 23 bytes, not the expected 22"},
		{"another SHA-256", FileSource{Size: int64(len(data)), SHA256: sha256Hex([]byte("other")), Content: BytesContent(data)}, "not the expected " + sha256Hex([]byte("other"))},
		{"failing midway", FileSource{Size: int64(len(data)), Content: failingContent{data}}, "the registry went away"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			good := []byte("{}")
			require.NoError(t, WriteSnapshot(cache, testRepo, otherRevision, "main", []FileSource{{Path: "config.json", Size: 2, Content: BytesContent(good)}}))
			before := cacheState(t, cache)

			tc.src.Path = "model.safetensors"
			files := []FileSource{{Path: "config.json", Size: 2, Content: BytesContent(good)}, tc.src}
			err := WriteSnapshot(cache, testRepo, testRevision, "main", files)
			require.Error(t, err)
			assert.ErrorContains(t, err, "model.safetensors: ")
			assert.ErrorContains(t, err, tc.msg)

			after := cacheState(t, cache)
			delete(after, filepath.Join(testFolder, "blobs")) // its mtime moved with the removed temporary file
			delete(before, filepath.Join(testFolder, "blobs"))
			assert.Equal(t, before, after, "a refused file leaves no blob, no temporary file, no snapshot and no ref change")
			ref, err := os.ReadFile(filepath.Join(cache, testFolder, "refs", "main"))
			require.NoError(t, err)
			assert.Equal(t, otherRevision, string(ref))
		})
	}
}

// Symlinks planted in the cache must not lead a write out of the
// repository folder.
func TestWriteSnapshotRefusesPlantedSymlinks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		link  string // made a symlink to the outside folder
		msg   string
		fails bool
	}{
		{name: "blobs", link: "blobs", msg: "blobs: refusing to write through it: it is a symlink", fails: true},
		{name: "snapshots", link: "snapshots", msg: "snapshots: refusing to write through it: it is a symlink", fails: true},
		{name: "the snapshot", link: "snapshots/" + testRevision, msg: "refusing to write through it", fails: true},
		{name: "a folder of the snapshot", link: "snapshots/" + testRevision + "/onnx", msg: "onnx: refusing to write through it", fails: true},
		{name: "refs", link: "refs", msg: "refs: refusing to write through it", fails: true},
		{name: "a folder of refs", link: "refs/refs", msg: "refs/refs: refusing to write through it", fails: true},
		{name: ".no_exist of the revision", link: ".no_exist/" + testRevision},
		{name: "a file of the snapshot", link: "snapshots/" + testRevision + "/config.json"},
		{name: "the ref", link: "refs/main"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			outside := t.TempDir()
			for _, p := range []string{"main", "config.json", "onnx/model.onnx"} {
				require.NoError(t, os.MkdirAll(filepath.Join(outside, "onnx"), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(outside, filepath.FromSlash(p)), []byte("outside"), 0o644))
			}
			outsideBefore := cacheState(t, outside)
			planted := filepath.Join(cache, testFolder, filepath.FromSlash(tc.link))
			require.NoError(t, os.MkdirAll(filepath.Dir(planted), 0o755))
			target := outside
			if strings.HasSuffix(tc.link, "main") {
				target = filepath.Join(outside, "main")
			} else if strings.HasSuffix(tc.link, "config.json") {
				target = filepath.Join(outside, "config.json")
			}
			require.NoError(t, os.Symlink(target, planted))

			var calls int
			err := WriteSnapshot(cache, testRepo, testRevision, "refs/pr/1", sources(t, testFiles(t)[:5], &calls))
			if tc.link == "refs/main" {
				err = WriteSnapshot(cache, testRepo, testRevision, "main", sources(t, testFiles(t)[:5], &calls))
			}
			if tc.fails {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrCorrupt)
				assert.ErrorContains(t, err, tc.msg)
			} else {
				require.NoError(t, err, "the planted symlink is replaced or ignored, not followed")
				snap, err := FindSnapshot(cache, testRepo, testRevision)
				require.NoError(t, err)
				assert.Len(t, snap.Files, 5)
			}
			assert.Equal(t, outsideBefore, cacheState(t, outside), "nothing outside the repository folder changed")
		})
	}
}

func TestWriteSnapshotConcurrentWriters(t *testing.T) {
	cache := t.TempDir()
	files := testFiles(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		srcs := sources(t, files, new(int))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = WriteSnapshot(cache, testRepo, testRevision, "main", srcs)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	snap, err := FindSnapshot(cache, testRepo, "main")
	require.NoError(t, err)
	require.Len(t, snap.Files, len(files))
	for _, f := range snap.Files {
		data, err := os.ReadFile(f.Blob)
		require.NoError(t, err)
		assert.Equal(t, sha256Hex(data), filepath.Base(f.Blob), f.Path)
	}
	blobs, err := os.ReadDir(filepath.Join(cache, testFolder, "blobs"))
	require.NoError(t, err)
	for _, b := range blobs {
		assert.False(t, strings.HasPrefix(b.Name(), ".ckpt-"), "temporary file %s left behind", b.Name())
	}
}

func TestWriteSnapshotEmpty(t *testing.T) {
	cache := t.TempDir()
	require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "", nil))
	snap, err := FindSnapshot(cache, testRepo, "main")
	require.NoError(t, err)
	assert.Empty(t, snap.Files)
}

func TestRevisionFor(t *testing.T) {
	var seq [32]byte
	for i := range seq {
		seq[i] = byte(i)
	}
	// Golden values from: { printf 'ckpt hf-cache revision v1\0'; <the 32 bytes>; } | sha256sum | cut -c1-40
	assert.Equal(t, "bdd23c05c933b0c52bf719dd361d3cb353a1ec90", RevisionFor(seq))
	assert.Equal(t, "71e2e4d12b614dece0df8ba1e07b2c1a5c62b4a2", RevisionFor([32]byte{}))
	assert.True(t, IsCommitHash(RevisionFor(seq)))
	assert.NotEqual(t, RevisionFor([32]byte{1}), RevisionFor([32]byte{2}))

	type manifestID [32]byte // store.ID is such a type
	assert.Equal(t, RevisionFor(seq), RevisionFor(manifestID(seq)))
}
