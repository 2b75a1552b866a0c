package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// copyDir copies a folder of regular files (one level of subfolders and
// more) so that a test can add odd names to a checkpoint of its own.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	for rel, data := range testutil.ReadTree(t, src) {
		p := filepath.Join(dst, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
}

// A name the manifest cannot carry faithfully makes push fail before
// anything is stored, naming the file escaped.
func TestPushRefusesNamesThatCannotRoundTrip(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false)
	c.ok("init")
	before := testutil.ReadTree(t, c.repo)

	dir := filepath.Join(t.TempDir(), "checkpoint-10")
	copyDir(t, ckpts[0], dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, `a\b.json`), []byte("{}"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad\xff.json"), []byte("{}"), 0o644))

	code, out, errs := c.run("push", dir, "run@10")
	assert.Equal(t, 1, code, "stdout %s\nstderr %s", out, errs)
	assert.Contains(t, errs, `"a\\b.json"`)
	assert.Contains(t, errs, `"bad\xff.json"`)
	assert.Contains(t, errs, layout.ErrUnrecordableName.Error())
	assert.NotContains(t, errs, "bad\xff", "the raw byte is not printed")

	assert.Equal(t, before, testutil.ReadTree(t, c.repo), "nothing stored: no blob, manifest or ref")
	code, _, _ = c.run("show", "run@10")
	assert.Equal(t, 1, code)
}

// oddNames are names that round-trip through the manifest but must not
// reach a terminal raw.
var oddNames = []string{"evil\x1b[2Jname.txt", "new\nline.json", "tab\tname.txt", "cr\rname.txt"}

// assertEscaped checks that out names every odd file escaped and never raw.
func assertEscaped(t *testing.T, what, out string, names []string) {
	t.Helper()
	assert.NotContains(t, out, "\x1b", "%s: raw ESC", what)
	assert.NotContains(t, out, "\r", "%s: raw CR", what)
	for _, n := range names {
		assert.NotContains(t, out, n, "%s: %q printed raw", what, n)
		assert.Contains(t, out, quoteForTest(n), "%s: %q printed escaped", what, n)
	}
}

func quoteForTest(n string) string {
	r := strings.NewReplacer("\x1b", `\x1b`, "\n", `\n`, "\t", `\t`, "\r", `\r`)
	return `"` + r.Replace(n) + `"`
}

// File names with control characters are recorded and pulled back, and
// every command prints them escaped.
func TestControlCharacterNamesPrintEscaped(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false)
	dir := filepath.Join(t.TempDir(), "checkpoint-10")
	copyDir(t, ckpts[0], dir)
	for _, n := range oddNames {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644))
	}

	code, out, errs := c.run("push", dir, "run@10")
	require.Equal(t, 0, code, errs)
	assertEscaped(t, "push", out+errs, nil)
	c.ok("push", ckpts[1], "run@20")

	_, out, errs = c.run("show", "run@10")
	assertEscaped(t, "show", out+errs, oddNames)

	_, out, errs = c.run("diff", "run@10", "run@20")
	assertEscaped(t, "diff", out+errs, oddNames)
	_, out, errs = c.run("diff", dir, "run@20")
	assertEscaped(t, "diff of a folder", out+errs, oddNames)

	pulled := filepath.Join(t.TempDir(), "pulled")
	code, out, errs = c.run("pull", "run@10", pulled, "--full")
	require.Equal(t, 0, code, errs)
	assertEscaped(t, "pull", out+errs, oddNames)
	for _, n := range oddNames {
		data, err := os.ReadFile(filepath.Join(pulled, n))
		require.NoError(t, err, "%q pulled back under its own name", n)
		assert.Equal(t, n, string(data))
	}

	_, out, errs = c.run("verify", "--all", "--read-data")
	assertEscaped(t, "verify", out+errs, nil)
	_, out, errs = c.run("ls")
	assertEscaped(t, "ls", out+errs, nil)

	// A problem names the files that use the object, escaped.
	var shown struct {
		manifest.Manifest // show --json lists the files the way a manifest does
	}
	require.NoError(t, json.Unmarshal([]byte(c.ok("show", "run@10", "--json")), &shown))
	f := shown.Manifest.File("new\nline.json")
	require.NotNil(t, f)
	require.Len(t, f.Chunks, 1)
	require.NoError(t, os.Remove(filepath.Join(c.repo, filepath.FromSlash(object.BlobKey(f.Chunks[0].ID)))))
	code, out, errs = c.run("verify", "run@10")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "PROBLEM")
	assertEscaped(t, "verify with a problem", out+errs, []string{"run@10:new\nline.json"})
}

// --json output goes through the same filter as everything printed and
// stays valid JSON carrying the exact names, whatever characters they hold.
func TestJSONOutputKeepsOddNames(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false)
	dir := filepath.Join(t.TempDir(), "checkpoint-10")
	copyDir(t, ckpts[0], dir)
	names := append([]string{"del\x7fname.txt", "tag\U000e0001.txt", "zw\u200b.txt", "c1\u0085.txt"}, oddNames...)
	for _, n := range names {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644))
	}
	c.ok("push", dir, "run@10")
	var shown struct {
		manifest.Manifest // show --json lists the files the way a manifest does
	}
	require.NoError(t, json.Unmarshal([]byte(c.ok("show", "run@10", "--json")), &shown))
	for _, n := range names {
		assert.NotNil(t, shown.Manifest.File(n), "%q in show --json", n)
	}
}
