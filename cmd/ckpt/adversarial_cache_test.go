package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/bolttest"
	"github.com/ckptdev/ckpt/internal/testutil"
)

// warningLines returns the warning lines of a command's stderr.
func warningLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "ckpt: warning:") {
			out = append(out, l)
		}
	}
	return out
}

// agedCopy copies a folder with old mtimes, so push keeps stat entries.
func agedCopy(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	old := time.Now().Add(-time.Hour)
	for rel, data := range testutil.ReadTree(t, src) {
		p := filepath.Join(dst, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, data, 0o644))
		require.NoError(t, os.Chtimes(p, old, old))
	}
	return dst
}

// commandCase is one command run against a damaged cache, with what its
// output must show.
type commandCase struct {
	name string
	args func(i int) []string
	want string
}

// TestCorruptIndexEveryCommand damages the per-machine index in every way
// of bolttest.Corruptions and runs each command with it: each succeeds
// with its normal output, exit code 0, and structural damage is reported
// in exactly one warning naming the file and where it was moved.
func TestCorruptIndexEveryCommand(t *testing.T) {
	c := newCLI(t)
	base, ckpts := writeRun(t, false)
	for i := range ckpts {
		ckpts[i] = agedCopy(t, ckpts[i])
	}
	c.ok("init")
	c.ok("push", agedCopy(t, base), "gpt2@1")
	for _, ck := range ckpts {
		c.ok("push", ck, "run")
		c.ok("push", agedCopy(t, ck), "copy")
	}
	c.ok("pull", "run@20", filepath.Join(t.TempDir(), "warm"), "--full")
	c.ok("verify", "--all", "--read-data")
	indexPath := filepath.Join(os.Getenv("XDG_CACHE_HOME"), "ckpt", "index.db")
	pristine, err := os.ReadFile(indexPath)
	require.NoError(t, err)

	commands := []commandCase{
		{"push", func(i int) []string { return []string{"push", ckpts[i%len(ckpts)], fmt.Sprintf("again-%d", i)} }, "pushed again-"},
		{"pull", func(i int) []string {
			return []string{"pull", "run@20", filepath.Join(t.TempDir(), "out"), "--full"}
		}, "pulled run@20"},
		{"ls", func(int) []string { return []string{"ls"} }, "run"},
		{"show", func(int) []string { return []string{"show", "run@best"} }, "model.safetensors"},
		{"verify", func(int) []string { return []string{"verify", "--all", "--read-data"} }, "all intact"},
		{"gc", func(int) []string { return []string{"gc"} }, "checkpoints reach"},
		{"diff", func(int) []string { return []string{"diff", "run@10", "run@20"} }, "changed  model.safetensors"},
	}
	for i, corr := range bolttest.Corruptions(t, pristine, 5, 4) {
		t.Run(corr.Name, func(t *testing.T) {
			for _, cmd := range commands {
				require.NoError(t, os.WriteFile(indexPath, corr.Data, 0o644))
				code, out, errs := c.run(cmd.args(i)...)
				require.Equal(t, 0, code, "%s: %s", cmd.name, errs)
				assert.Contains(t, out, cmd.want, cmd.name)
				warned := warningLines(errs)
				aside, err := filepath.Glob(indexPath + ".corrupt-*")
				require.NoError(t, err)
				switch corr.Detect {
				case bolttest.Structural:
					require.Len(t, warned, 1, "%s: %s", cmd.name, errs)
					assert.Regexp(t, `^ckpt: warning: the per-machine cache `+regexp.QuoteMeta(indexPath)+` is corrupt; moved aside to `+regexp.QuoteMeta(indexPath)+`\.corrupt-\d{8}T\d{6}Z; continuing without it$`, warned[0])
					assert.Len(t, aside, 1, cmd.name)
				case bolttest.Undetectable:
					assert.Empty(t, warned, cmd.name)
					assert.Empty(t, aside, cmd.name)
				default:
					assert.LessOrEqual(t, len(warned), 1, "%s: %s", cmd.name, errs)
					assert.Len(t, aside, len(warned), cmd.name)
				}
				assert.NotContains(t, errs, "panic", cmd.name)
				for _, a := range aside {
					require.NoError(t, os.Remove(a))
				}
			}
		})
	}
}

// TestUnwritableCacheFolder: when the cache folder cannot be created or
// written, read-only commands and push still work, with exactly one
// warning. Root ignores permission bits, so the folder is also made
// impossible for everyone by putting it under a regular file.
func TestUnwritableCacheFolder(t *testing.T) {
	c := newCLI(t)
	base, ckpts := writeRun(t, false)
	c.ok("init")
	c.ok("push", base, "gpt2@1")
	c.ok("push", ckpts[0], "run")
	c.ok("push", ckpts[1], "run")

	type setup struct {
		name  string
		apply func(t *testing.T)
	}
	setups := []setup{{"cache home under a regular file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "not-a-folder")
		require.NoError(t, os.WriteFile(file, nil, 0o644))
		t.Setenv("XDG_CACHE_HOME", file)
	}}}
	if os.Geteuid() != 0 {
		setups = append(setups, setup{"read-only ckpt cache folder", func(t *testing.T) {
			home := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(home, "ckpt"), 0o500))
			t.Cleanup(func() { os.Chmod(filepath.Join(home, "ckpt"), 0o755) })
			t.Setenv("XDG_CACHE_HOME", home)
		}})
	}
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			s.apply(t)
			runs := []struct {
				args []string
				want string
			}{
				{[]string{"ls"}, "run"},
				{[]string{"show", "run@20"}, "model.safetensors"},
				{[]string{"pull", "run@20", filepath.Join(t.TempDir(), "out")}, "pulled run@20"},
				{[]string{"verify", "run@20", "--read-data"}, "intact"},
				{[]string{"diff", "run@10", "run@20"}, "changed  model.safetensors"},
				{[]string{"push", ckpts[2], "run"}, "pushed run@30"},
			}
			for _, r := range runs {
				code, out, errs := c.run(r.args...)
				require.Equal(t, 0, code, "%v: %s", r.args, errs)
				assert.Contains(t, out, r.want, "%v", r.args)
				warned := warningLines(errs)
				require.Len(t, warned, 1, "%v: %s", r.args, errs)
				assert.Contains(t, warned[0], "per-machine cache", "%v", r.args)
			}
		})
	}
}
