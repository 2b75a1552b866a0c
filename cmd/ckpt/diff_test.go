package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDiffCommand(t *testing.T) {
	c := newCLI(t)
	base, ckpts := writeRun(t, false)
	c.ok("init")
	c.ok("push", base, "gpt2@1")
	c.ok("push", ckpts[0], "run")
	c.ok("push", ckpts[1], "run")

	out := c.ok("diff", "run@10", "run@20")
	assert.Contains(t, out, "A: run@10")
	assert.Contains(t, out, "changed  model.safetensors")
	assert.Contains(t, out, "config: same; tokenizer: same; weights: ")
	assert.NotContains(t, out, "rel L2", "no statistics without --stats")

	out = c.ok("diff", "run@10", "run@20", "--stats")
	assert.Contains(t, out, "rel L2")

	// A folder against the ref it was pushed as: nothing differs.
	out = c.ok("diff", ckpts[0], "run@10")
	assert.Contains(t, out, "files: 0 of")
	assert.Contains(t, out, "weights: same (")

	var rep struct {
		A       string `json:"a"`
		B       string `json:"b"`
		Summary string `json:"summary"`
		Files   []struct {
			Path string `json:"path"`
			Kind string `json:"kind"`
		} `json:"files"`
		Tensors []struct {
			Name  string          `json:"name"`
			Kind  string          `json:"kind"`
			Stats json.RawMessage `json:"stats"`
		} `json:"tensors"`
	}
	require.NoError(t, json.Unmarshal([]byte(c.ok("diff", "gpt2@1", "run@best", "--json", "--stats")), &rep))
	assert.Equal(t, "gpt2@1", rep.A)
	assert.Equal(t, "run@20", rep.B)
	assert.Contains(t, rep.Summary, "weights: ")
	require.NotEmpty(t, rep.Tensors)
	assert.Equal(t, "changed", rep.Tensors[0].Kind)
	assert.NotEmpty(t, rep.Tensors[0].Stats)
	kinds := map[string]string{}
	for _, f := range rep.Files {
		kinds[f.Path] = f.Kind
	}
	assert.Equal(t, "same", kinds["config.json"])
	assert.Equal(t, "added", kinds["optimizer.pt"])
}

func TestDiffCommandErrors(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, true)
	// Two folders need no registry.
	assert.Contains(t, c.ok("diff", ckpts[0], ckpts[1]), "config: none; tokenizer: none; weights: ")
	c.ok("init")
	c.ok("push", ckpts[0], "run")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"diff", "run@10"}, 2, "takes 2 argument"},
		{[]string{"diff", "run", "run@10"}, 2, "@REF"},
		{[]string{"diff", "run@10", "bad name@1"}, 2, "NAME"},
		{[]string{"diff", "run@10", filepath.Join(t.TempDir(), "missing")}, 2, "neither a folder nor NAME@REF"},
		{[]string{"diff", "nothing@1", "run@10"}, 1, "no checkpoint named nothing"},
		{[]string{"diff", "run@10", "run@99"}, 1, "no checkpoint run@99"},
	}
	for _, tc := range cases {
		code, _, errs := c.run(tc.args...)
		assert.Equal(t, tc.code, code, "%v: %s", tc.args, errs)
		assert.Contains(t, errs, tc.want, "%v", tc.args)
	}
}
