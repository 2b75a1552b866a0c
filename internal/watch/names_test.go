package watch

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
)

// Event lines stay one line each and carry no terminal control sequence,
// whatever the names in the output folder (the folder's own name, the
// shards an index names).
func TestEventLinesEscapeNames(t *testing.T) {
	e := newEnv(t)
	e.out = filepath.Join(filepath.Dir(e.out), "out\x1b[2J")
	require.NoError(t, os.MkdirAll(e.out, 0o755))
	e.write(0)
	// checkpoint-200: its index names a shard that is not there.
	incomplete := e.write(1)
	index, err := json.Marshal(map[string]any{"weight_map": map[string]string{"w": "evil\x1b[2J\nshard.safetensors"}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(incomplete, "model.safetensors.index.json"), index, 0o644))
	// checkpoint-300: a truncated weights file makes its push fail.
	bad := e.write(2)
	weights := filepath.Join(bad, "model.safetensors")
	fi, err := os.Stat(weights)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(weights, fi.Size()/2))
	_, err = synth.WriteCheckpoint(e.out, runSpec(), 3, nil)
	require.NoError(t, err)

	evs := &events{}
	w, err := New(e.reg, e.options(evs))
	require.NoError(t, err)
	require.Error(t, w.RunOnce(context.Background()))
	require.NotEmpty(t, evs.of(EventIncomplete))
	require.NotEmpty(t, evs.of(EventError))
	require.NotEmpty(t, evs.of(EventPushed))
	for _, ev := range evs.evs {
		line := ev.String()
		assert.NotContains(t, line, "\x1b", "%s event", ev.Kind)
		assert.NotContains(t, line, "\n", "%s event", ev.Kind)
	}
	assert.Contains(t, evs.of(EventIncomplete)[0].String(), `evil\x1b[2J\nshard.safetensors`)
}
