package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWatchOnce(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false) // steps 10, 20, 30; eval_loss 1.9, 1.1, 1.3
	out := filepath.Dir(ckpts[0])

	// Retention keep-last 1 keep-best 1 after every push: 10 goes when 20
	// (best and latest) arrives; 20 (best) and 30 (latest) stay.
	stdout := c.ok("watch", out, "run", "--once", "--settle", "50ms", "--keep-last", "1", "--keep-best", "1")
	i10, i20, i30 := strings.Index(stdout, "pushed run@10: "), strings.Index(stdout, "pushed run@20: "), strings.Index(stdout, "pushed run@30: ")
	require.True(t, i10 >= 0 && i20 > i10 && i30 > i20, "pushed in step order:\n%s", stdout)
	assert.Contains(t, stdout, "retention run: removed 10\n")
	listed := lsJSON(t, c.ok("ls", "run", "--json"))
	require.Len(t, listed["run"], 2)
	assert.Equal(t, "20", listed["run"][0]["version"])
	assert.Equal(t, "30", listed["run"][1]["version"])

	// Again: the state says everything is pushed; nothing is done.
	assert.NotContains(t, c.ok("watch", out, "run", "--once", "--settle", "50ms"), "pushed")

	// --delete-local: 10 is pushed and neither the best nor the newest.
	stdout = c.ok("watch", out, "run", "--once", "--settle", "50ms", "--delete-local")
	assert.Contains(t, stdout, "deleted local checkpoint-10 (pushed as run@10)")
	assert.NoDirExists(t, ckpts[0])
	assert.DirExists(t, ckpts[1], "the best")
	assert.DirExists(t, ckpts[2], "the newest")
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "nothing left behind")
}

func TestWatchOnceQuietAndErrors(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, true) // weights only
	out := filepath.Dir(ckpts[0])
	c.ok("init")

	code, _, errs := c.run("watch", out, "run@5", "--once")
	assert.Equal(t, 2, code, errs)
	assert.Contains(t, errs, "NAME takes no @VERSION")
	code, _, errs = c.run("watch", out, "run", "--once", "--settle", "0s")
	assert.Equal(t, 2, code, errs)
	code, _, errs = c.run("watch", out, "run", "--once", "--base", "gpt2@1")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "--base")
	code, _, errs = c.run("watch", filepath.Join(out, "missing"), "run", "--once")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "missing")

	// A truncated safetensors: reported on stderr, the others pushed, exit 1.
	weights := filepath.Join(ckpts[1], "model.safetensors")
	require.NoError(t, os.Truncate(weights, 100))
	code, stdout, errs := c.run("watch", out, "run", "--once", "--settle", "50ms", "--quiet")
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout, "--quiet prints only errors")
	assert.Contains(t, errs, "checkpoint-20")
	listed := lsJSON(t, c.ok("ls", "run", "--json"))
	require.Len(t, listed["run"], 2)
	assert.Equal(t, "10", listed["run"][0]["version"])
	assert.Equal(t, "30", listed["run"][1]["version"])
}
