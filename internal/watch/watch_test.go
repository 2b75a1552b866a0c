package watch

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/refs"
)

// poll is waitFor for goroutines other than the test's: it reports whether
// cond held before the deadline.
func poll(cond func() bool) bool {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

func (e *env) entry(step int64) (Entry, bool) {
	data, ok := e.ix.GetState(StateBucket(e.reg.ID(), e.out, name), StepKey(step))
	if !ok {
		return Entry{}, false
	}
	var en Entry
	if err := json.Unmarshal(data, &en); err != nil {
		return Entry{}, false
	}
	return en, true
}

// writeRun writes the run the way Trainer does while the watcher runs:
// checkpoint after checkpoint, stage after stage, trainer_state.json last.
// At every pause (before trainer_state.json) it calls check, then lets the
// watcher make two passes over the half-written folder.
func writeRun(t *testing.T, e *env, w *Watcher, check func(step int64, stage string)) {
	spec := runSpec()
	done := make(chan error, 1)
	go func() {
		for i, step := range spec.Steps {
			_, err := synth.WriteCheckpoint(e.out, spec, i, func(stage string) {
				check(step, stage)
				seen := w.passes.Load()
				assert.True(t, poll(func() bool { return w.passes.Load() >= seen+2 }), "the watcher stopped passing")
			})
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	require.NoError(t, <-done)
}

func TestPushesTrainerRunOnceEachInStepOrder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	spy := &spyRegistry{Registry: e.reg}
	spy.before = func(_ context.Context, step int64, dir string) {
		assert.NoError(t, layout.CheckCompleteDir(dir), "push of an incomplete checkpoint-%d", step)
	}
	evs := &events{}
	w, err := New(spy, e.options(evs))
	require.NoError(t, err)
	run := start(t, w)

	halfSeen := 0
	writeRun(t, e, w, func(step int64, stage string) {
		// trainer_state.json is not written yet: nothing may be recorded.
		_, err := e.reg.Resolve(ctx, name, strconv.FormatInt(step, 10))
		assert.ErrorIs(t, err, refs.ErrNoCheckpoint, "%s@%d recorded after stage %s", name, step, stage)
		_, recorded := e.entry(step)
		assert.False(t, recorded, "checkpoint-%d in the watch state after stage %s", step, stage)
		halfSeen++
	})
	waitFor(t, "every checkpoint pushed", func() bool { return len(e.stateSteps()) == len(runSteps) })
	require.NoError(t, run.stop(t))

	assert.Greater(t, halfSeen, len(runSteps), "the writer paused between stages")
	assert.Equal(t, runSteps, spy.pushed(), "each checkpoint pushed once, in step order")
	assert.Equal(t, runSteps, evs.steps(EventPushed))
	assert.Empty(t, evs.of(EventError))
	for _, ev := range evs.of(EventPushed) {
		assert.Contains(t, ev.String(), "pushed run@"+strconv.FormatInt(ev.Step, 10)+": ")
	}
	for _, step := range runSteps {
		dst := filepath.Join(t.TempDir(), "pulled")
		_, err := e.reg.Pull(ctx, name, strconv.FormatInt(step, 10), dst, store.PullOptions{Full: true})
		require.NoError(t, err)
		assert.Equal(t, testutil.ReadTree(t, e.dir(step)), testutil.ReadTree(t, dst), "checkpoint-%d pulled back", step)
	}
}

func TestRestartedWatchPushesOnlyNewCheckpoints(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.write(i)
	}
	spy1 := &spyRegistry{Registry: e.reg}
	w1, err := New(spy1, e.options(&events{}))
	require.NoError(t, err)
	r1 := start(t, w1)
	waitFor(t, "the first three pushes", func() bool { return len(e.stateSteps()) == 3 })
	require.NoError(t, r1.stop(t))
	assert.Equal(t, runSteps[:3], spy1.pushed())

	// While the watch is down: two new checkpoints, and a pushed folder
	// changes (it is not pushed again under its version: a conflict).
	e.write(3)
	e.write(4)
	require.NoError(t, os.WriteFile(filepath.Join(e.dir(100), "notes.txt"), []byte("edited"), 0o644))

	spy2 := &spyRegistry{Registry: e.reg}
	evs := &events{}
	opts := e.options(evs)
	opts.NoNotify = true // polling only, as on a network file system
	w2, err := New(spy2, opts)
	require.NoError(t, err)
	assert.Len(t, w2.Entries(), 3, "the new watcher starts from the recorded state")
	r2 := start(t, w2)
	waitFor(t, "the new checkpoints", func() bool { return len(e.stateSteps()) == 5 })
	require.NoError(t, r2.stop(t))

	assert.Equal(t, []int64{400, 500}, spy2.pushed())
	assert.Empty(t, evs.of(EventError))
	assert.Equal(t, []int64{100}, evs.steps(EventConflict), "the edited folder is reported")
	assert.Equal(t, []string{"100", "200", "300", "400", "500"}, e.versions())
}

func TestRetentionAfterEveryPush(t *testing.T) {
	e := newEnv(t)
	for i := range runSteps {
		e.write(i)
	}
	spy := &spyRegistry{Registry: e.reg}
	spy.before = func(context.Context, int64, string) {
		// Retention ran after every earlier push: at most best + latest.
		assert.LessOrEqual(t, len(e.versions()), 2)
	}
	evs := &events{}
	opts := e.options(evs)
	opts.Retention = &retention.Policy{KeepLast: 1, KeepBest: 1}
	w, err := New(spy, opts)
	require.NoError(t, err)
	require.NoError(t, w.RunOnce(context.Background()))

	assert.Equal(t, runSteps, spy.pushed())
	assert.Equal(t, []string{"300", "500"}, e.versions(), "best (eval_loss 1.2) and latest")
	var removed []string
	for _, ev := range evs.of(EventRetention) {
		removed = append(removed, ev.Removed...)
	}
	assert.Equal(t, []string{"100", "200", "400"}, removed)
	assert.Equal(t, runSteps, e.localSteps(), "retention never touches local folders")
}

func TestDeleteLocalKeepsNewestBestAndUnpushed(t *testing.T) {
	e := newEnv(t)
	spy := &spyRegistry{Registry: e.reg, fail: map[int64]bool{200: true}}
	evs := &events{}
	opts := e.options(evs)
	opts.DeleteLocal = true
	w, err := New(spy, opts)
	require.NoError(t, err)
	run := start(t, w)

	writeRun(t, e, w, func(step int64, stage string) {
		// The previous checkpoint is the newest complete one: never deleted.
		if prev := step - 100; prev > 0 {
			assert.DirExists(t, e.dir(prev), "while checkpoint-%d is at %s", step, stage)
		}
	})
	deleted := func(step int64) bool { en, ok := e.entry(step); return ok && en.Deleted }
	waitFor(t, "pushes and deletions", func() bool {
		_, ok := e.entry(500)
		return ok && deleted(100) && deleted(400)
	})
	require.NoError(t, run.stop(t))

	assert.Equal(t, []int64{200, 300, 500}, e.localSteps(), "kept: failed push, best, newest")
	assert.Equal(t, []int64{100, 400}, evs.steps(EventDeleted))
	_, recorded := e.entry(200)
	assert.False(t, recorded)
	for _, step := range []int64{100, 300, 400, 500} {
		en, ok := e.entry(step)
		require.True(t, ok)
		assert.True(t, en.Verified, "checkpoint-%d verified", step)
		assert.Equal(t, step == 100 || step == 400, en.Deleted, "checkpoint-%d deleted", step)
	}
	assert.Equal(t, []string{"100", "300", "400", "500"}, e.versions(), "deleting local folders removes nothing from the registry")
	require.NotEmpty(t, evs.of(EventError))
	for _, ev := range evs.of(EventError) {
		assert.Equal(t, int64(200), ev.Step)
		assert.Contains(t, ev.Err.Error(), "checkpoint-200")
	}
}

func TestCancelFinishesThePushInFlight(t *testing.T) {
	e := newEnv(t)
	e.write(0)
	e.write(1)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	spy := &spyRegistry{Registry: e.reg}
	spy.before = func(ctx context.Context, step int64, dir string) {
		once.Do(func() {
			close(started)
			<-release
			assert.NoError(t, ctx.Err(), "the push in flight was cancelled")
		})
	}
	w, err := New(spy, e.options(&events{}))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("no push started")
	}
	cancel() // SIGINT while checkpoint-100 is being pushed
	close(release)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	assert.Equal(t, []int64{100}, spy.pushed(), "no push starts after the cancel")
	assert.Equal(t, []string{"100"}, e.versions(), "the push in flight completed")
	assert.Equal(t, []int64{100}, e.stateSteps(), "and was recorded")
}

func TestCorruptCheckpointSkippedThenRetriedOnChange(t *testing.T) {
	e := newEnv(t)
	e.write(0)
	bad := e.write(1)
	e.write(2)
	weights := filepath.Join(bad, "model.safetensors")
	fi, err := os.Stat(weights)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(weights, fi.Size()/2))

	// --once: reported, skipped, later ones pushed, and an error in the end.
	// The hour-long interval is also the back-off before a failed
	// checkpoint is tried again without a change.
	evs := &events{}
	opts := e.options(evs)
	opts.Interval = time.Hour
	w, err := New(e.reg, opts)
	require.NoError(t, err)
	err = w.RunOnce(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "checkpoint-200")
	assert.Equal(t, []string{"100", "300"}, e.versions())
	errs := evs.of(EventError)
	require.Len(t, errs, 1)
	assert.Equal(t, int64(200), errs[0].Step)
	assert.Contains(t, errs[0].String(), "checkpoint-200")

	// Run on the same watcher: only the fix, a change seen by fsnotify,
	// makes it try again.
	seen := w.passes.Load()
	run := start(t, w)
	waitFor(t, "a pass", func() bool { return w.passes.Load() > seen })
	for _, ev := range evs.of(EventWarning) {
		if strings.Contains(ev.Err.Error(), "fsnotify unavailable") {
			t.Skip("no fsnotify here:", ev.Err)
		}
	}
	assert.Len(t, evs.of(EventError), 1, "not tried again before it changes")

	fixed := filepath.Join(t.TempDir(), "fixed")
	_, err = synth.WriteCheckpoint(fixed, runSpec(), 1, nil)
	require.NoError(t, err)
	require.NoError(t, os.Rename(filepath.Join(fixed, "checkpoint-200", "model.safetensors"), weights))
	waitFor(t, "checkpoint-200 pushed after the fix", func() bool { _, ok := e.entry(200); return ok })
	require.NoError(t, run.stop(t))
	assert.Equal(t, []string{"100", "200", "300"}, e.versions())
}

func TestSettleAndOrderWithAFakeClock(t *testing.T) {
	e := newEnv(t)
	e.write(0)
	e.write(1)
	now := time.Now()
	spy := &spyRegistry{Registry: e.reg}
	opts := e.options(&events{})
	opts.Now = func() time.Time { return now }
	w, err := New(spy, opts)
	require.NoError(t, err)
	ctx := context.Background()
	settle := opts.Settle

	res := w.pass(ctx)
	assert.True(t, res.settling)
	assert.Equal(t, now.Add(settle), res.wakeAt)
	assert.Empty(t, spy.pushed(), "first sight: settling")

	// checkpoint-100 changes just before its settle period ends: it starts
	// over, and checkpoint-200 waits for it even once settled itself.
	t0 := now
	now = t0.Add(settle - time.Millisecond)
	touched := now.Add(-time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(e.dir(100), "config.json"), touched, touched))
	res = w.pass(ctx)
	assert.True(t, res.settling)
	assert.Empty(t, spy.pushed())

	now = t0.Add(settle) // checkpoint-200 settled, checkpoint-100 not
	res = w.pass(ctx)
	assert.True(t, res.settling)
	assert.Equal(t, t0.Add(2*settle-time.Millisecond), res.wakeAt)
	assert.Empty(t, spy.pushed(), "no step pushed before a lower one that is settling")

	now = res.wakeAt
	res = w.pass(ctx)
	assert.False(t, res.settling)
	assert.Equal(t, 2, res.pushed)
	assert.Equal(t, []int64{100, 200}, spy.pushed())
}

func TestIncompleteDoesNotBlockLaterSteps(t *testing.T) {
	e := newEnv(t)
	e.write(0)
	e.write(1)
	state := filepath.Join(e.dir(100), "trainer_state.json")
	data, err := os.ReadFile(state)
	require.NoError(t, err)
	require.NoError(t, os.Remove(state))

	now := time.Now()
	spy := &spyRegistry{Registry: e.reg}
	evs := &events{}
	opts := e.options(evs)
	opts.Now = func() time.Time { return now }
	w, err := New(spy, opts)
	require.NoError(t, err)
	w.pass(context.Background())
	now = now.Add(opts.Settle)
	w.pass(context.Background())
	assert.Equal(t, []int64{200}, spy.pushed())
	inc := evs.of(EventIncomplete)
	require.Len(t, inc, 1)
	assert.Equal(t, "skipped incomplete checkpoint-100: missing trainer_state.json", inc[0].String())

	// It completes later: pushed then (late, but once).
	require.NoError(t, os.WriteFile(state, data, 0o644))
	w.pass(context.Background())
	now = now.Add(opts.Settle)
	w.pass(context.Background())
	w.pass(context.Background())
	assert.Equal(t, []int64{200, 100}, spy.pushed())
	assert.Len(t, evs.of(EventIncomplete), 1, "reported once")
}

func TestLeftoverOfAnInterruptedDeleteIsRemoved(t *testing.T) {
	e := newEnv(t)
	e.write(0)
	leftover := filepath.Join(e.out, deletingPrefix+"checkpoint-50-0a1b2c")
	require.NoError(t, os.MkdirAll(filepath.Join(leftover, "half"), 0o755))
	w, err := New(e.reg, e.options(&events{}))
	require.NoError(t, err)
	require.NoError(t, w.RunOnce(context.Background()))
	assert.NoDirExists(t, leftover)
	assert.Equal(t, []int64{100}, e.localSteps())
	assert.Equal(t, []string{"100"}, e.versions())
}

func TestRunWaitsForTheOutputFolder(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, os.Remove(e.out))
	evs := &events{}
	w, err := New(e.reg, e.options(evs))
	require.NoError(t, err)
	run := start(t, w)
	waitFor(t, "the warning", func() bool { return len(evs.of(EventWarning)) > 0 })
	e.write(0) // Trainer creates output_dir with its first checkpoint
	waitFor(t, "the push", func() bool { _, ok := e.entry(100); return ok })
	require.NoError(t, run.stop(t))
	warnings := evs.of(EventWarning)
	require.Len(t, warnings, 1, "warned once")
	assert.Contains(t, warnings[0].String(), "waiting for it")
	assert.Equal(t, []string{"100"}, e.versions())
}
