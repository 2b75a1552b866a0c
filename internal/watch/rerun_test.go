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
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/object"
)

// rerunSpec is another training run into the same output folder: other
// weights, other losses.
func rerunSpec() synth.RunSpec {
	spec := runSpec()
	spec.Seed = 4
	spec.Steps = []int64{100, 200, 300, 400}
	spec.EvalLoss = []float64{1.9, 1.1, 1.3, 1.0}
	return spec
}

// manifests maps NAME's versions in the registry to their manifests.
func (e *env) manifests() map[string]object.ID {
	e.t.Helper()
	c, err := e.reg.Catalog(context.Background(), name)
	require.NoError(e.t, err)
	out := map[string]object.ID{}
	for _, r := range c.Records[name] {
		out[r.Version] = r.Manifest
	}
	return out
}

func (e *env) deleteLocalOnce(evs *events) error {
	e.t.Helper()
	opts := e.options(evs)
	opts.DeleteLocal = true
	w, err := New(e.reg, opts)
	require.NoError(e.t, err)
	return w.RunOnce(context.Background())
}

func conflictSteps(evs *events) []int64 { return evs.steps(EventConflict) }

// Training re-run into the same output folder after the first run's
// checkpoints were pushed and deleted: the new checkpoint-100..400 are
// neither skipped silently nor deleted; each is reported as a conflict
// naming the folder and the version the registry keeps.
func TestRerunAfterDeleteLocalIsReportedAndKept(t *testing.T) {
	e := newEnv(t)
	for i := range runSteps {
		e.write(i)
	}
	first := &events{}
	require.NoError(t, e.deleteLocalOnce(first))
	require.Equal(t, []int64{300, 500}, e.localSteps(), "first run: 100, 200, 400 pushed and deleted")
	recorded := e.manifests()

	// The re-run starts from an empty output folder.
	for _, step := range []int64{300, 500} {
		require.NoError(t, os.RemoveAll(e.dir(step)))
	}
	spec := rerunSpec()
	for i := range spec.Steps {
		_, err := synth.WriteCheckpoint(e.out, spec, i, nil)
		require.NoError(t, err)
	}

	evs := &events{}
	err := e.deleteLocalOnce(evs)
	require.Error(t, err, "--once fails on conflicts")
	assert.ErrorIs(t, err, store.ErrVersionExists)
	assert.Equal(t, []int64{100, 200, 300, 400}, conflictSteps(evs), "every rewritten checkpoint reported")
	for _, ev := range evs.of(EventConflict) {
		line := ev.String()
		assert.Contains(t, line, "checkpoint-"+ev.Err.(*ConflictError).Version)
		assert.Contains(t, line, "run@"+ev.Err.(*ConflictError).Version)
		assert.Contains(t, line, "not pushed")
		assert.True(t, ev.IsError())
	}
	assert.Empty(t, evs.of(EventDeleted))
	assert.Equal(t, []int64{100, 200, 300, 400}, e.localSteps(), "nothing of the re-run deleted")
	assert.Equal(t, recorded, e.manifests(), "the registry keeps the first run")

	// A second look (a restarted watch) reports them again, still keeps them.
	again := &events{}
	require.Error(t, e.deleteLocalOnce(again))
	assert.Equal(t, []int64{100, 200, 300, 400}, conflictSteps(again))
	assert.Equal(t, []int64{100, 200, 300, 400}, e.localSteps())
}

// A pushed folder rewritten in place (not deleted first) is never deleted
// on the strength of its old push; one rewritten with identical bytes is
// the same checkpoint and goes as usual.
func TestRewrittenFolderIsNeverDeletedUnpushed(t *testing.T) {
	e := newEnv(t)
	for i := range runSteps {
		e.write(i)
	}
	w, err := New(e.reg, e.options(&events{}))
	require.NoError(t, err)
	require.NoError(t, w.RunOnce(context.Background()))
	recorded := e.manifests()
	require.Len(t, recorded, 5)

	// The re-run overwrites checkpoint-100 and -200 in place; checkpoint-400
	// is written again with the very same bytes (new files, same content).
	spec := rerunSpec()
	for i := range 2 {
		_, err := synth.WriteCheckpoint(e.out, spec, i, nil)
		require.NoError(t, err)
	}
	require.NoError(t, os.RemoveAll(e.dir(400)))
	e.write(3)

	evs := &events{}
	require.Error(t, e.deleteLocalOnce(evs))
	assert.Equal(t, []int64{100, 200}, conflictSteps(evs))
	for _, ev := range evs.of(EventConflict) {
		c := ev.Err.(*ConflictError)
		assert.True(t, c.Rewritten)
		assert.Equal(t, recorded[c.Version], c.Recorded)
		assert.NotEqual(t, c.Recorded, c.Local)
		assert.Contains(t, ev.String(), "rewritten after its push as run@"+c.Version)
	}
	assert.Equal(t, []int64{400}, evs.steps(EventDeleted), "identical content: deleted as before")
	assert.Equal(t, []int64{100, 200, 300, 500}, e.localSteps(), "the rewritten folders are kept, with best and newest")
	assert.Equal(t, recorded, e.manifests())
	assert.Empty(t, evs.of(EventError))
}

// The per-machine state is a hint: an entry whose manifest no longer
// matches the registry's record (a corrupted or stale index) never leads to
// a deletion.
func TestStaleStateEntryDeletesNothing(t *testing.T) {
	e := newEnv(t)
	for i := range runSteps {
		e.write(i)
	}
	w, err := New(e.reg, e.options(&events{}))
	require.NoError(t, err)
	require.NoError(t, w.RunOnce(context.Background()))
	recorded := e.manifests()

	// checkpoint-100's entry now claims checkpoint-200's manifest, which
	// exists and verifies.
	bucket := StateBucket(e.reg.ID(), e.out, name)
	data, ok := e.ix.GetState(bucket, StepKey(100))
	require.True(t, ok)
	var en Entry
	require.NoError(t, json.Unmarshal(data, &en))
	en.Manifest = recorded["200"]
	data, err = json.Marshal(en)
	require.NoError(t, err)
	require.NoError(t, e.ix.PutState(bucket, StepKey(100), data))

	evs := &events{}
	require.Error(t, e.deleteLocalOnce(evs))
	assert.Equal(t, []int64{200, 400}, evs.steps(EventDeleted))
	assert.Equal(t, []int64{100, 300, 500}, e.localSteps())
	errs := evs.of(EventError)
	require.Len(t, errs, 1)
	assert.Equal(t, int64(100), errs[0].Step)
	assert.Contains(t, errs[0].String(), "kept")
}

// A folder the registry already records with other content (pushed from
// another machine, or this machine's state was lost) is a conflict, not a
// failure retried as one.
func TestVersionPushedElsewhereIsAConflict(t *testing.T) {
	e := newEnv(t)
	other := filepath.Join(t.TempDir(), "other")
	_, err := synth.WriteCheckpoint(other, rerunSpec(), 0, nil)
	require.NoError(t, err)
	_, err = e.reg.Push(context.Background(), filepath.Join(other, "checkpoint-100"), store.PushOptions{Name: name, Version: "100"})
	require.NoError(t, err)
	recorded := e.manifests()
	e.write(0)
	e.write(1)

	evs := &events{}
	err = e.deleteLocalOnce(evs)
	require.Error(t, err)
	assert.ErrorIs(t, err, store.ErrVersionExists)
	require.Equal(t, []int64{100}, conflictSteps(evs))
	c := evs.of(EventConflict)[0].Err.(*ConflictError)
	assert.False(t, c.Rewritten)
	assert.Equal(t, recorded["100"], c.Recorded)
	assert.Contains(t, evs.of(EventConflict)[0].String(), "run@100 already records other content")
	assert.Empty(t, evs.of(EventError))
	assert.Equal(t, []int64{100, 200}, e.localSteps())
	assert.Equal(t, recorded["100"], e.manifests()["100"])
	assert.Contains(t, e.manifests(), "200")
}

// Something writing into a folder between its check and its removal stops
// the removal: the folder is put back, and looked at again.
func TestFolderChangedWhileBeingDeletedIsKept(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.write(i)
	}
	w, err := New(e.reg, e.options(&events{}))
	require.NoError(t, err)
	require.NoError(t, w.RunOnce(context.Background()))

	testHookBeforeRemove = func(dir string) {
		if dir == e.dir(100) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "late.txt"), []byte("written during the delete"), 0o644))
		}
	}
	t.Cleanup(func() { testHookBeforeRemove = nil })
	evs := &events{}
	require.Error(t, e.deleteLocalOnce(evs))
	testHookBeforeRemove = nil
	assert.Equal(t, []int64{200}, evs.steps(EventDeleted))
	assert.Equal(t, []int64{100, 300}, e.localSteps(), "checkpoint-100 put back under its name")
	assert.FileExists(t, filepath.Join(e.dir(100), "late.txt"))
	errs := evs.of(EventError)
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0].Err, errChangedWhileDeleting)

	// Next time it is a rewritten folder: a conflict, kept.
	again := &events{}
	require.Error(t, e.deleteLocalOnce(again))
	assert.Equal(t, []int64{100}, conflictSteps(again))
	assert.Equal(t, []int64{100, 300}, e.localSteps())
}
