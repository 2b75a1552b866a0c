package store_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
)

// folderFiles lists the files under dir, slash-separated, sorted.
func folderFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return err
	}))
	sort.Strings(out)
	return out
}

func pulledPaths(fs []store.PulledFile) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Path)
	}
	return out
}

func TestPartialPull(t *testing.T) {
	tokenizer := []string{"merges.txt", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"}
	resume := []string{"optimizer.pt", "rng_state.pth", "scheduler.pt", "trainer_state.json", "training_args.bin"}
	all := []string{"config.json", "generation_config.json", "merges.txt", "model.safetensors", "optimizer.pt", "rng_state.pth",
		"scheduler.pt", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "trainer_state.json",
		"training_args.bin", "vocab.json"}
	without := func(drop ...string) []string {
		var out []string
		for _, p := range all {
			keep := true
			for _, d := range drop {
				keep = keep && p != d
			}
			if keep {
				out = append(out, p)
			}
		}
		return out
	}
	cases := []struct {
		name        string
		sel         layout.Selection
		want        []string
		runnable    bool
		notRunnable string
	}{
		{name: "only weights", sel: layout.Selection{Only: []layout.Category{layout.CategoryWeights}},
			want: []string{"model.safetensors"}, notRunnable: "config.json"},
		{name: "only config and tokenizer", sel: layout.Selection{Only: []layout.Category{layout.CategoryConfig, layout.CategoryTokenizer}},
			want: append([]string{"config.json", "generation_config.json"}, tokenizer...), notRunnable: "weights"},
		{name: "only resume", sel: layout.Selection{Only: []layout.Category{layout.CategoryResume}},
			want: resume, notRunnable: "config.json"},
		{name: "everything but the optimizer", sel: layout.Selection{Exclude: []string{"optimizer.pt"}},
			want: without("optimizer.pt"), runnable: true},
		{name: "include globs, hf download rules", sel: layout.Selection{Include: []string{"*.json", "model.*"}, Exclude: []string{"trainer_*"}},
			want:     []string{"config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"},
			runnable: true},
		{name: "the runnable categories", sel: layout.Selection{Only: []layout.Category{layout.CategoryWeights, layout.CategoryConfig, layout.CategoryTokenizer}},
			want: without(resume...), runnable: true},
	}
	for bname, nb := range backends {
		t.Run(bname, func(t *testing.T) {
			e := newEnv(t, nb)
			_, ckpts := tinyRun(t, 71, nil)
			e.push(ckpts[0], "run", store.PushOptions{})
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "out")
					res, err := e.r.Pull(e.ctx, "run", "100", dir, store.PullOptions{Select: tc.sel})
					require.NoError(t, err)
					assert.True(t, res.Partial)
					assert.Equal(t, tc.want, pulledPaths(res.Files))
					assert.Equal(t, tc.want, folderFiles(t, dir))
					var leftOut []string
					for _, p := range all {
						if !contains(tc.want, p) {
							leftOut = append(leftOut, p)
						}
					}
					if leftOut == nil {
						leftOut = []string{}
					}
					assert.Equal(t, leftOut, pulledPaths(res.LeftOut))
					assert.Equal(t, tc.runnable, res.Runnable)
					if tc.runnable {
						assert.Empty(t, res.NotRunnable)
					} else {
						assert.Contains(t, res.NotRunnable, tc.notRunnable)
						assert.Contains(t, res.NotRunnable, "run@100")
					}
				})
			}

			// A selection that matches nothing writes nothing.
			dir := filepath.Join(t.TempDir(), "none")
			_, err := e.r.Pull(e.ctx, "run", "100", dir, store.PullOptions{Select: layout.Selection{Include: []string{"*.gguf"}}})
			require.ErrorIs(t, err, store.ErrEmptySelection)
			assert.ErrorContains(t, err, "*.gguf")
			assert.NoDirExists(t, dir)

			// A default pull is not partial, is runnable, and says it left
			// out the resume state.
			dir = filepath.Join(t.TempDir(), "default")
			res, err := e.r.Pull(e.ctx, "run", "100", dir, store.PullOptions{})
			require.NoError(t, err)
			assert.False(t, res.Partial)
			assert.True(t, res.Runnable)
			assert.Equal(t, resume, pulledPaths(res.LeftOut))
		})
	}
}

// Files inherited from a base are selected like the checkpoint's own.
func TestPartialPullInherits(t *testing.T) {
	for bname, nb := range backends {
		t.Run(bname, func(t *testing.T) {
			e := newEnv(t, nb)
			base, ckpts := tinyRun(t, 72, func(s *synth.RunSpec) { s.WeightsOnly = true })
			e.push(base, "gpt2", store.PushOptions{Version: "1"})
			e.push(ckpts[0], "run", store.PushOptions{Base: "gpt2@1"})
			dir := filepath.Join(t.TempDir(), "tok")
			res, err := e.r.Pull(e.ctx, "run", "latest", dir, store.PullOptions{Select: layout.Selection{Only: []layout.Category{layout.CategoryTokenizer}}})
			require.NoError(t, err)
			require.NotEmpty(t, res.Files)
			for _, f := range res.Files {
				assert.Equal(t, "tokenizer", f.Role, f.Path)
				assert.Equal(t, "gpt2@1", f.From, f.Path)
			}
			assert.False(t, res.Runnable)
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
