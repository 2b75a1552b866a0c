package store_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/refs"
)

func TestGarbageCollection(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			t.Run("FreesOnlyUnreferenced", func(t *testing.T) { testGCFrees(t, nb) })
			t.Run("PushRacingGC", func(t *testing.T) { testPushRacingGC(t, nb) })
			t.Run("SecondGCRefused", func(t *testing.T) { testSecondGC(t, nb) })
			t.Run("InterruptedGC", func(t *testing.T) { testInterruptedGC(t, nb) })
			t.Run("Stress", func(t *testing.T) { testGCStress(t, nb) })
		})
	}
}

func allRecords(t *testing.T, r *store.Registry) []refs.Record {
	t.Helper()
	c, err := r.Catalog(context.Background(), "")
	require.NoError(t, err)
	var recs []refs.Record
	for _, n := range c.Names() {
		recs = append(recs, c.Records[n]...)
	}
	return recs
}

func verifyAll(t *testing.T, r *store.Registry) {
	t.Helper()
	_, err := r.Verify(context.Background(), allRecords(t, r), true)
	require.NoError(t, err)
}

func testGCFrees(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	base, ckpts := tinyRun(t, 10, func(s *synth.RunSpec) { s.FrozenEmbedding = true; s.WeightsOnly = true })
	e.push(base, "base", store.PushOptions{Version: "1"})
	for _, ck := range ckpts {
		e.push(ck, "run", store.PushOptions{Base: "base@1"})
	}
	// The base's ref goes, but run still needs its manifest and blobs.
	_, _, err := e.r.Remove(e.ctx, "base", "1")
	require.NoError(t, err)
	plan, err := e.r.RetentionPlan(e.ctx, "run", retention.Policy{KeepLast: 1, KeepBest: 1})
	require.NoError(t, err)
	removed, err := e.r.ApplyPlan(e.ctx, "run", plan)
	require.NoError(t, err)
	assert.Equal(t, []string{"100", "200"}, removed) // 300 is best, 400 latest
	again, err := e.r.ApplyPlan(e.ctx, "run", plan)
	require.NoError(t, err)
	assert.Empty(t, again, "applying a plan twice deletes nothing the second time")

	before, err := e.r.Usage(e.ctx)
	require.NoError(t, err)
	// Within the grace period nothing is deleted.
	res, err := e.r.GC(e.ctx, store.GCOptions{})
	require.NoError(t, err)
	assert.Zero(t, res.DeletedBlobs)
	assert.Positive(t, res.KeptYoung)

	dry, err := e.r.GC(e.ctx, store.GCOptions{NoGrace: true, DryRun: true})
	require.NoError(t, err)
	assert.Positive(t, dry.DeletedBlobs)
	res, err = e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err)
	assert.Equal(t, dry.DeletedBlobs, res.DeletedBlobs)
	assert.Equal(t, 2, res.DeletedManifests)
	assert.Positive(t, res.FreedBytes)
	after, err := e.r.Usage(e.ctx)
	require.NoError(t, err)
	// gc freed exactly what du called unreferenced, nothing the refs reach.
	assert.Equal(t, before.Unreferenced, res.FreedBytes)
	assert.Zero(t, after.Unreferenced)
	assert.Equal(t, before.Stored, after.Stored)
	assert.Equal(t, before.Unique, after.Unique)

	verifyAll(t, e.r)
	for _, v := range []string{"300", "400"} {
		out := filepath.Join(t.TempDir(), v)
		_, err := e.r.Pull(e.ctx, "run", v, out, store.PullOptions{})
		require.NoError(t, err)
		assert.Equal(t, testutil.ReadTree(t, base)["tokenizer.json"], testutil.ReadTree(t, out)["tokenizer.json"])
	}
	res, err = e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err)
	assert.Zero(t, res.DeletedBlobs+res.DeletedManifests, "a second gc finds nothing more")
}

// hookBackend runs a callback before selected operations.
type hookBackend struct {
	backend.Backend
	beforePut func(key string)
}

func (h *hookBackend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if h.beforePut != nil {
		h.beforePut(key)
	}
	return h.Backend.Put(ctx, key, r, size)
}

// testPushRacingGC: a push finds its blobs present (or its cache says so),
// then gc deletes them before the push publishes. The push must notice and
// upload them again; the published checkpoint must be whole.
func testPushRacingGC(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	_, ckpts := tinyRun(t, 10, nil)
	age(t, ckpts[0])
	e.push(ckpts[0], "victim", store.PushOptions{})
	_, _, err := e.r.Remove(e.ctx, "victim", "100")
	require.NoError(t, err)

	hooked := &hookBackend{Backend: e.b}
	var fired atomic.Bool
	hooked.beforePut = func(key string) {
		if strings.HasPrefix(key, "locks/publish-") && fired.CompareAndSwap(false, true) {
			gcr, err := store.Open(context.Background(), e.b, store.Options{})
			require.NoError(t, err)
			res, err := gcr.GC(context.Background(), store.GCOptions{NoGrace: true})
			require.NoError(t, err)
			require.Positive(t, res.DeletedBlobs, "gc should have deleted the unreferenced blobs")
		}
	}
	// Same index: its known-blob cache and stat cache claim everything is there.
	r, err := store.Open(e.ctx, hooked, store.Options{Index: e.ix, Workers: 4})
	require.NoError(t, err)
	res, err := r.Push(e.ctx, ckpts[0], store.PushOptions{Name: "survivor"})
	require.NoError(t, err)
	require.True(t, fired.Load())
	assert.Positive(t, res.NewStored, "the push re-uploaded what gc deleted")
	verifyAll(t, e.r)

	// The next push on this machine does not trust the stale cache either.
	_, _, err = e.r.Remove(e.ctx, "survivor", "100")
	require.NoError(t, err)
	_, err = e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err)
	again := e.push(ckpts[0], "again", store.PushOptions{})
	assert.Positive(t, again.NewBlobs)
	verifyAll(t, e.r)
	out := filepath.Join(t.TempDir(), "out")
	_, err = e.r.Pull(e.ctx, "again", "100", out, store.PullOptions{Full: true})
	require.NoError(t, err)
	assert.Equal(t, testutil.ReadTree(t, ckpts[0]), testutil.ReadTree(t, out))
}

// blockingBackend parks the first Delete until released.
type blockingBackend struct {
	backend.Backend
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (b *blockingBackend) Delete(ctx context.Context, key string) error {
	if strings.HasPrefix(key, "blobs/") || strings.HasPrefix(key, "manifests/") {
		b.once.Do(func() {
			close(b.entered)
			<-b.release
		})
	}
	return b.Backend.Delete(ctx, key)
}

func testSecondGC(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	_, ckpts := tinyRun(t, 10, nil)
	e.push(ckpts[0], "x", store.PushOptions{})
	_, _, err := e.r.Remove(e.ctx, "x", "100")
	require.NoError(t, err)

	blocking := &blockingBackend{Backend: e.b, entered: make(chan struct{}), release: make(chan struct{})}
	first, err := store.Open(e.ctx, blocking, store.Options{})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := first.GC(e.ctx, store.GCOptions{NoGrace: true})
		done <- err
	}()
	select {
	case <-blocking.entered:
	case err := <-done:
		t.Fatalf("the first gc ended before deleting anything: %v", err)
	}
	_, err = e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.ErrorIs(t, err, store.ErrLocked)
	assert.Contains(t, err.Error(), "another garbage collection is running")
	close(blocking.release)
	require.NoError(t, <-done)
	_, err = e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err, "the lock is released when gc ends")
}

// failingDeletes lets n deletions of data through, then fails every one,
// like a gc killed midway; plantLock then leaves the lock a killed process
// would have left.
type failingDeletes struct {
	backend.Backend
	left atomic.Int64
}

func (f *failingDeletes) Delete(ctx context.Context, key string) error {
	if !strings.HasPrefix(key, "locks/") && f.left.Add(-1) < 0 {
		return fmt.Errorf("killed")
	}
	return f.Backend.Delete(ctx, key)
}

func testInterruptedGC(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	_, ckpts := tinyRun(t, 10, nil)
	for _, ck := range ckpts {
		e.push(ck, "k", store.PushOptions{})
	}
	_, _, err := e.r.Remove(e.ctx, "k", "100")
	require.NoError(t, err)
	_, _, err = e.r.Remove(e.ctx, "k", "200")
	require.NoError(t, err)

	// The killed gc's lock names a process of this host that is gone.
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	pid := dead.ProcessState.Pid()
	for cut := int64(0); cut < 3; cut++ {
		f := &failingDeletes{Backend: e.b}
		f.left.Store(cut)
		killed, err := store.Open(e.ctx, f, store.Options{})
		require.NoError(t, err)
		_, err = killed.GC(e.ctx, store.GCOptions{NoGrace: true})
		require.Error(t, err)
		verifyAll(t, e.r)
		plantLock(t, e, pid)
	}
	res, err := e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err, "the next gc takes over the dead process's lock")
	assert.Positive(t, res.DeletedBlobs)
	verifyAll(t, e.r)
	res, err = e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err)
	assert.Zero(t, res.DeletedBlobs+res.DeletedManifests)
}

// plantLock leaves a gc lock of a (dead) process of this host.
func plantLock(t *testing.T, e *env, pid int) {
	t.Helper()
	host, _ := os.Hostname()
	data := []byte(fmt.Sprintf(`{"kind":"gc","host":%q,"pid":%d,"created":"2026-01-01T00:00:00Z"}`, host, pid))
	require.NoError(t, e.b.Put(e.ctx, fmt.Sprintf("locks/gc-dead%d.json", time.Now().UnixNano()), strings.NewReader(string(data)), int64(len(data))))
}

// testGCStress: pushers on separate "machines" keep pushing checkpoints that
// share blobs with ones retention deletes, while retention and gc run in a
// loop. At the end everything verifies and every surviving checkpoint pulls
// byte-identical.
func testGCStress(t *testing.T, nb newBackendFunc) {
	if testing.Short() {
		t.Skip("stress test skipped in -short mode")
	}
	e := newEnv(t, nb)
	_, pool := tinyRun(t, 10, func(s *synth.RunSpec) {
		s.Steps = []int64{1, 2, 3, 4, 5, 6}
		s.EvalLoss = []float64{3, 2, 1, 2, 3, 4}
		s.FrozenEmbedding = true
		s.ResumeState = false
	})
	for _, p := range pool {
		age(t, p)
	}
	const pushers = 4
	deadline := time.Now().Add(8 * time.Second)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var pushes, gcs atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for i := range pushers {
		g.Go(func() error {
			ix, err := store.OpenIndex(filepath.Join(t.TempDir(), "index.db"))
			if err != nil {
				return err
			}
			defer ix.Close()
			r, err := store.Open(gctx, e.b, store.Options{Index: ix, Workers: 2})
			if err != nil {
				return err
			}
			for n := 0; time.Now().Before(deadline); n++ {
				src := pool[(n+i)%len(pool)]
				_, err := r.Push(gctx, src, store.PushOptions{Name: fmt.Sprintf("stress-%d", i), Version: fmt.Sprint(n*10 + (n+i)%len(pool))})
				if err != nil {
					return fmt.Errorf("pusher %d: %w", i, err)
				}
				pushes.Add(1)
			}
			return nil
		})
	}
	g.Go(func() error {
		r, err := store.Open(gctx, e.b, store.Options{Workers: 2})
		if err != nil {
			return err
		}
		for time.Now().Before(deadline) {
			if err := retainLastOne(gctx, r); err != nil {
				return err
			}
			if _, err := r.GC(gctx, store.GCOptions{NoGrace: true}); err != nil {
				return fmt.Errorf("gc: %w", err)
			}
			gcs.Add(1)
		}
		return nil
	})
	require.NoError(t, g.Wait())
	t.Logf("%d pushes, %d retention+gc rounds", pushes.Load(), gcs.Load())
	require.Positive(t, gcs.Load())
	require.GreaterOrEqual(t, pushes.Load(), int64(pushers))

	verifyAll(t, e.r)
	for _, rec := range allRecords(t, e.r) {
		var v int
		_, err := fmt.Sscan(rec.Version, &v)
		require.NoError(t, err)
		src := pool[v%10]
		out := filepath.Join(t.TempDir(), "pulled")
		_, err = e.r.Pull(e.ctx, rec.Name, rec.Version, out, store.PullOptions{Full: true})
		require.NoError(t, err)
		assert.Equal(t, testutil.ReadTree(t, src), testutil.ReadTree(t, out), "%s@%s", rec.Name, rec.Version)
	}
}

// retainLastOne applies retention "keep the last 1" to every NAME of r.
func retainLastOne(ctx context.Context, r *store.Registry) error { return retainLast(ctx, r, 1) }

// retainLast applies a keep-the-last-k retention plan to every NAME.
func retainLast(ctx context.Context, r *store.Registry, k int) error {
	names, err := r.Names(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		plan, err := r.RetentionPlan(ctx, n, retention.Policy{KeepLast: k})
		if err != nil {
			return err
		}
		if _, err := r.ApplyPlan(ctx, n, plan); err != nil {
			return err
		}
	}
	return nil
}
