package layout

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeTree creates files (slash paths, parents made as needed) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, contents := range files {
		full := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(contents), 0o644))
	}
}

func TestScanDir(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"config.json":         "{}",
		"model.safetensors":   "0123456789",
		".gitattributes":      "*.safetensors filter=lfs",
		"a.txt":               "a",
		"a/b":                 "bb",
		"runs/events.out":     "",
		"global_step10/x.pt":  "xyz",
		"deep/er/vocab.json":  "{}",
		"training_args.bin":   "args",
		"trainer_state.json":  "{}",
		"scripts/run.sh":      "#!/bin/sh",
		"emptydir/.keep/.not": "",
	})
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "really-empty"), 0o755))
	require.NoError(t, os.Chmod(filepath.Join(dir, "scripts/run.sh"), 0o750))
	require.NoError(t, os.Chmod(filepath.Join(dir, "model.safetensors"), 0o600))

	entries, err := ScanDir(dir)
	require.NoError(t, err)
	assert.Equal(t, []Entry{
		{Path: ".gitattributes", Size: 24, Mode: 0o644, Role: RoleOther},
		{Path: "a.txt", Size: 1, Mode: 0o644, Role: RoleOther},
		{Path: "a/b", Size: 2, Mode: 0o644, Role: RoleOther},
		{Path: "config.json", Size: 2, Mode: 0o644, Role: RoleConfig},
		{Path: "deep/er/vocab.json", Size: 2, Mode: 0o644, Role: RoleTokenizer},
		{Path: "emptydir/.keep/.not", Size: 0, Mode: 0o644, Role: RoleOther},
		{Path: "global_step10/x.pt", Size: 3, Mode: 0o644, Role: RoleResumeState},
		{Path: "model.safetensors", Size: 10, Mode: 0o600, Role: RoleWeights},
		{Path: "runs/events.out", Size: 0, Mode: 0o644, Role: RoleOther},
		{Path: "scripts/run.sh", Size: 9, Mode: 0o750, Role: RoleOther},
		{Path: "trainer_state.json", Size: 2, Mode: 0o644, Role: RoleTrainerState},
		{Path: "training_args.bin", Size: 4, Mode: 0o644, Role: RoleResumeState},
	}, entries)
}

func TestScanDirSymlinks(t *testing.T) {
	t.Run("inside the folder", func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{
			"blobs/abc":      "weights!",
			"real/tok.json":  "{}",
			"real/sub/x.bin": "x",
		})
		require.NoError(t, os.Chmod(filepath.Join(dir, "blobs/abc"), 0o640))
		links := map[string]string{
			"model.safetensors":      "blobs/abc",        // file, relative
			"nested/config.json":     "../real/tok.json", // file, from a subfolder
			"chain":                  "model.safetensors",
			"alias":                  "real",  // directory: not descended into
			"real/sub/loop":          "../..", // the root itself: no loop
			"absolute.safetensors":   filepath.Join(dir, "blobs", "abc"),
			"real/sub/self-link.bin": "x.bin",
		}
		for link, target := range links {
			full := filepath.Join(dir, filepath.FromSlash(link))
			require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
			require.NoError(t, os.Symlink(filepath.FromSlash(target), full))
		}

		entries, err := ScanDir(dir)
		require.NoError(t, err)
		assert.Equal(t, []Entry{
			{Path: "absolute.safetensors", Size: 8, Mode: 0o640, Role: RoleWeights, Linked: true},
			{Path: "blobs/abc", Size: 8, Mode: 0o640, Role: RoleOther},
			{Path: "chain", Size: 8, Mode: 0o640, Role: RoleOther, Linked: true},
			{Path: "model.safetensors", Size: 8, Mode: 0o640, Role: RoleWeights, Linked: true},
			{Path: "nested/config.json", Size: 2, Mode: 0o644, Role: RoleConfig, Linked: true},
			{Path: "real/sub/self-link.bin", Size: 1, Mode: 0o644, Role: RoleOther, Linked: true},
			{Path: "real/sub/x.bin", Size: 1, Mode: 0o644, Role: RoleOther},
			{Path: "real/tok.json", Size: 2, Mode: 0o644, Role: RoleOther},
		}, entries)
	})

	t.Run("the folder itself through a symlink", func(t *testing.T) {
		base := t.TempDir()
		real := filepath.Join(base, "real")
		writeTree(t, real, map[string]string{"weights/model.safetensors": "w"})
		require.NoError(t, os.Symlink("weights/model.safetensors", filepath.Join(real, "model.safetensors")))
		linkedDir := filepath.Join(base, "linked")
		require.NoError(t, os.Symlink(real, linkedDir))

		entries, err := ScanDir(linkedDir)
		require.NoError(t, err)
		assert.Equal(t, []Entry{
			{Path: "model.safetensors", Size: 1, Mode: 0o644, Role: RoleWeights, Linked: true},
			{Path: "weights/model.safetensors", Size: 1, Mode: 0o644, Role: RoleWeights},
		}, entries)
	})

	// A link to a regular file is followed wherever the file is, as cp -rL
	// and hf upload do: a snapshot of the Hugging Face cache links every
	// file to ../../blobs/, outside the snapshot folder.
	t.Run("to regular files outside the folder", func(t *testing.T) {
		base := t.TempDir()
		outside := filepath.Join(base, "elsewhere")
		writeTree(t, outside, map[string]string{"w.bin": "weights!!", "tok": "{}", "deep/cfg": "cfg"})
		require.NoError(t, os.Chmod(filepath.Join(outside, "w.bin"), 0o600))
		dir := filepath.Join(base, "snap")
		writeTree(t, dir, map[string]string{"README.md": "hi"})
		links := map[string]string{
			"model.safetensors":  "../elsewhere/w.bin",                  // relative, up and out
			"sub/tokenizer.json": "../../elsewhere/tok",                 // from a subfolder
			"config.json":        filepath.Join(outside, "deep", "cfg"), // absolute
			"hop.json":           "model.safetensors",                   // inside link to an outside link
		}
		for link, target := range links {
			full := filepath.Join(dir, filepath.FromSlash(link))
			require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
			require.NoError(t, os.Symlink(filepath.FromSlash(target), full))
		}

		entries, err := ScanDir(dir)
		require.NoError(t, err)
		assert.Equal(t, []Entry{
			{Path: "README.md", Size: 2, Mode: 0o644, Role: RoleOther},
			{Path: "config.json", Size: 3, Mode: 0o644, Role: RoleConfig, Linked: true},
			{Path: "hop.json", Size: 9, Mode: 0o600, Role: RoleOther, Linked: true},
			{Path: "model.safetensors", Size: 9, Mode: 0o600, Role: RoleWeights, Linked: true},
			{Path: "sub/tokenizer.json", Size: 2, Mode: 0o644, Role: RoleTokenizer, Linked: true},
		}, entries)
	})

	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"x": "secret"})
	require.NoError(t, os.Symlink("loop", filepath.Join(outside, "loop")))
	tests := []struct {
		name    string
		links   map[string]string // link -> target
		failing string            // the link the error names
		wantErr string
		is      error
	}{
		{
			name:    "to a directory outside",
			links:   map[string]string{"ext": outside},
			failing: "ext",
			wantErr: "symlink points to a directory outside the folder (" + outside + ")",
			is:      ErrSymlinkOutside,
		},
		{
			name:    "relative, escaping with ..",
			links:   map[string]string{"up": "../"},
			failing: "up",
			wantErr: "symlink points to a directory outside the folder",
			is:      ErrSymlinkOutside,
		},
		{
			name:    "through an inside link to a directory outside",
			links:   map[string]string{"hop1": "hop2", "hop2": outside},
			failing: "hop1",
			wantErr: "symlink points to a directory outside the folder",
			is:      ErrSymlinkOutside,
		},
		{
			name:    "through a directory outside to a file",
			links:   map[string]string{"model.safetensors": "ext/x", "ext": outside},
			failing: "ext",
			wantErr: "symlink points to a directory outside the folder",
			is:      ErrSymlinkOutside,
		},
		{
			name:    "dangling",
			links:   map[string]string{"gone.safetensors": "nowhere"},
			failing: "gone.safetensors",
			wantErr: "cannot resolve symlink",
			is:      fs.ErrNotExist,
		},
		{
			name:    "loop",
			links:   map[string]string{"ping": "pong", "pong": "ping"},
			failing: "ping",
			wantErr: "cannot resolve symlink",
		},
		{
			name:    "loop through the outside",
			links:   map[string]string{"out.json": filepath.Join(outside, "loop")},
			failing: "out.json",
			wantErr: "cannot resolve symlink",
		},
		{
			name:    "dangling, outside",
			links:   map[string]string{"gone.bin": filepath.Join(outside, "missing")},
			failing: "gone.bin",
			wantErr: "cannot resolve symlink",
			is:      fs.ErrNotExist,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{"config.json": "{}"})
			for link, target := range tt.links {
				full := filepath.Join(dir, filepath.FromSlash(link))
				require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
				require.NoError(t, os.Symlink(target, full))
			}
			entries, err := ScanDir(dir)
			assert.Nil(t, entries)
			require.ErrorContains(t, err, filepath.Join(dir, filepath.FromSlash(tt.failing))+": "+tt.wantErr)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
		})
	}
}

func TestScanDirEmptyFolder(t *testing.T) {
	for name, subdirs := range map[string][]string{
		"nothing at all":        nil,
		"only empty subfolders": {"a", "b/c"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for _, sub := range subdirs {
				require.NoError(t, os.MkdirAll(filepath.Join(dir, sub), 0o755))
			}
			_, err := ScanDir(dir)
			require.ErrorIs(t, err, ErrEmptyFolder)
			assert.EqualError(t, err, dir+": folder has no files")
		})
	}
}

func TestScanDirNotAFolder(t *testing.T) {
	dir := t.TempDir()
	_, err := ScanDir(filepath.Join(dir, "absent"))
	require.ErrorIs(t, err, fs.ErrNotExist)

	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err = ScanDir(file)
	require.EqualError(t, err, file+": not a directory")
}

// TestScanDirUnreadable uses permissions when it can. Run as root (as in
// many containers), chmod 000 does not stop reads, so there the test checks
// that the files are listed, as they can be read; the error paths are then
// covered by TestScanDirInjectedReadFailures, with faults injected at the
// same file system calls.
func TestScanDirUnreadable(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"config.json":         "{}",
		"locked.safetensors":  "w",
		"lockeddir/vocab.txt": "v",
	})
	lockedFile := filepath.Join(dir, "locked.safetensors")
	lockedDir := filepath.Join(dir, "lockeddir")
	require.NoError(t, os.Chmod(lockedFile, 0))
	t.Cleanup(func() { _ = os.Chmod(lockedDir, 0o755) }) // let t.TempDir remove it

	if os.Geteuid() == 0 {
		require.NoError(t, os.Chmod(lockedDir, 0))
		entries, err := ScanDir(dir)
		require.NoError(t, err, "root reads whatever the permissions")
		require.Len(t, entries, 3)
		assert.Equal(t, Entry{Path: "locked.safetensors", Size: 1, Mode: 0, Role: RoleWeights}, entries[1])
		return
	}

	_, err := ScanDir(dir)
	require.ErrorIs(t, err, fs.ErrPermission)
	assert.ErrorContains(t, err, lockedFile+": unreadable")

	require.NoError(t, os.Chmod(lockedFile, 0o644))
	require.NoError(t, os.Chmod(lockedDir, 0))
	_, err = ScanDir(dir)
	require.ErrorIs(t, err, fs.ErrPermission)
	assert.ErrorContains(t, err, lockedDir)
}

func TestScanDirInjectedReadFailures(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"config.json":   "{}",
		"sub/vocab.txt": "v",
		"README.md":     "",
	})
	sub := filepath.Join(dir, "sub")
	vocab := filepath.Join(dir, "sub", "vocab.txt")
	denied := &fs.PathError{Op: "open", Err: fs.ErrPermission}

	t.Run("unreadable file", func(t *testing.T) {
		scanner := osScanner
		scanner.checkRead = func(name string) error {
			if name == vocab {
				denied.Path = name
				return denied
			}
			return nil
		}
		_, err := scanner.scan(dir)
		require.ErrorIs(t, err, fs.ErrPermission)
		assert.ErrorContains(t, err, vocab+": unreadable: open "+vocab+": permission denied")
	})

	t.Run("unreadable subfolder", func(t *testing.T) {
		scanner := osScanner
		scanner.readDir = func(name string) ([]fs.DirEntry, error) {
			if name == sub {
				return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
			}
			return os.ReadDir(name)
		}
		_, err := scanner.scan(dir)
		require.ErrorIs(t, err, fs.ErrPermission)
		assert.ErrorContains(t, err, "open "+sub+": permission denied")
	})

	t.Run("the real calls succeed", func(t *testing.T) {
		entries, err := osScanner.scan(dir)
		require.NoError(t, err)
		assert.Len(t, entries, 3)
	})
}

func TestScanDirErrorsAreNotEmptyFolder(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Symlink("nowhere", filepath.Join(dir, "dangling")))
	_, err := ScanDir(dir)
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrEmptyFolder), "a broken link is reported, not hidden as an empty folder")
}
