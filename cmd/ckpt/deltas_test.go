package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/testutil"
)

// TestPushDeltasFlag: push --deltas stores later checkpoints of a run as
// differences from the first (fewer stored bytes than without), pulls
// them back byte for byte, and verify reads them through their references.
func TestPushDeltasFlag(t *testing.T) {
	dirs := testutil.DriftingRun(t, 31, 3)
	stored := func(deltas bool) int64 {
		c := newCLI(t)
		for _, d := range dirs {
			args := []string{"push", d, "run", "--json"}
			if deltas {
				args = append(args, "--deltas")
			}
			c.ok(args...)
		}
		var u duOutput
		require.NoError(t, json.Unmarshal([]byte(c.ok("du", "--json")), &u))
		c.ok("verify", "--all", "--read-data")
		for i, d := range dirs {
			out := filepath.Join(t.TempDir(), "out")
			c.ok("pull", "run@"+[]string{"100", "200", "300"}[i], out)
			assert.Equal(t, testutil.ReadTree(t, d), testutil.ReadTree(t, out))
		}
		return u.StoredBytes
	}
	plain, deltas := stored(false), stored(true)
	assert.Less(t, float64(deltas), 0.8*float64(plain), "deltas %d bytes, plain %d", deltas, plain)
}
