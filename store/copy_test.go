package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// copyPairs are the source and destination backends copies are tested
// between: local and memory both ways, a local folder to and from MinIO,
// and MinIO to MinIO (two buckets of one server: server-side copies).
var copyPairs = []struct {
	name     string
	src, dst string
}{
	{"local-local", "local", "local"},
	{"local-mem", "local", "mem"},
	{"mem-local", "mem", "local"},
	{"local-minio", "local", "minio"},
	{"minio-local", "minio", "local"},
	{"minio-minio", "minio", "minio"},
}

// copyBackend is backends[name], or the MinIO constructor that skips
// without MinIO (backends has no "minio" then).
func copyBackend(name string) newBackendFunc {
	if nb, ok := backends[name]; ok {
		return nb
	}
	return newMinio
}

func TestCopy(t *testing.T) {
	for _, p := range copyPairs {
		t.Run(p.name, func(t *testing.T) {
			src, dst := copyBackend(p.src), copyBackend(p.dst)
			t.Run("ChainTagsMetricsOnlyMissing", func(t *testing.T) { testCopyChain(t, src, dst) })
			t.Run("Conflict", func(t *testing.T) { testCopyConflict(t, src, dst) })
			t.Run("CorruptSource", func(t *testing.T) { testCopyCorruptSource(t, src, dst) })
			t.Run("RacingGC", func(t *testing.T) { testCopyRacingGC(t, src, dst) })
		})
	}
}

// recordingProgress sums what a copy reports.
type recordingProgress struct {
	mu     sync.Mutex
	labels []string
	total  int64
	added  int64
}

func (p *recordingProgress) Start(label string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.labels = append(p.labels, label)
	p.total += total
}

func (p *recordingProgress) Add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.added += n
}

func (p *recordingProgress) Finish() {}

// copyEnv is a source registry holding base@1, ft@100..400 on top of it
// (ft@400's base is ft@300, whose base is base@1: a chain of two), tags
// and metrics.
func copyEnv(t *testing.T, nb newBackendFunc) (*env, map[string]string) {
	t.Helper()
	e := newEnv(t, nb)
	base, ckpts := tinyRun(t, 10, func(s *synth.RunSpec) { s.WeightsOnly = true; s.FrozenEmbedding = true })
	e.push(base, "base", store.PushOptions{Version: "1", Metrics: map[string]float64{"mmlu": 0.5}})
	dirs := map[string]string{"base@1": base}
	for i, ck := range ckpts[:3] {
		v := []string{"100", "200", "300"}[i]
		e.push(ck, "ft", store.PushOptions{Base: "base@1"})
		dirs["ft@"+v] = ck
	}
	e.push(ckpts[3], "ft", store.PushOptions{Base: "ft@300", Tags: []string{"prod"}})
	dirs["ft@400"] = ckpts[3]
	require.NoError(t, e.r.Tag(e.ctx, "ft", "200", "old"))
	return e, dirs
}

func rawRef(t *testing.T, b backend.Backend, key string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), key, 0, -1)
	require.NoError(t, err, key)
	defer func() { _ = rc.Close() }() // read-only
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	return data
}

func assertNoRef(t *testing.T, b backend.Backend, key string) {
	t.Helper()
	_, err := b.Stat(context.Background(), key)
	assert.ErrorIs(t, err, backend.ErrNotFound, key)
}

func testCopyChain(t *testing.T, nbSrc, nbDst newBackendFunc) {
	src, _ := copyEnv(t, nbSrc)
	prog := &recordingProgress{}
	sr, err := store.Open(src.ctx, src.b, store.Options{Workers: 4, Progress: prog})
	require.NoError(t, err)
	dst := newEnv(t, nbDst)

	res, err := sr.CopyTo(src.ctx, dst.r, []store.CopySpec{{Name: "ft", Ref: "prod"}}, store.CopyOptions{Tags: true, ServerSide: true})
	require.NoError(t, err)

	// The chain, base first, the asked-for version last.
	var got []string
	for _, v := range res.Versions {
		got = append(got, v.Name+"@"+v.Version+":"+string(v.Status))
		assert.Equal(t, v.Name+"@"+v.Version != "ft@400", v.Base, v.Name)
	}
	assert.Equal(t, []string{"base@1:copied", "ft@300:copied", "ft@400:copied"}, got)
	for _, key := range []string{refs.VersionKey("base", "1"), refs.VersionKey("ft", "300"), refs.VersionKey("ft", "400")} {
		assert.Equal(t, rawRef(t, src.b, key), rawRef(t, dst.b, key), "ref %s copied byte for byte (metrics, base, push time)", key)
	}
	assertNoRef(t, dst.b, refs.VersionKey("ft", "100"))
	// Tags of the versions copied, not of the others.
	require.Len(t, res.Tags, 1)
	assert.Equal(t, store.CopiedTag{Name: "ft", Tag: "prod", Version: "400", Status: store.CopyCopied}, res.Tags[0])
	assertNoRef(t, dst.b, refs.TagKey("ft", "old"))

	rec, err := dst.r.Resolve(dst.ctx, "ft", "prod")
	require.NoError(t, err)
	assert.Equal(t, "400", rec.Version)
	base, err := dst.r.Resolve(dst.ctx, "base", "1")
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"mmlu": 0.5}, base.Metrics)

	// Everything arrived intact and pulls the same.
	verifyAll(t, dst.withoutIndex())
	out := filepath.Join(t.TempDir(), "out")
	_, err = dst.withoutIndex().Pull(dst.ctx, "ft", "400", out, store.PullOptions{Full: true})
	require.NoError(t, err)
	want := filepath.Join(t.TempDir(), "want")
	_, err = src.r.Pull(src.ctx, "ft", "400", want, store.PullOptions{Full: true})
	require.NoError(t, err)
	assert.Equal(t, testutil.ReadTree(t, want), testutil.ReadTree(t, out))

	assert.Equal(t, res.Objects, res.Blobs+res.Manifests, "an empty destination lacked everything")
	assert.Zero(t, res.Present)
	assert.Positive(t, res.ContentBytes)
	assert.Equal(t, []string{"copy"}, prog.labels)
	assert.Equal(t, res.ContentBytes, prog.total, "progress announces the blob bytes to copy")
	assert.Equal(t, res.ContentBytes, prog.added, "progress counts every blob byte copied")
	if _, isS3 := src.b.(backend.Copier); isS3 {
		if _, dstS3 := dst.b.(backend.Copier); dstS3 {
			assert.Equal(t, res.Blobs+res.Manifests, res.ServerSide, "MinIO to MinIO copies on the server")
		}
	} else {
		assert.Zero(t, res.ServerSide)
	}

	// The same copy again finds everything there.
	again, err := sr.CopyTo(src.ctx, dst.r, []store.CopySpec{{Name: "ft", Ref: "400"}}, store.CopyOptions{Tags: true})
	require.NoError(t, err)
	assert.Zero(t, again.Blobs+again.Manifests)
	for _, v := range again.Versions {
		assert.Equal(t, store.CopyPresent, v.Status, v.Name+"@"+v.Version)
	}
	require.Len(t, again.Tags, 1)
	assert.Equal(t, store.CopyPresent, again.Tags[0].Status)

	// Every version: only the versions and objects the destination lacks.
	all, err := sr.CopyTo(src.ctx, dst.r, []store.CopySpec{{Name: "ft"}}, store.CopyOptions{Tags: true})
	require.NoError(t, err)
	status := map[string]store.CopyStatus{}
	for _, v := range all.Versions {
		status[v.Name+"@"+v.Version] = v.Status
	}
	assert.Equal(t, map[string]store.CopyStatus{
		"base@1": store.CopyPresent, "ft@100": store.CopyCopied, "ft@200": store.CopyCopied,
		"ft@300": store.CopyPresent, "ft@400": store.CopyPresent,
	}, status)
	assert.Positive(t, all.Present, "the base's blobs were there already")
	assert.Equal(t, all.Objects-all.Present, all.Blobs+all.Manifests)
	assert.Less(t, all.Blobs+all.Manifests, all.Objects)
	tags, err := dst.r.ReadCatalog(dst.ctx, "ft", store.CatalogOptions{FromRegistry: true})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"prod": "400", "old": "200"}, tags.Tags["ft"])
	verifyAll(t, dst.withoutIndex())
}

func testCopyConflict(t *testing.T, nbSrc, nbDst newBackendFunc) {
	src, dirs := copyEnv(t, nbSrc)
	dst := newEnv(t, nbDst)
	// The destination recorded other content as ft@300.
	dst.push(dirs["ft@100"], "ft", store.PushOptions{Version: "300"})
	before := rawRef(t, dst.b, refs.VersionKey("ft", "300"))

	res, err := src.r.CopyTo(src.ctx, dst.r, []store.CopySpec{{Name: "ft", Ref: "400"}, {Name: "ft", Ref: "200"}}, store.CopyOptions{})
	require.ErrorIs(t, err, store.ErrRefConflict)
	assert.Contains(t, err.Error(), "ft@300")
	assert.Equal(t, before, rawRef(t, dst.b, refs.VersionKey("ft", "300")), "the destination's ref is untouched")
	assertNoRef(t, dst.b, refs.VersionKey("ft", "400"))
	status := map[string]store.CopyStatus{}
	for _, v := range res.Versions {
		status[v.Name+"@"+v.Version] = v.Status
	}
	assert.Equal(t, store.CopyFailed, status["ft@400"])
	assert.Equal(t, store.CopyCopied, status["ft@200"], "a checkpoint without conflict is copied")

	// A tag pointing elsewhere in the destination is a conflict too.
	require.NoError(t, dst.r.Tag(dst.ctx, "ft", "300", "old"))
	res, err = src.r.CopyTo(src.ctx, dst.r, []store.CopySpec{{Name: "ft", Ref: "200"}}, store.CopyOptions{Tags: true})
	require.ErrorIs(t, err, store.ErrRefConflict)
	assert.Contains(t, err.Error(), refs.TagKey("ft", "old"))
	require.Len(t, res.Tags, 1)
	assert.Equal(t, store.CopyFailed, res.Tags[0].Status)
	assert.Equal(t, store.CopyPresent, res.Versions[0].Status, "an identical version is success")
}

func testCopyCorruptSource(t *testing.T, nbSrc, nbDst newBackendFunc) {
	src, _ := copyEnv(t, nbSrc)
	dst := newEnv(t, nbDst)
	// A blob only ft@200 has.
	shared := map[object.ID]bool{}
	for _, v := range []string{"100", "300"} {
		rec, err := src.r.Resolve(src.ctx, "ft", v)
		require.NoError(t, err)
		m, err := src.r.Manifest(src.ctx, rec.Manifest)
		require.NoError(t, err)
		for _, id := range m.BlobIDs() {
			shared[id] = true
		}
	}
	rec200, err := src.r.Resolve(src.ctx, "ft", "200")
	require.NoError(t, err)
	m200, err := src.r.Manifest(src.ctx, rec200.Manifest)
	require.NoError(t, err)
	var victim object.ID
	for _, id := range m200.BlobIDs() {
		if !shared[id] {
			victim = id
			break
		}
	}
	require.False(t, victim.IsZero())
	corruptObject(t, src.b, object.BlobKey(victim))

	res, err := src.r.CopyTo(src.ctx, dst.r, []store.CopySpec{{Name: "ft", Ref: "200"}, {Name: "ft", Ref: "100"}}, store.CopyOptions{})
	require.ErrorIs(t, err, object.ErrCorrupt)
	assert.Contains(t, err.Error(), object.BlobKey(victim))
	assertNoRef(t, dst.b, refs.VersionKey("ft", "200"))
	_, err = dst.b.Stat(dst.ctx, object.BlobKey(victim))
	assert.ErrorIs(t, err, backend.ErrNotFound, "a blob that does not verify is not copied")
	status := map[string]store.CopyStatus{}
	for _, v := range res.Versions {
		status[v.Name+"@"+v.Version] = v.Status
	}
	assert.Equal(t, store.CopyFailed, status["ft@200"])
	assert.Equal(t, store.CopyCopied, status["ft@100"])
	verifyAll(t, dst.withoutIndex())
}

// testCopyRacingGC: the destination holds a copy's data unreferenced; a
// gc deletes it right before the copy takes its publish lock. The copy
// must notice (docs/format.md, section 9) and copy it again.
func testCopyRacingGC(t *testing.T, nbSrc, nbDst newBackendFunc) {
	src, _ := copyEnv(t, nbSrc)
	dst := newEnv(t, nbDst)
	_, err := src.r.CopyTo(src.ctx, dst.r, []store.CopySpec{{Name: "ft", Ref: "100"}}, store.CopyOptions{})
	require.NoError(t, err)
	for _, ref := range []string{"ft@100", "base@1"} {
		name, version, _ := strings.Cut(ref, "@")
		_, _, err = dst.r.Remove(dst.ctx, name, version)
		require.NoError(t, err)
	}

	hooked := &hookBackend{Backend: dst.b}
	var fired atomic.Bool
	hooked.beforePut = func(key string) {
		if strings.HasPrefix(key, "locks/publish-") && fired.CompareAndSwap(false, true) {
			gcr, err := store.Open(context.Background(), dst.b, store.Options{})
			require.NoError(t, err)
			res, err := gcr.GC(context.Background(), store.GCOptions{NoGrace: true})
			require.NoError(t, err)
			require.Positive(t, res.DeletedBlobs, "gc should have deleted the unreferenced blobs")
		}
	}
	hr, err := store.Open(dst.ctx, hooked, store.Options{Index: dst.ix, Workers: 4})
	require.NoError(t, err)
	res, err := src.r.CopyTo(src.ctx, hr, []store.CopySpec{{Name: "ft", Ref: "100"}}, store.CopyOptions{})
	require.NoError(t, err)
	require.True(t, fired.Load())
	assert.Positive(t, res.Blobs, "the copy copied again what gc deleted")
	verifyAll(t, dst.withoutIndex())
}

// faultBackend fails every Put after the first n: a copy killed after n
// writes, as far as the destination can tell.
type faultBackend struct {
	backend.Backend
	n    int64
	puts atomic.Int64
}

var errInjected = errors.New("injected fault")

func (f *faultBackend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if f.puts.Add(1) > f.n {
		return errInjected
	}
	return f.Backend.Put(ctx, key, r, size)
}

// TestCopyResume kills a copy after each possible number of writes to the
// destination, then runs it again: the second run copies exactly what the
// first did not, and no ref is ever visible before its data.
func TestCopyResume(t *testing.T) {
	for _, p := range []struct{ name, src, dst string }{{"local-mem", "local", "mem"}, {"mem-local", "mem", "local"}, {"local-minio", "local", "minio"}} {
		t.Run(p.name, func(t *testing.T) {
			src, _ := copyEnv(t, copyBackend(p.src))
			// One worker: the writes happen one at a time, so the n-th
			// fails and no other is in flight.
			sr, err := store.Open(src.ctx, src.b, store.Options{Workers: 1})
			require.NoError(t, err)
			specs := []store.CopySpec{{Name: "ft", Ref: "400"}}

			// The number of objects a full copy writes.
			full := newEnv(t, copyBackend(p.dst))
			whole, err := sr.CopyTo(src.ctx, full.r, specs, store.CopyOptions{Tags: true})
			require.NoError(t, err)
			objects := whole.Blobs + whole.Manifests
			require.Equal(t, whole.Objects, objects)

			cuts := []int64{0, 1, int64(objects) / 2, int64(objects) - 1, int64(objects), int64(objects) + 1}
			for _, n := range cuts {
				dst := newEnv(t, copyBackend(p.dst))
				fault := &faultBackend{Backend: dst.b, n: n}
				fr, err := store.Open(dst.ctx, fault, store.Options{Workers: 1})
				require.NoError(t, err)
				first, err := sr.CopyTo(src.ctx, fr, specs, store.CopyOptions{Tags: true})
				require.ErrorIs(t, err, errInjected, "cut after %d writes", n)
				if n <= int64(objects) {
					assert.Equal(t, int(n), first.Blobs+first.Manifests, "cut after %d writes", n)
					// Refs come last: none was written.
					for _, key := range []string{refs.VersionKey("ft", "400"), refs.VersionKey("ft", "300"), refs.VersionKey("base", "1")} {
						assertNoRef(t, dst.b, key)
					}
				}
				// Whatever refs are visible have all their data.
				verifyAll(t, dst.withoutIndex())

				second, err := sr.CopyTo(src.ctx, dst.r, specs, store.CopyOptions{Tags: true})
				require.NoError(t, err, "cut after %d writes", n)
				assert.Equal(t, objects, first.Blobs+first.Manifests+second.Blobs+second.Manifests,
					"cut after %d writes: the re-run copies only what is missing", n)
				assert.Equal(t, second.Objects-second.Present, second.Blobs+second.Manifests)
				verifyAll(t, dst.withoutIndex())
				rec, err := dst.r.Resolve(dst.ctx, "ft", "prod")
				require.NoError(t, err)
				assert.Equal(t, "400", rec.Version)
			}
		})
	}
}

func TestCopyBadSpec(t *testing.T) {
	src, _ := copyEnv(t, newMem)
	dst := newEnv(t, newMem)
	_, err := src.r.CopyTo(src.ctx, dst.r, []store.CopySpec{{Name: "ft", Ref: "100"}, {Name: "nope"}}, store.CopyOptions{})
	require.ErrorIs(t, err, refs.ErrNoCheckpoint)
	_, err = src.r.CopyTo(src.ctx, dst.r, []store.CopySpec{{Name: "ft", Ref: "999"}}, store.CopyOptions{})
	require.Error(t, err)
	names, err := dst.r.Names(dst.ctx)
	require.NoError(t, err)
	assert.Empty(t, names, "a spec that does not resolve fails the copy before anything is written")
}

// hostileBackend serves body in place of the object at key.
type hostileBackend struct {
	backend.Backend
	key  string
	body func() io.Reader
}

func (h *hostileBackend) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if key == h.key {
		return io.NopCloser(h.body()), nil
	}
	return h.Backend.Get(ctx, key, off, n)
}

// endless is an infinite stream of one byte.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

// TestCopyHostileSource: objects whose header declares another size than
// their manifest gives, or more than any manifest may hold, are refused
// before their payload is read; a payload that never ends is read no
// further than its codec allows. The checkpoint fails naming the object.
func TestCopyHostileSource(t *testing.T) {
	src, _ := copyEnv(t, newMem)
	rec, err := src.r.Resolve(src.ctx, "ft", "100")
	require.NoError(t, err)
	m, err := src.r.Manifest(src.ctx, rec.Manifest)
	require.NoError(t, err)
	blob := m.Files[0].Chunks[0]
	stored := rawRef(t, src.b, object.BlobKey(blob.ID))
	header := func(declared uint64) []byte {
		h := append([]byte(nil), stored[:object.HeaderSize]...)
		copy(h[8:], putLE64(declared))
		return h
	}
	for _, tc := range []struct {
		name string
		key  string // the object served, named by the error (a manifest by its ID)
		body func() io.Reader
	}{
		{"blob declares another size", object.BlobKey(blob.ID), func() io.Reader {
			return io.MultiReader(bytes.NewReader(header(uint64(object.MaxBlobContent))), endless(0))
		}},
		{"blob payload never ends", object.BlobKey(blob.ID), func() io.Reader {
			return io.MultiReader(bytes.NewReader(header(uint64(blob.Size))), endless(7))
		}},
		{"manifest over the limit", object.ManifestKey(rec.Manifest), func() io.Reader {
			return io.MultiReader(bytes.NewReader(header(uint64(object.MaxManifestContent+1))), endless(0))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hr, err := store.Open(src.ctx, &hostileBackend{Backend: src.b, key: tc.key, body: tc.body}, store.Options{Workers: 2})
			require.NoError(t, err)
			dst := newEnv(t, newMem)
			_, err = hr.CopyTo(src.ctx, dst.r, []store.CopySpec{{Name: "ft", Ref: "100"}}, store.CopyOptions{})
			require.ErrorIs(t, err, object.ErrCorrupt)
			assert.Contains(t, err.Error(), tc.key[strings.LastIndexByte(tc.key, '/')+1:])
			assertNoRef(t, dst.b, refs.VersionKey("ft", "100"))
			_, err = dst.b.Stat(dst.ctx, tc.key)
			assert.ErrorIs(t, err, backend.ErrNotFound)
		})
	}
}

// refusingCopier is a destination that offers server-side copies and
// refuses each with err (the source changed since it was read, or the
// server will not copy).
type refusingCopier struct {
	backend.Backend
	err   error
	tried atomic.Int64
}

func (c *refusingCopier) CanCopyFrom(backend.Backend) bool { return true }

func (c *refusingCopier) CopyFrom(context.Context, backend.Backend, string, string, backend.CopyCheck) error {
	c.tried.Add(1)
	return c.err
}

// TestCopyServerSideFallback: when the destination's server will not copy
// an object, or copies other bytes than those verified, the verified bytes
// are put instead, and server-side copying is not tried again.
func TestCopyServerSideFallback(t *testing.T) {
	for _, refusal := range []error{backend.ErrCopyMismatch, backend.ErrCopyUnsupported, backend.ErrNotFound} {
		t.Run(refusal.Error(), func(t *testing.T) {
			src, _ := copyEnv(t, newMem)
			dst := newEnv(t, newMem)
			cp := &refusingCopier{Backend: dst.b, err: fmt.Errorf("refused: %w", refusal)}
			dr, err := store.Open(dst.ctx, cp, store.Options{Workers: 1})
			require.NoError(t, err)
			// One copy worker (the source's count), so that no second
			// server-side copy is already in flight when the first is
			// refused.
			sr, err := store.Open(src.ctx, src.b, store.Options{Workers: 1})
			require.NoError(t, err)
			res, err := sr.CopyTo(src.ctx, dr, []store.CopySpec{{Name: "ft", Ref: "400"}}, store.CopyOptions{ServerSide: true})
			require.NoError(t, err)
			assert.Equal(t, int64(1), cp.tried.Load(), "one refusal ends server-side copying")
			assert.Zero(t, res.ServerSide)
			assert.Equal(t, res.Objects, res.Blobs+res.Manifests)
			verifyAll(t, dst.withoutIndex())
		})
	}
	// Another failure of the destination ends the copy, publishing nothing.
	src, _ := copyEnv(t, newMem)
	dst := newEnv(t, newMem)
	cp := &refusingCopier{Backend: dst.b, err: errInjected}
	dr, err := store.Open(dst.ctx, cp, store.Options{Workers: 1})
	require.NoError(t, err)
	_, err = src.r.CopyTo(src.ctx, dr, []store.CopySpec{{Name: "ft", Ref: "400"}}, store.CopyOptions{ServerSide: true})
	require.ErrorIs(t, err, errInjected)
	assertNoRef(t, dst.b, refs.VersionKey("ft", "400"))
}
