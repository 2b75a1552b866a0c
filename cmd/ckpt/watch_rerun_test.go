package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
)

// A re-run into the same output folder: the rewritten checkpoint is
// reported as a conflict with what to do, kept, and --once exits 1.
func TestWatchRerunConflict(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false) // steps 10, 20, 30
	out := filepath.Dir(ckpts[0])
	c.ok("watch", out, "run", "--once", "--settle", "50ms")

	_, rerun := testutil.TinyRun(t, synth.RunSpec{
		Seed: 8, Steps: []int64{10}, EvalLoss: []float64{1.7}, ResumeState: true, OptimizerScale: 0.1,
	})
	require.NoError(t, os.RemoveAll(ckpts[0]))
	copyDir(t, rerun[0], ckpts[0])

	code, _, errs := c.run("watch", out, "run", "--once", "--settle", "50ms", "--delete-local")
	assert.Equal(t, 1, code, errs)
	t.Log(errs)
	assert.Contains(t, errs, "conflict: ")
	assert.Contains(t, errs, "checkpoint-10 was rewritten after its push as run@10")
	assert.Contains(t, errs, "watch it under another NAME")
	assert.DirExists(t, ckpts[0], "never deleted")

	// Under another NAME the re-run is recorded.
	stdout := c.ok("watch", out, "run2", "--once", "--settle", "50ms")
	assert.Contains(t, stdout, "pushed run2@10")
}
