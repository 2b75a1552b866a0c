package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// allocs returns the bytes the Go heap allocated while f ran (every
// goroutine's; fuzz targets run one input at a time).
func allocs(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// mapBackend is a read-only Backend over a map, for fuzzing readers.
type mapBackend map[string][]byte

func (m mapBackend) Put(context.Context, string, io.Reader, int64) error {
	return fmt.Errorf("read-only: %w", backend.ErrExists)
}

func (m mapBackend) Get(_ context.Context, key string, off, n int64) (io.ReadCloser, error) {
	data, ok := m[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, backend.ErrNotFound)
	}
	data = data[min(off, int64(len(data))):]
	if n >= 0 {
		data = data[:min(n, int64(len(data)))]
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (m mapBackend) Stat(_ context.Context, key string) (backend.ObjectInfo, error) {
	data, ok := m[key]
	if !ok {
		return backend.ObjectInfo{}, fmt.Errorf("%s: %w", key, backend.ErrNotFound)
	}
	return backend.ObjectInfo{Key: key, Size: int64(len(data)), ModTime: time.Unix(0, 0)}, nil
}

func (m mapBackend) List(_ context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	for key, data := range m {
		if strings.HasPrefix(key, prefix) {
			if err := fn(backend.ObjectInfo{Key: key, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m mapBackend) Delete(context.Context, string) error { return nil }
func (m mapBackend) Location() string                     { return "fuzz" }

// FuzzReadRefs: the JSON objects of a registry (format file, version ref,
// tag, retention policy) read through the public API never panic, and their
// readers allocate at most a bounded multiple of the object.
func FuzzReadRefs(f *testing.F) {
	rec := `{"name":"n","version":"1","manifest":"` + strings.Repeat("ab", 32) + `","pushed":"2026-01-01T00:00:00Z","step":1,"metrics":{"eval_loss":1.5},"files":1,"logical_bytes":3,"stored_bytes":3}`
	f.Add([]byte(rec))
	f.Add([]byte(`{"version":"1","tagged":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"keep_last":2,"keep_best":1,"keep_within":"72h"}`))
	f.Add([]byte(`{"format":"ckpt-registry","version":1,"id":"00112233445566778899aabbccddeeff","created":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"metrics":{"a":1,"b":2,"c":3,"d":4,"e":5}}`))
	format := []byte(`{"format":"ckpt-registry","version":1,"id":"00112233445566778899aabbccddeeff","created":"2026-01-01T00:00:00Z"}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		bound := 32*uint64(len(data)) + 256<<10
		n := allocs(func() { _, _ = Open(ctx, mapBackend{FormatKey: data}, Options{Workers: 1}) })
		require.LessOrEqual(t, n, bound, "Open allocated %d bytes", n)

		r, err := Open(ctx, mapBackend{
			FormatKey:                                 format,
			refs.VersionKey("n", "1"):                 data,
			refs.TagKey("n", "prod"):                  data,
			refs.PolicyKey("n", refs.PolicyRetention): data,
		}, Options{Workers: 1})
		require.NoError(t, err)
		for _, ref := range []string{"1", "prod", refs.Latest, refs.Best} {
			n = allocs(func() { _, _ = r.Resolve(ctx, "n", ref) })
			require.LessOrEqual(t, n, 2*bound, "Resolve %s allocated %d bytes", ref, n)
		}
		n = allocs(func() { _, _, _ = r.Policy(ctx, "n") })
		require.LessOrEqual(t, n, bound, "Policy allocated %d bytes", n)
	})
}

// FuzzReadDeltaBlob: a blob read through the registry (as pull and verify
// read it), when it and its reference are any bytes, decodes to content
// that hashes to its ID or fails; never a panic, and the reader allocates
// a bounded multiple of the chunk size and the objects, whatever the delta
// envelope declares or names.
func FuzzReadDeltaBlob(f *testing.F) {
	ref := make([]byte, 4096)
	for i := range ref {
		ref[i] = byte(i * 7)
	}
	next := bytes.Clone(ref)
	next[100] ^= 0x55
	refID := object.Hash(ref)
	good, err := object.EncodeDelta(nil, next, ref, refID, 4, 1<<30)
	if err != nil {
		f.Fatal(err)
	}
	refObj := object.Encode(nil, ref, object.EncodeHint{ElemSize: 4})
	f.Add(good, refObj, uint16(len(next)))
	f.Add(good, good, uint16(len(next)))        // the reference is a delta itself
	f.Add(good, refObj[:20], uint16(len(next))) // a truncated reference
	f.Add(good[:40], refObj, uint16(len(next))) // a truncated delta
	f.Add(good, refObj, uint16(len(next)-1))    // another size than the manifest's
	format := []byte(`{"format":"ckpt-registry","version":2,"id":"00112233445566778899aabbccddeeff","created":"2026-01-01T00:00:00Z"}`)
	f.Fuzz(func(t *testing.T, obj, refData []byte, size uint16) {
		ctx := context.Background()
		id := object.Hash(next)
		r, err := Open(ctx, mapBackend{FormatKey: format, object.BlobKey(id): obj, object.BlobKey(refID): refData}, Options{Workers: 1})
		require.NoError(t, err)
		var out []byte
		n := allocs(func() { out, err = r.readBlob(ctx, id, int64(size), nil) })
		if err == nil {
			require.Equal(t, next, out)
		}
		bound := 8*uint64(int64(size)+object.MaxPayload(int64(size))) + 2*uint64(len(obj)+len(refData)) + 4<<20
		require.LessOrEqual(t, n, bound, "allocated %d bytes", n)
	})
}
