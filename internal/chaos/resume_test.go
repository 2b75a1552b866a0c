package chaos

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
)

// manyFilesModel writes a runnable model folder with n extra small files
// (role "other": pulled with --full), so that a pull spends most of its
// time creating files and a kill lands among them.
func manyFilesModel(t *testing.T, n int) string {
	t.Helper()
	base, _ := testutil.TinyRun(t, synth.RunSpec{Seed: 21, Steps: []int64{10}, WeightsOnly: true})
	dir := filepath.Join(t.TempDir(), "many")
	if err := os.CopyFS(dir, os.DirFS(base)); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(dir, "notes")
	if err := os.MkdirAll(notes, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		data := fmt.Appendf(nil, "note %d of a run with many small files\n", i)
		if err := os.WriteFile(filepath.Join(notes, fmt.Sprintf("n%04d.txt", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestKilledPullThenPullAgain kills a pull (plain or --link) while it fills
// its temporary folder, then pulls the same checkpoint into the same DIR
// again (plain or --link), unkilled: the second pull succeeds and writes
// exactly the pushed files, and every entry of the per-machine content
// cache (fed by plain and --link pulls alike) holds the whole content of
// one pulled file.
//
// The campaign found the three orders with --link failing on the code
// before harden-pull was merged (it resumed a build folder named after DIR
// and the selection): "link then link" and "plain then link" failed with
// "<file>: open .../.DIR.ckpt-pull-<hash>/<file>: file exists", as linking
// creates each file with O_EXCL or link(2) over the killed pull's files;
// "link then plain" kept the killed pull's hard links to the --link file
// cache in DIR and chmodded them to the recorded mode, so that the cache
// entries became writable (0644) and an edit in DIR changed what the next
// pull --link served. Private build folders fixed all three.
func TestKilledPullThenPullAgain(t *testing.T) {
	src := manyFilesModel(t, 300)
	want, err := expectedPull(src, "", true)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name          string
		first, second bool // --link
	}{
		{"plain then plain", false, false},
		{"link then link", true, true},
		{"plain then link", false, true},
		{"link then plain", true, false},
	}
	for _, backend := range []string{"local", "minio"} {
		t.Run(backend, func(t *testing.T) {
			var reg *registry
			if backend == "minio" {
				reg = minioRegistry(t)
			} else {
				reg = localRegistry(t)
			}
			home := t.TempDir()
			run := func(cache string, args ...string) *proc {
				t.Helper()
				p, err := runOnce(ckptBin, baseEnv(home, cache, reg.env), append([]string{"--repo", reg.repo}, args...))
				if err != nil {
					t.Fatal(err)
				}
				if p.exit != 0 {
					t.Fatalf("ckpt %s exited %d: %s", strings.Join(args, " "), p.exit, p.stderr.String())
				}
				return p
			}
			run(t.TempDir(), "push", src, "many@1")
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					cache := t.TempDir()
					if tc.first {
						// A warm file cache: the killed --link pull then
						// spends its time linking.
						run(cache, "pull", "many@1", filepath.Join(t.TempDir(), "warm"), "--full", "--link")
					}
					pullArgs := func(dir string, link bool) []string {
						args := []string{"--repo", reg.repo, "pull", "many@1", dir, "--full"}
						if link {
							args = append(args, "--link")
						}
						return args
					}
					dir, leftover := stopMidway(t, baseEnv(home, cache, reg.env), pullArgs, tc.first)
					t.Logf("killed the first pull with %d of %d files in %s", leftover, len(want), dir)

					p, err := runOnce(ckptBin, baseEnv(home, cache, reg.env), pullArgs(dir, tc.second))
					if err != nil {
						t.Fatal(err)
					}
					if p.exit != 0 {
						t.Fatalf("the pull after a killed one failed (exit %d): %s", p.exit, p.stderr.String())
					}
					got, _, err := readTree(dir)
					if err != nil {
						t.Fatal(err)
					}
					if d := want.diff(got); d != "" {
						t.Fatalf("the pull after a killed one wrote the wrong files: %s", d)
					}
					checkContentCache(t, filepath.Join(cache, "ckpt", "content"), want)
				})
			}
		})
	}
}

// stopMidway runs the pull that pullArgs makes (with link) into fresh DIRs,
// killing it at moments spread over its duration, until one dies with DIR
// absent and a folder beside DIR holding files. It returns that DIR and how
// many files the folder held.
func stopMidway(t *testing.T, env []string, pullArgs func(dir string, link bool) []string, link bool) (string, int) {
	t.Helper()
	probe, err := runOnce(ckptBin, env, pullArgs(filepath.Join(t.TempDir(), "probe"), link))
	if err != nil || probe.exit != 0 {
		t.Fatalf("probe pull: %v %s", err, probe.stderr.String())
	}
	const attempts = 60
	for i := range attempts {
		dir := filepath.Join(t.TempDir(), "model")
		frac := float64(i%12+1) / 13 // sweep the duration, again and again
		p, err := startProc(ckptBin, env, pullArgs(dir, link), time.Duration(frac*float64(probe.elapsed)))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.wait(time.Now().Add(cmdTimeout)); err != nil {
			t.Fatal(err)
		}
		if !p.killed {
			continue
		}
		if _, err := os.Lstat(dir); err == nil {
			continue // renamed into place before the kill
		}
		entries, err := os.ReadDir(filepath.Dir(dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			n := 0
			err := filepath.WalkDir(filepath.Join(filepath.Dir(dir), e.Name()), func(_ string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					n++
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				return dir, n
			}
		}
	}
	t.Fatalf("no kill among %d (spread over the %s a pull takes) left a partly filled temporary folder", attempts, probe.elapsed)
	return "", 0
}

// checkContentCache checks that every entry of the per-machine content
// cache (which plain and --link pulls both feed) holds the whole content
// of one of the files in want: no kill leaves a partial or foreign entry
// where pulls would find it.
func checkContentCache(t *testing.T, cacheDir string, want tree) {
	t.Helper()
	contents := map[string]bool{}
	for _, b := range want {
		contents[string(b)] = true
	}
	entries := 0
	err := filepath.WalkDir(cacheDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != cacheDir && (d.Name() == "tmp" || d.Name() == "seals") {
				return filepath.SkipDir
			}
			return nil
		}
		entries++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !contents[string(b)] {
			t.Errorf("content cache entry %s (%d bytes) holds none of the pulled files", p, len(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if entries == 0 {
		t.Errorf("%s: the pulls fed no entry into the content cache", cacheDir)
	}
}
