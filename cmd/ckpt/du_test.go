package main

import (
	"encoding/json"
	"io/fs"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
)

// registryObjectBytes is the size of every file under the local
// registry's blobs/ and manifests/.
func registryObjectBytes(t *testing.T, repo string) int64 {
	t.Helper()
	var total int64
	for _, dir := range []string{"blobs", "manifests"} {
		require.NoError(t, filepath.WalkDir(filepath.Join(repo, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err == nil {
				total += info.Size()
			}
			return err
		}))
	}
	return total
}

// TestDuStoredIsReferenced: with three of six checkpoints removed and gc
// not run yet, du's stored bytes are those the refs reach, the rest is on
// its own "unreferenced" line; gc frees exactly that and leaves stored as
// it was.
func TestDuStoredIsReferenced(t *testing.T) {
	c := newCLI(t)
	_, ckpts := testutil.TinyRun(t, synth.RunSpec{
		Seed: 11, Steps: []int64{10, 20, 30, 40, 50, 60}, EvalLoss: []float64{2, 1.9, 1.8, 1.7, 1.6, 1.5},
		ResumeState: true, OptimizerScale: 0.1,
	})
	for _, ck := range ckpts {
		c.ok("push", ck, "run")
	}
	for _, v := range []string{"10", "20", "30"} {
		c.ok("rm", "run@"+v)
	}
	du := func() duOutput {
		t.Helper()
		var u duOutput
		require.NoError(t, json.Unmarshal([]byte(c.ok("du", "--json")), &u))
		require.Equal(t, "ckpt.du/v1", u.Schema)
		return u
	}

	before := du()
	total := registryObjectBytes(t, c.repo)
	assert.Equal(t, 3, before.Checkpoints)
	assert.Less(t, before.StoredBytes, total)
	assert.Positive(t, before.UnreferencedBytes)
	assert.Equal(t, total-before.StoredBytes, before.UnreferencedBytes)
	assert.InDelta(t, float64(before.UniqueBytes)/float64(before.StoredBytes), before.CompressionRatio, 1e-12)

	text := c.ok("du")
	assert.Contains(t, text, "  stored        "+humanBytes(before.StoredBytes)+"  (compression ")
	assert.Contains(t, text, "  unreferenced  "+humanBytes(before.UnreferencedBytes)+" in "+strconv.Itoa(before.UnreferencedObjects)+" objects, awaiting gc\n")

	var gc gcOutput
	require.NoError(t, json.Unmarshal([]byte(c.ok("gc", "--grace", "0", "--json")), &gc))
	assert.Equal(t, before.UnreferencedBytes, gc.FreedBytes)

	after := du()
	assert.Zero(t, after.UnreferencedBytes)
	assert.Zero(t, after.UnreferencedObjects)
	assert.Equal(t, before.StoredBytes, after.StoredBytes)
	assert.Equal(t, registryObjectBytes(t, c.repo), after.StoredBytes)
	assert.Contains(t, c.ok("du"), "  unreferenced  0 B in 0 objects, awaiting gc\n")
}
