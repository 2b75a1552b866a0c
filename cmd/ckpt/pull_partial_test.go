package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPullPartialCLI(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false)
	c.ok("push", ckpts[0], "run")

	// --only weights: the weights, not runnable, and it says so.
	dir := filepath.Join(t.TempDir(), "w")
	out := c.ok("pull", "run@10", dir, "--only", "weights")
	assert.Contains(t, out, "partial pull (only weights): left out 12 files")
	assert.Contains(t, out, "config.json, generation_config.json")
	assert.Contains(t, out, "the folder is NOT runnable: model run@10 is not runnable: missing config.json")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "model.safetensors", entries[0].Name())

	// Everything but the optimizer, as JSON: runnable, one file left out.
	dir = filepath.Join(t.TempDir(), "no-optim")
	var res pullOutput
	require.NoError(t, json.Unmarshal([]byte(c.ok("pull", "run@10", dir, "--exclude", "optimizer.pt", "--json")), &res))
	assert.True(t, res.Partial)
	assert.True(t, res.Runnable)
	assert.Empty(t, res.NotRunnable)
	require.Len(t, res.LeftOut, 1)
	assert.Equal(t, "optimizer.pt", res.LeftOut[0].Path)
	assert.FileExists(t, filepath.Join(dir, "scheduler.pt"))
	assert.NoFileExists(t, filepath.Join(dir, "optimizer.pt"))

	// --only repeated and comma-separated, --include globs.
	dir = filepath.Join(t.TempDir(), "cfg")
	require.NoError(t, json.Unmarshal([]byte(c.ok("pull", "run@10", dir, "--only", "config,tokenizer", "--only", "weights", "--include", "*.json", "--include", "model.*", "--json")), &res))
	assert.True(t, res.Partial)
	assert.True(t, res.Runnable)
	var paths []string
	for _, f := range res.Files {
		paths = append(paths, f.Path)
	}
	assert.Equal(t, []string{"config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"}, paths)

	// Errors: an unknown category is a usage error; a selection of nothing
	// fails and writes nothing.
	code, _, errs := c.run("pull", "run@10", filepath.Join(t.TempDir(), "x"), "--only", "optimizer")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "unknown file category")
	dir = filepath.Join(t.TempDir(), "none")
	code, _, errs = c.run("pull", "run@10", dir, "--include", "*.gguf")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "the selection matches no file of run@10")
	assert.NoDirExists(t, dir)
}
