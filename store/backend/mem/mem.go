// Package mem is a registry backend that keeps its objects in memory: a
// throw-away registry for tests, benchmarks and library users, with the
// same contract as a local folder or a bucket (it passes
// store/backend/backendtest). Objects live as long as the Backend value.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ckptdev/ckpt/store/backend"
)

// Backend keeps objects in a map. The zero value is not usable: call New.
type Backend struct {
	mu      sync.Mutex
	objects map[string]object
	now     func() time.Time
}

// object is one stored object: its bytes (never modified after Put) and
// the time the backend stamped it with.
type object struct {
	data    []byte
	modTime time.Time
}

// New returns an empty backend whose clock is time.Now.
func New() *Backend {
	return &Backend{objects: map[string]object{}, now: time.Now}
}

// SetClock replaces the clock that stamps objects as they are created (the
// ModTime that Stat and List report, which garbage collection compares);
// nil restores time.Now. Benchmarks use it to build a registry whose
// objects are already old.
func (b *Backend) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	b.mu.Lock()
	b.now = now
	b.mu.Unlock()
}

// Location implements backend.Backend.
func (b *Backend) Location() string { return fmt.Sprintf("memory (%p)", b) }

// CheapStat implements backend.CheapStatter: Stat is a map lookup.
func (b *Backend) CheapStat() bool { return true }

// Put implements backend.Backend. The whole object is read before it
// becomes visible, so a failing or cancelled reader leaves nothing.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := backend.CheckKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d", key, size)
	}
	if b.exists(key) {
		return fmt.Errorf("%s: %w", key, backend.ErrExists)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(ctxReader{ctx, r}, size+1))
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if n != size {
		return fmt.Errorf("put %s: read %d bytes, want %d", key, n, size)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.objects[key]; ok {
		return fmt.Errorf("%s: %w", key, backend.ErrExists)
	}
	b.objects[key] = object{data: buf.Bytes(), modTime: b.now()}
	return nil
}

func (b *Backend) exists(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.objects[key]
	return ok
}

func (b *Backend) lookup(key string) (object, error) {
	if err := backend.CheckKey(key); err != nil {
		return object{}, err
	}
	b.mu.Lock()
	o, ok := b.objects[key]
	b.mu.Unlock()
	if !ok {
		return object{}, fmt.Errorf("%s: %w", key, backend.ErrNotFound)
	}
	return o, nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o, err := b.lookup(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, offset)
	}
	data := o.data[min(offset, int64(len(o.data))):]
	if length >= 0 {
		data = data[:min(length, int64(len(data)))]
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return backend.ObjectInfo{}, err
	}
	o, err := b.lookup(key)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	return backend.ObjectInfo{Key: key, Size: int64(len(o.data)), ModTime: o.modTime}, nil
}

// List implements backend.Backend. It lists the objects present when it
// starts, in key order; fn runs without the backend's lock held, so it may
// use the backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	if backend.CheckKey(prefix+"x") != nil {
		return nil // no valid key starts with prefix
	}
	b.mu.Lock()
	var infos []backend.ObjectInfo
	for k, o := range b.objects {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, backend.ObjectInfo{Key: k, Size: int64(len(o.data)), ModTime: o.modTime})
		}
	}
	b.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, oi := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(oi); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := backend.CheckKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	delete(b.objects, key)
	b.mu.Unlock()
	return nil
}

// ctxReader stops a copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

var (
	_ backend.Backend      = (*Backend)(nil)
	_ backend.CheapStatter = (*Backend)(nil)
)
