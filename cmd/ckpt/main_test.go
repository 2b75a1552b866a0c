package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
)

// cli runs ckpt in-process against one registry and cache.
type cli struct {
	t    *testing.T
	repo string
}

func newCLI(t *testing.T) *cli {
	t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "cache"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(t.TempDir(), "data"))
	t.Setenv("CKPT_REPO", "")
	return &cli{t: t, repo: filepath.Join(t.TempDir(), "registry")}
}

// run returns the exit code, stdout and stderr, written the way main
// writes them (runWith: the error printer and its filters included).
func (c *cli) run(args ...string) (int, string, string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := runWith(context.Background(), append([]string{"--repo", c.repo}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func (c *cli) ok(args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	require.Equal(c.t, 0, code, "ckpt %v: %s", args, errs)
	return out
}

func writeRun(t *testing.T, weightsOnly bool) (base string, ckpts []string) {
	t.Helper()
	return testutil.TinyRun(t, synth.RunSpec{
		Seed: 7, Steps: []int64{10, 20, 30}, EvalLoss: []float64{1.9, 1.1, 1.3},
		ResumeState: true, OptimizerScale: 0.1, WeightsOnly: weightsOnly,
	})
}

func TestCommandsEndToEnd(t *testing.T) {
	c := newCLI(t)
	base, ckpts := writeRun(t, true)

	assert.Contains(t, c.ok("init"), "created registry")
	assert.Contains(t, c.ok("init"), "already exists")

	out := c.ok("push", base, "gpt2@1", "--tag", "base")
	assert.Contains(t, out, "pushed gpt2@1")
	for _, ck := range ckpts {
		assert.Contains(t, c.ok("push", ck, "run", "--base", "gpt2@base"), "pushed run@")
	}
	assert.Contains(t, c.ok("push", ckpts[0], "run", "--base", "gpt2@base"), "nothing to do")

	var pushed map[string]any
	require.NoError(t, json.Unmarshal([]byte(c.ok("push", ckpts[2], "run@custom", "--json", "--metric", "eval_bleu=30.5")), &pushed))
	assert.Equal(t, false, pushed["unchanged"])

	ls := c.ok("ls")
	assert.Contains(t, ls, "gpt2")
	assert.Contains(t, ls, "best")
	listed := lsJSON(t, c.ok("ls", "run", "--json"))
	require.Len(t, listed["run"], 4)
	assert.Equal(t, "20", listed["run"][1]["version"])
	assert.Equal(t, true, listed["run"][1]["best"])
	assert.Equal(t, true, listed["run"][3]["latest"])

	show := c.ok("show", "run@best")
	assert.Contains(t, show, "run@20")
	assert.Contains(t, show, "model.safetensors")
	assert.Contains(t, show, "gpt2@1")

	dir := filepath.Join(t.TempDir(), "model")
	out = c.ok("pull", "run@best", dir)
	assert.Contains(t, out, "(from gpt2@1)")
	assert.FileExists(t, filepath.Join(dir, "tokenizer.json"))
	assert.FileExists(t, filepath.Join(dir, "config.json"))

	code, _, errs := c.run("pull", "run@best", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "--force")

	assert.Contains(t, c.ok("tag", "run@30", "prod"), "tagged run@30 as prod")
	assert.Contains(t, c.ok("show", "run@prod"), "run@30")
	c.ok("untag", "run", "prod")
	code, _, errs = c.run("show", "run@prod")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "versions: 10, 20, 30, custom")

	assert.Contains(t, c.ok("verify", "--all", "--read-data"), "all intact")
	var du map[string]any
	require.NoError(t, json.Unmarshal([]byte(c.ok("du", "--json")), &du))
	assert.Greater(t, du["dedupe_ratio"].(float64), 1.0)

	assert.Contains(t, c.ok("rm", "run@10"), "removed run@10")
	code, _, _ = c.run("show", "run@10")
	assert.Equal(t, 1, code)
}

// lsJSON maps each NAME of `ckpt ls --json` output to its versions.
func lsJSON(t *testing.T, out string) map[string][]map[string]any {
	t.Helper()
	var ls struct {
		Schema string `json:"schema"`
		Names  []struct {
			Name     string           `json:"name"`
			Versions []map[string]any `json:"versions"`
		} `json:"names"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &ls))
	require.Equal(t, "ckpt.ls/v1", ls.Schema)
	byName := map[string][]map[string]any{}
	for _, n := range ls.Names {
		byName[n.Name] = n.Versions
	}
	return byName
}

func TestExitCodes(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false)
	c.ok("init")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"push"}, 2, "takes 2 argument"},
		{[]string{"push", ckpts[0], "bad name"}, 2, "NAME"},
		{[]string{"push", ckpts[0], "run@latest"}, 2, "reserved"},
		{[]string{"pull", "run", "x"}, 2, "@REF"},
		{[]string{"ls", "--no-such-flag"}, 2, "unknown flag"},
		{[]string{"push", ckpts[0], "run", "--metric", "eval_loss"}, 2, "key=value"},
		{[]string{"verify"}, 2, "NAME@REF or --all"},
		{[]string{"pull", "nothing@1", t.TempDir()}, 1, "no checkpoint named nothing"},
		{[]string{"push", filepath.Join(t.TempDir(), "missing"), "run@1"}, 1, "missing"},
		{[]string{"tag", "run@1", "123"}, 2, "all digits"},
	}
	for _, tc := range cases {
		code, _, errs := c.run(tc.args...)
		assert.Equal(t, tc.code, code, "%v: %s", tc.args, errs)
		assert.Contains(t, errs, tc.want, "%v", tc.args)
	}

	// Opening a folder that is not a registry names it and says what to do.
	other := &cli{t: t, repo: filepath.Join(t.TempDir(), "nothing-here")}
	code, _, errs := other.run("ls")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "ckpt init")
}

func TestDefaultRegistryLocation(t *testing.T) {
	c := newCLI(t)
	data := os.Getenv("XDG_DATA_HOME")
	app := newApp()
	loc, err := app.repoURL()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(data, "ckpt"), loc)
	t.Setenv("CKPT_REPO", c.repo)
	loc, err = app.repoURL()
	require.NoError(t, err)
	assert.Equal(t, c.repo, loc)
}
