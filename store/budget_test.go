package store_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// gatedBackend holds every blob Get (or Put) in the gate until the test
// opens it, and counts how many are held at once.
type gatedBackend struct {
	backend.Backend
	gatePuts bool

	mu      sync.Mutex
	held    int
	maxHeld int
	open    chan struct{}
}

func (g *gatedBackend) wait(key string) {
	if !strings.HasPrefix(key, "blobs/") {
		return
	}
	g.mu.Lock()
	g.held++
	g.maxHeld = max(g.maxHeld, g.held)
	g.mu.Unlock()
	<-g.open
	g.mu.Lock()
	g.held--
	g.mu.Unlock()
}

func (g *gatedBackend) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if !g.gatePuts {
		g.wait(key)
	}
	return g.Backend.Get(ctx, key, off, n)
}

func (g *gatedBackend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if g.gatePuts {
		g.wait(key)
	}
	return g.Backend.Put(ctx, key, r, size)
}

func (g *gatedBackend) counts() (held, maxHeld int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held, g.maxHeld
}

// TestTransferBudgetBoundsWorkers: with a budget that fits two chunks,
// 6 workers of pull (and pull --link), verify --read-data and push hold at
// most two chunks in flight; the four others wait for the budget before
// they read. ReadRange waits for it too.
func TestTransferBudgetBoundsWorkers(t *testing.T) {
	const chunks, chunk = 6, 1 << 20
	defer store.SetTransferBudget(2 * store.ObjectCost(chunk))()

	// A folder of 6 one-chunk files of different content, and a registry
	// that records it.
	dir := t.TempDir()
	var files []manifest.File
	objects := map[string][]byte{}
	for i := range chunks {
		content := []byte(strings.Repeat(string(rune('a'+i)), chunk))
		id := object.Hash(content)
		name := "part-" + itoa(int64(i)) + ".bin"
		files = append(files, oneChunkFile(name, id, chunk))
		objects[object.BlobKey(id)] = object.Encode(nil, content, object.EncodeHint{})
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), content, 0o644))
	}

	// run starts op, waits until two transfers are in the gate and the
	// other four wait for the budget, checks that no third one got in,
	// then opens the gate and waits for op.
	run := func(t *testing.T, g *gatedBackend, op func() error) {
		done := make(chan error, 1)
		go func() { done <- op() }()
		var opErr error
		finished := false
		finish := func() { // open the gate and wait for op, once
			if !finished {
				finished = true
				close(g.open)
				opErr = <-done
			}
		}
		defer finish() // also when a check below fails
		require.Eventually(t, func() bool {
			held, maxHeld := g.counts()
			return maxHeld > 2 || held == 2 && store.TransfersWaiting() == chunks-2
		}, 20*time.Second, time.Millisecond)
		_, maxHeld := g.counts()
		assert.Equal(t, 2, maxHeld, "chunks in flight at once")
		finish()
		require.NoError(t, opErr)
		_, maxHeld = g.counts()
		assert.Equal(t, 2, maxHeld, "chunks in flight at once")
	}

	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			t.Run("pull", func(t *testing.T) {
				g := &gatedBackend{Backend: nb(t), open: make(chan struct{})}
				hostileRegistry(t, g.Backend, files, objects)
				r, err := store.Open(ctx, g, store.Options{Workers: chunks})
				require.NoError(t, err)
				run(t, g, func() error {
					_, err := r.Pull(ctx, "hostile", "1", filepath.Join(t.TempDir(), "out"), store.PullOptions{Full: true, AllowIncomplete: true})
					return err
				})
			})
			t.Run("pull --link", func(t *testing.T) {
				g := &gatedBackend{Backend: nb(t), open: make(chan struct{})}
				hostileRegistry(t, g.Backend, files, objects)
				fc, err := store.OpenContentCache(t.TempDir(), 1<<30)
				require.NoError(t, err)
				// pull --link fetches workers/2 files at once, each with
				// workers/2 chunk workers.
				r, err := store.Open(ctx, g, store.Options{Workers: 2 * chunks, Cache: fc})
				require.NoError(t, err)
				run(t, g, func() error {
					_, err := r.Pull(ctx, "hostile", "1", filepath.Join(t.TempDir(), "out"), store.PullOptions{Full: true, AllowIncomplete: true, Link: true})
					return err
				})
			})
			t.Run("verify --read-data", func(t *testing.T) {
				g := &gatedBackend{Backend: nb(t), open: make(chan struct{})}
				hostileRegistry(t, g.Backend, files, objects)
				r, err := store.Open(ctx, g, store.Options{Workers: chunks})
				require.NoError(t, err)
				rec, err := r.Resolve(ctx, "hostile", "1")
				require.NoError(t, err)
				run(t, g, func() error {
					_, err := r.Verify(ctx, []refs.Record{rec}, true)
					return err
				})
			})
			t.Run("push", func(t *testing.T) {
				g := &gatedBackend{Backend: nb(t), open: make(chan struct{}), gatePuts: true}
				r, _, err := store.Init(ctx, g, store.Options{Workers: chunks})
				require.NoError(t, err)
				run(t, g, func() error {
					_, err := r.Push(ctx, dir, store.PushOptions{Name: "pushed", Version: "1"})
					return err
				})
			})
			t.Run("ReadRange", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				b := nb(t)
				r := hostileRegistry(t, b, files, objects)
				release, err := store.AcquireTransfers(ctx, 2*store.ObjectCost(chunk))
				require.NoError(t, err)
				done := make(chan error, 1)
				go func() {
					_, err := r.ReadRange(ctx, &files[0], 10, 100)
					done <- err
				}()
				defer release()
				require.Eventually(t, func() bool { return store.TransfersWaiting() == 1 }, 20*time.Second, time.Millisecond,
					"ReadRange waits for the budget")
				release()
				require.NoError(t, <-done)
			})
		})
	}
}
