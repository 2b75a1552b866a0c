//go:build linux

package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/refs"
)

// The adversarial pull tests: someone who can write the folder a pull
// writes beside (a shared /scratch, a colleague's group-writable project
// folder) plants links and folders where ckpt builds the pulled folder; a
// user edits a pulled hard link in place; a disk flips a bit in a cache
// entry. None of it may make a pull write outside DIR or hand out bad bytes.

// node is what snapshotTree records of one entry.
type node struct {
	mode fs.FileMode
	data string // regular files: SHA-256 of the content
	link string // symlinks
}

// snapshotTree records every entry under root without following links.
func snapshotTree(t *testing.T, root string) map[string]node {
	t.Helper()
	out := map[string]node{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		n := node{mode: fi.Mode()}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.data = fmt.Sprintf("%x", sha256.Sum256(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			if n.link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = n
		return nil
	}))
	return out
}

// victimFolder is a folder outside DIR that must never change.
func victimFolder(t *testing.T) string {
	t.Helper()
	v := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.MkdirAll(filepath.Join(v, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(v, "file"), []byte("precious"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(v, "sub", "deep"), []byte("also precious"), 0o644))
	return v
}

// legacyPullTempName is the predictable name ckpt gave a pull's temporary
// folder beside dir before issue 9 (the selection's hash alone).
func legacyPullTempName(t *testing.T, e *env, rec refs.Record, dir string, full bool) string {
	t.Helper()
	m, err := e.r.Manifest(e.ctx, rec.Manifest)
	require.NoError(t, err)
	h := sha256.New()
	for _, f := range m.Files {
		if full || layout.Role(f.Role).Runnable() {
			fmt.Fprintf(h, "%s\x00%s\x00%d\n", f.Path, f.Digest, f.Size)
		}
	}
	return "." + filepath.Base(dir) + ".ckpt-pull-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// assertRealTree checks that dir is a real folder holding only real
// folders and regular files.
func assertRealTree(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Lstat(dir)
	require.NoError(t, err)
	require.True(t, fi.IsDir(), "%s is not a real folder: %v", dir, fi.Mode())
	for rel, n := range snapshotTree(t, dir) {
		assert.True(t, n.mode.IsDir() || n.mode.IsRegular(), "%s: %v", rel, n.mode)
	}
}

// runnableTree is what a default pull of ckpt must produce.
func runnableTree(t *testing.T, ckpt string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for p, b := range testutil.ReadTree(t, ckpt) {
		if layout.Classify(p).Runnable() {
			out[p] = b
		}
	}
	return out
}

// digests maps each file of tree to the SHA-256 of its bytes, so that a
// failed comparison prints something readable.
func digests(tree map[string][]byte) map[string]string {
	out := make(map[string]string, len(tree))
	for p, b := range tree {
		out[p] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
	return out
}

func withUmask(t *testing.T, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

// pullTempName matches the temporary folders of a pull into "model": the
// selection's hash, then a random part.
var pullTempName = regexp.MustCompile(`^\.model\.ckpt-pull-[0-9a-f]{16}-[0-9a-f]{16}$`)

// nestedCheckpoint is ckpt with a file in a subfolder (pulled with --full).
func nestedCheckpoint(t *testing.T, ckpt string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "checkpoint-100")
	require.NoError(t, os.CopyFS(dir, os.DirFS(ckpt)))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "extra"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "extra", "notes.txt"), []byte("notes"), 0o644))
	return dir
}

func TestPullTempFolderIsNeverPlanted(t *testing.T) {
	type planted struct {
		names []string // entries planted beside DIR
		keep  bool     // they must still be there, unchanged (ignored, not removed)
	}
	cases := []struct {
		name     string
		full     bool
		needRoot bool
		// plant prepares parent (DIR's parent), given ckpt's predictable
		// temporary folder name and a victim folder.
		plant func(t *testing.T, parent, legacy, victim string) planted
	}{
		{"symlink at the predictable resume path", false, false, func(t *testing.T, parent, legacy, victim string) planted {
			names := []string{legacy, legacy + "-0123456789abcdef"}
			for _, n := range names {
				require.NoError(t, os.Symlink(victim, filepath.Join(parent, n)))
			}
			return planted{names: names}
		}},
		{"resume folder holding symlinks named like pulled files", true, false, func(t *testing.T, parent, legacy, victim string) planted {
			names := []string{legacy, legacy + "-0123456789abcdef"}
			for _, n := range names {
				d := filepath.Join(parent, n)
				require.NoError(t, os.Mkdir(d, 0o700))
				require.NoError(t, os.Symlink(filepath.Join(victim, "file"), filepath.Join(d, "config.json")))
				require.NoError(t, os.Symlink(filepath.Join(victim, "sub"), filepath.Join(d, "extra")))
			}
			return planted{names: names}
		}},
		{"resume folder anyone can write", false, false, func(t *testing.T, parent, legacy, victim string) planted {
			names := []string{legacy, legacy + "-0123456789abcdef"}
			for _, n := range names {
				d := filepath.Join(parent, n)
				require.NoError(t, os.Mkdir(d, 0o700))
				require.NoError(t, os.Chmod(d, 0o777))
				require.NoError(t, os.WriteFile(filepath.Join(d, "planted.txt"), []byte("planted"), 0o644))
				require.NoError(t, os.WriteFile(filepath.Join(d, "config.json"), []byte(`{"planted": true}`), 0o644))
			}
			return planted{names: names, keep: true}
		}},
		{"resume folder owned by someone else", false, true, func(t *testing.T, parent, legacy, victim string) planted {
			names := []string{legacy, legacy + "-0123456789abcdef"}
			for _, n := range names {
				d := filepath.Join(parent, n)
				require.NoError(t, os.Mkdir(d, 0o700))
				require.NoError(t, os.WriteFile(filepath.Join(d, "planted.txt"), []byte("planted"), 0o644))
				require.NoError(t, os.Chown(filepath.Join(d, "planted.txt"), 65534, 65534))
				require.NoError(t, os.Chown(d, 65534, 65534))
			}
			return planted{names: names, keep: true}
		}},
	}
	for bname, nb := range backends {
		t.Run(bname, func(t *testing.T) {
			e := newEnv(t, nb)
			_, ckpts := tinyRun(t, 10, nil)
			src := nestedCheckpoint(t, ckpts[0])
			rec := e.push(src, "c", store.PushOptions{}).Record
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if tc.needRoot && os.Geteuid() != 0 {
						t.Skip("planting a folder owned by another user needs root")
					}
					parent := t.TempDir()
					out := filepath.Join(parent, "model")
					victim := victimFolder(t)
					victimBefore := snapshotTree(t, victim)
					p := tc.plant(t, parent, legacyPullTempName(t, e, rec, out, tc.full), victim)
					plantedBefore := map[string]map[string]node{}
					for _, n := range p.names {
						plantedBefore[n] = snapshotTree(t, filepath.Join(parent, n))
					}

					_, err := e.r.Pull(e.ctx, "c", "100", out, store.PullOptions{Full: tc.full})
					require.NoError(t, err)

					assert.Equal(t, victimBefore, snapshotTree(t, victim), "the victim folder changed")
					assertRealTree(t, out)
					want := testutil.ReadTree(t, src)
					if !tc.full {
						want = runnableTree(t, src)
					}
					assert.Equal(t, digests(want), digests(testutil.ReadTree(t, out)))
					entries, err := os.ReadDir(parent)
					require.NoError(t, err)
					for _, en := range entries {
						if en.Name() != "model" {
							assert.Contains(t, p.names, en.Name(), "left behind")
						}
					}
					for _, n := range p.names {
						_, err := os.Lstat(filepath.Join(parent, n))
						if p.keep {
							require.NoError(t, err, "%s should be ignored, not removed", n)
						}
						if err == nil {
							assert.Equal(t, plantedBefore[n], snapshotTree(t, filepath.Join(parent, n)), "%s changed", n)
						}
					}
				})
			}
		})
	}
}

func TestInterruptedPullResumesFromPrivateFolder(t *testing.T) {
	for bname, nb := range backends {
		t.Run(bname, func(t *testing.T) {
			e := newEnv(t, nb)
			_, ckpts := tinyRun(t, 10, nil)
			res := e.push(ckpts[0], "c", store.PushOptions{})
			m, err := e.r.Manifest(e.ctx, res.Record.Manifest)
			require.NoError(t, err)
			total := int64(len(runnableChunks(m)))
			require.Greater(t, total, int64(4))

			ctx, cancel := context.WithCancel(e.ctx)
			defer cancel()
			r1, err := store.Open(ctx, &cancelAfter{Backend: e.b, after: 3, cancel: cancel}, store.Options{Workers: 1})
			require.NoError(t, err)
			parent := t.TempDir()
			out := filepath.Join(parent, "model")
			_, err = r1.Pull(ctx, "c", "100", out, store.PullOptions{})
			require.ErrorIs(t, err, context.Canceled)

			// What is left to resume from has an unpredictable name and is
			// private to the user.
			entries, err := os.ReadDir(parent)
			require.NoError(t, err)
			require.Len(t, entries, 1)
			assert.Regexp(t, pullTempName, entries[0].Name())
			fi, err := os.Lstat(filepath.Join(parent, entries[0].Name()))
			require.NoError(t, err)
			assert.True(t, fi.IsDir())
			assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())

			counting := &countingBackend{Backend: e.b}
			r2, err := store.Open(e.ctx, counting, store.Options{Workers: 1})
			require.NoError(t, err)
			_, err = r2.Pull(e.ctx, "c", "100", out, store.PullOptions{})
			require.NoError(t, err)
			assert.Less(t, counting.blobGets.Load(), total, "the resumed pull downloaded everything again")
			assert.Equal(t, digests(runnableTree(t, ckpts[0])), digests(testutil.ReadTree(t, out)))
			assertNoPullLeftovers(t, parent)
		})
	}
}

// TestPullStaysInsideDIR plants links named like every temporary folder
// ckpt makes beside DIR (build and old folders), then replaces a non-empty
// DIR, by writing and by linking.
func TestPullStaysInsideDIR(t *testing.T) {
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	rec := e.push(ckpts[0], "c", store.PushOptions{}).Record
	fc, err := store.OpenContentCache(filepath.Join(t.TempDir(), "files"), 1<<30)
	require.NoError(t, err)
	r, err := store.Open(e.ctx, e.b, store.Options{Index: e.ix, Cache: fc, Workers: 4})
	require.NoError(t, err)
	for _, link := range []bool{false, true} {
		t.Run(fmt.Sprint("link=", link), func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "model")
			require.NoError(t, os.Mkdir(out, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(out, "old.txt"), []byte("old"), 0o644))
			victim := victimFolder(t)
			before := snapshotTree(t, victim)
			legacy := legacyPullTempName(t, e, rec, out, false)
			names := []string{legacy, legacy + "-0123456789abcdef", ".model.ckpt-pull-x", ".model.ckpt-old-000000000000", ".model.ckpt-old-0000000000000000", ".model.ckpt-old-"}
			for _, n := range names {
				require.NoError(t, os.Symlink(victim, filepath.Join(parent, n)))
			}
			_, err := r.Pull(e.ctx, "c", "100", out, store.PullOptions{Force: true, Link: link})
			require.NoError(t, err)
			assert.Equal(t, before, snapshotTree(t, victim))
			assertRealTree(t, out)
			assert.Equal(t, digests(runnableTree(t, ckpts[0])), digests(testutil.ReadTree(t, out)))
			for _, n := range names {
				if target, err := os.Readlink(filepath.Join(parent, n)); err == nil {
					assert.Equal(t, victim, target)
				}
			}
		})
	}
}

// TestKilledForcePullLeftoversRemoved: a pull --force killed after it moved
// DIR's earlier content aside (.DIR.ckpt-old-<16 hex>) leaves that folder;
// the next pull that completes DIR removes it and says so, whether DIR was
// left absent (killed between the two renames) or complete (killed before
// the removal). Folders of other names stay.
func TestKilledForcePullLeftoversRemoved(t *testing.T) {
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	e.push(ckpts[0], "c", store.PushOptions{})
	for _, tc := range []struct {
		name      string
		dirExists bool
	}{
		{"DirAbsent", false},
		{"DirComplete", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "model")
			if tc.dirExists {
				_, err := e.r.Pull(e.ctx, "c", "100", out, store.PullOptions{})
				require.NoError(t, err)
			}
			old := filepath.Join(parent, ".model.ckpt-old-0123456789abcdef")
			keep := []string{".other.ckpt-old-0123456789abcdef", ".model.ckpt-old-notmine", "model.ckpt-old-0123456789abcdef"}
			for _, d := range append([]string{filepath.Base(old)}, keep...) {
				require.NoError(t, os.Mkdir(filepath.Join(parent, d), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(parent, d, "old.txt"), []byte("old"), 0o644))
			}
			res, err := e.r.Pull(e.ctx, "c", "100", out, store.PullOptions{Force: true})
			require.NoError(t, err)
			assert.Equal(t, []string{old}, res.RemovedOld)
			assert.NoDirExists(t, old)
			for _, d := range keep {
				assert.FileExists(t, filepath.Join(parent, d, "old.txt"))
			}
			assert.Equal(t, digests(runnableTree(t, ckpts[0])), digests(testutil.ReadTree(t, out)))
		})
	}
}
