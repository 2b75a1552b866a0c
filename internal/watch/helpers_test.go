package watch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/store"
)

const name = "run"

var tokenizerDir = filepath.Join("..", "..", "testdata", "gpt2")

// steps and losses of the test run: the best checkpoint (300) is neither
// the first nor the last.
var (
	runSteps  = []int64{100, 200, 300, 400, 500}
	runLosses = []float64{2.0, 1.5, 1.2, 1.4, 1.6}
)

func runSpec() synth.RunSpec {
	return synth.RunSpec{
		Model: synth.TinyModel(), Seed: 3, Steps: runSteps, EvalLoss: runLosses,
		ResumeState: true, OptimizerScale: 0.05, TokenizerDir: tokenizerDir,
	}
}

// env is a registry with its per-machine index and an output folder.
type env struct {
	t   *testing.T
	reg *store.Registry
	ix  *store.Index
	out string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	reg, _, ix := testutil.LocalRegistry(t, 2)
	out := filepath.Join(t.TempDir(), "out")
	require.NoError(t, os.MkdirAll(out, 0o755))
	return &env{t: t, reg: reg, ix: ix, out: out}
}

// write writes checkpoint i of the run, all at once.
func (e *env) write(i int) string {
	e.t.Helper()
	dir, err := synth.WriteCheckpoint(e.out, runSpec(), i, nil)
	require.NoError(e.t, err)
	return dir
}

func (e *env) dir(step int64) string {
	return filepath.Join(e.out, "checkpoint-"+strconv.FormatInt(step, 10))
}

// versions lists NAME's versions in the registry.
func (e *env) versions() []string {
	e.t.Helper()
	c, err := e.reg.Catalog(context.Background(), name)
	require.NoError(e.t, err)
	var vs []string
	for _, r := range c.Records[name] {
		vs = append(vs, r.Version)
	}
	return vs
}

// stateSteps lists the steps recorded in the index for this watch.
func (e *env) stateSteps() []int64 {
	var steps []int64
	for _, k := range e.ix.StateKeys(StateBucket(e.reg.ID(), e.out, name)) {
		s, _ := strconv.ParseInt(k, 10, 64)
		steps = append(steps, s)
	}
	return steps
}

// spyRegistry wraps a registry to watch, fail or hold pushes.
type spyRegistry struct {
	*store.Registry
	mu     sync.Mutex
	pushes []int64 // steps pushed, in call order
	fail   map[int64]bool
	// before, if set, runs at the start of every push.
	before func(ctx context.Context, step int64, dir string)
}

func (s *spyRegistry) Push(ctx context.Context, dir string, opts store.PushOptions) (*store.PushResult, error) {
	step, err := strconv.ParseInt(opts.Version, 10, 64)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.pushes = append(s.pushes, step)
	fail := s.fail[step]
	s.mu.Unlock()
	if s.before != nil {
		s.before(ctx, step, dir)
	}
	if fail {
		return nil, fmt.Errorf("push %s: injected failure", dir)
	}
	return s.Registry.Push(ctx, dir, opts)
}

func (s *spyRegistry) pushed() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pushes)
}

// events collects a watcher's events; OnEvent runs on the watcher's goroutine.
type events struct {
	mu  sync.Mutex
	evs []Event
}

func (c *events) add(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evs = append(c.evs, ev)
}

func (c *events) of(kind Kind) []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Event
	for _, ev := range c.evs {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

func (c *events) steps(kind Kind) []int64 {
	var out []int64
	for _, ev := range c.of(kind) {
		out = append(out, ev.Step)
	}
	return out
}

// options are fast settings for tests.
func (e *env) options(evs *events) Options {
	return Options{Dir: e.out, Name: name, Interval: 25 * time.Millisecond, Settle: 50 * time.Millisecond, State: e.ix, OnEvent: evs.add}
}

// running is a watcher's Run in a goroutine that the test owns: stop
// cancels it and returns Run's result.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, w *Watcher) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// localSteps lists the checkpoint folders present in the output folder,
// failing on any other entry (a half-deleted folder, for one).
func (e *env) localSteps() []int64 {
	e.t.Helper()
	ents, err := os.ReadDir(e.out)
	require.NoError(e.t, err)
	var steps []int64
	for _, ent := range ents {
		m := checkpointName.FindStringSubmatch(ent.Name())
		require.NotNil(e.t, m, "unexpected %s in the output folder", ent.Name())
		s, _ := strconv.ParseInt(m[1], 10, 64)
		steps = append(steps, s)
	}
	slices.Sort(steps)
	return steps
}
