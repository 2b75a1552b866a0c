package main

import (
	"context"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/hfcache/hfcachetest"
	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/store/object"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/json")

// goldenDir holds one file per --json output TestJSONGolden pins.
const goldenDir = "testdata/json"

// golden runs commands and compares their normalized --json output with
// the golden files.
type golden struct {
	t *testing.T
	c *cli
	// paths are replaced by their placeholder, longest first.
	paths [][2]string
	seen  map[string]bool
}

// volatile matches the values that differ between runs: times, durations,
// the registry's random ID.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`"pushed": "[^"]*"`), `"pushed": "<time>"`},
	{regexp.MustCompile(`"duration_seconds": [0-9.e+-]+`), `"duration_seconds": 0`},
	{regexp.MustCompile(`"registry_id": "[0-9a-f]+"`), `"registry_id": "<registry-id>"`},
}

// normalize replaces the volatile values and temporary paths of out.
func (g *golden) normalize(out string) string {
	for _, p := range g.paths {
		out = strings.ReplaceAll(out, p[0], p[1])
	}
	for _, v := range volatile {
		out = v.re.ReplaceAllString(out, v.with)
	}
	return out
}

// check runs args (which include --json), expects exit code want, and
// compares the normalized stdout with testdata/json/<name>.json. It returns
// stdout as printed.
func (g *golden) check(name string, want int, args ...string) string {
	g.t.Helper()
	code, out, errs := g.c.run(args...)
	require.Equal(g.t, want, code, "ckpt %v: %s", args, errs)
	require.True(g.t, json.Valid([]byte(out)), "ckpt %v: not JSON:\n%s", args, out)
	var doc map[string]json.RawMessage
	require.NoError(g.t, json.Unmarshal([]byte(out), &doc))
	require.True(g.t, strings.HasPrefix(out, "{\n  \"schema\": \"ckpt."), "ckpt %v: schema is not the first key:\n%s", args, out)
	require.NotContains(g.t, g.seen, name)
	g.seen[name] = true
	path := filepath.Join(goldenDir, name+".json")
	got := g.normalize(out)
	if *updateGolden {
		require.NoError(g.t, os.MkdirAll(goldenDir, 0o755))
		require.NoError(g.t, os.WriteFile(path, []byte(got), 0o644))
		return out
	}
	wantOut, err := os.ReadFile(path)
	require.NoError(g.t, err, "run go test ./cmd/ckpt -run TestJSONGolden -update to create it")
	assert.Equal(g.t, string(wantOut), got, "ckpt %v differs from %s (go test ./cmd/ckpt -run TestJSONGolden -update rewrites it)", args, path)
	return out
}

// settle gives every file and folder under root a fixed mode and an old
// mtime: manifests record modes (which the umask would change), and the
// stat cache trusts only files that are not fresh.
func settle(t *testing.T, root string) {
	t.Helper()
	old := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	}))
}

// editJSON rewrites the JSON object in path.
func editJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	edit(m)
	data, err = json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// TestJSONGolden runs every command with --json against a registry built
// from the tiny synthetic run, and compares each output, its volatile
// values normalized, with its golden file.
func TestJSONGolden(t *testing.T) {
	c := newCLI(t)
	// writeRun's run, with an output_dir that is not a temporary path
	// (trainer_state.json and training_args.bin record it).
	base, ckpts := testutil.TinyRun(t, synth.RunSpec{
		Seed: 7, Steps: []int64{10, 20, 30}, EvalLoss: []float64{1.9, 1.1, 1.3},
		ResumeState: true, OptimizerScale: 0.1, OutputDir: "output",
	})
	runRoot := filepath.Dir(base)
	settle(t, runRoot)
	pulled := filepath.Join(t.TempDir(), "model")
	copied := filepath.Join(t.TempDir(), "second")
	// A folder with config and tokenizer keys changed, for diff.
	edited := filepath.Join(t.TempDir(), "edited")
	copyDir(t, ckpts[0], edited)
	editJSON(t, filepath.Join(edited, "config.json"), func(m map[string]any) {
		m["use_cache"] = false
		m["rope_scaling"] = map[string]any{"type": "linear", "factor": 2}
		delete(m, "summary_type")
	})
	editJSON(t, filepath.Join(edited, "tokenizer_config.json"), func(m map[string]any) { m["model_max_length"] = 2048 })
	settle(t, edited)
	host, err := os.Hostname()
	require.NoError(t, err)
	g := &golden{t: t, c: c, seen: map[string]bool{}}
	g.paths = append(g.paths, [][2]string{{c.repo, "<repo>"}, {runRoot, "<run>"}, {pulled, "<pulled>"}, {edited, "<edited>"}, {copied, "<second>"}, {host + ":", "<host>:"}}...)
	sort.Slice(g.paths, func(i, j int) bool { return len(g.paths[i][0]) > len(g.paths[j][0]) })

	g.check("init", 0, "init", "--json")
	g.check("init-exists", 0, "init", "--json")
	g.check("push", 0, "push", base, "gpt2@1", "--tag", "base", "--json")
	for _, ck := range ckpts {
		c.ok("push", ck, "run", "--base", "gpt2@base")
	}
	g.check("push-unchanged", 0, "push", ckpts[0], "run", "--base", "gpt2@base", "--json")
	g.check("ls", 0, "ls", "--json")
	g.check("show", 0, "show", "run@best", "--json")
	g.check("pull", 0, "pull", "run@best", pulled, "--json")
	g.check("copy", 0, "copy", "run@best", "--to", copied, "--tags", "--json")
	g.check("tag", 0, "tag", "run@30", "prod", "--json")
	g.check("untag", 0, "untag", "run", "prod", "--json")
	g.check("diff", 0, "diff", "run@10", "run@20", "--stats", "--json")
	g.check("diff-base", 0, "diff", "gpt2@1", "run@30", "--json")
	g.check("diff-folder", 0, "diff", "run@10", edited, "--json")
	g.check("verify", 0, "verify", "--all", "--read-data", "--json")
	g.check("retention-set", 0, "retention", "set", "run", "--keep-last", "1", "--keep-best", "1", "--json")
	g.check("retention-plan", 0, "retention", "plan", "run", "--json")
	g.check("retention-apply", 0, "retention", "apply", "--all", "--json")
	g.check("du", 0, "du", "--json")
	c.ok("tag", "run@20", "gold")
	g.check("rm", 0, "rm", "run@20", "--json")
	g.check("gc-dry-run", 0, "gc", "--grace", "0", "--dry-run", "--json")
	g.check("gc", 0, "gc", "--grace", "0", "--json")
	g.check("du-after-gc", 0, "du", "--json")

	// A blob gone: verify prints its report, naming what used it, and exits 1.
	var shown showOutput
	require.NoError(t, json.Unmarshal([]byte(c.ok("show", "run@30", "--json")), &shown))
	var weights *manifestFileOutput
	for i, f := range shown.Files {
		if f.Path == "model.safetensors" {
			weights = &shown.Files[i]
		}
	}
	require.NotNil(t, weights)
	id, err := object.ParseID(weights.Chunks[0].ID)
	require.NoError(t, err)
	require.NoError(t, c.registryBackend().Delete(context.Background(), object.BlobKey(id)))
	g.check("verify-problem", 1, "verify", "run@30", "--json")

	// The Hugging Face cache: import a snapshot, pull it into another cache.
	hub, pulledHub := filepath.Join(t.TempDir(), "hub"), filepath.Join(t.TempDir(), "pulled-hub")
	hfcachetest.Build(t, hub, "org/gpt2", hfcachetest.Commit("gpt2"), "main", base)
	settle(t, hub)
	g.paths = append([][2]string{{hub, "<hf-cache>"}, {pulledHub, "<hf-pulled>"}}, g.paths...)
	g.check("import-hf", 0, "import-hf", "org/gpt2", "gpt2-hub", "--cache-dir", hub, "--json")
	g.check("pull-hf-cache", 0, "pull", "gpt2-hub@latest", "--hf-cache", "--cache-dir", pulledHub, "--json")

	// Every schema has a golden file, and no file is left over.
	covered := map[string]bool{}
	for name := range g.seen {
		data, err := os.ReadFile(filepath.Join(goldenDir, name+".json"))
		require.NoError(t, err)
		var doc struct {
			Schema string `json:"schema"`
		}
		require.NoError(t, json.Unmarshal(data, &doc))
		covered[doc.Schema] = true
	}
	for schema := range outputTypes {
		assert.True(t, covered[schema], "no golden file for %s", schema)
	}
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	require.NoError(t, err)
	for _, f := range files {
		assert.True(t, g.seen[strings.TrimSuffix(filepath.Base(f), ".json")], "%s: no command writes it", f)
	}
}
