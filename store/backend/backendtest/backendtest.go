// Package backendtest is the conformance suite of backend.Backend: the
// behaviour every backend (local folder, S3...) must show, checked the same
// way for all. A backend's tests call Run with a constructor of fresh,
// empty backends.
package backendtest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/store/backend"
)

// Options tunes the suite for a backend.
type Options struct {
	// LargeObjectSize is the size of the objects of the "large" cases. Make
	// it larger than anything the backend sends in one request (the S3
	// part size) so that its multipart path is exercised. 0 means 6 MiB.
	LargeObjectSize int64
	// Racers is how many goroutines race to create one key. 0 means 8.
	Racers int
	// ClockSkew is how far the backend's clock (it sets ModTime) may be
	// from this machine's. 0 means 10 minutes.
	ClockSkew time.Duration
}

func (o Options) withDefaults() Options {
	if o.LargeObjectSize <= 0 {
		o.LargeObjectSize = 6 << 20
	}
	if o.Racers <= 0 {
		o.Racers = 8
	}
	if o.ClockSkew <= 0 {
		o.ClockSkew = 10 * time.Minute
	}
	return o
}

// Run runs the conformance suite. newBackend must return a fresh, empty
// backend on each call (and arrange its cleanup with t.Cleanup). At most one
// Options may be given.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend, opts ...Options) {
	var o Options
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		t.Fatal("backendtest.Run: at most one Options")
	}
	s := &suite{newBackend: newBackend, opts: o.withDefaults()}
	t.Run("Location", s.testLocation)
	t.Run("PutGetStat", s.testPutGetStat)
	t.Run("PutExisting", s.testPutExisting)
	t.Run("ConcurrentCreate", s.testConcurrentCreate)
	t.Run("ConcurrentCreateLarge", s.testConcurrentCreateLarge)
	t.Run("GetRange", s.testGetRange)
	t.Run("GetRangeLarge", s.testGetRangeLarge)
	t.Run("Missing", s.testMissing)
	t.Run("PrefixIsNotAnObject", s.testPrefixIsNotAnObject)
	t.Run("StatTimes", s.testStatTimes)
	t.Run("List", s.testList)
	t.Run("ListStops", s.testListStops)
	t.Run("ListHidesUnfinishedPut", s.testListHidesUnfinishedPut)
	t.Run("Delete", s.testDelete)
	t.Run("FailingReader", s.testFailingReader)
	t.Run("SizeMismatch", s.testSizeMismatch)
	t.Run("CancelledContext", s.testCancelledContext)
	t.Run("InvalidKeys", s.testInvalidKeys)
	// The optional interfaces, for the backends that implement them.
	if _, ok := newBackend(t).(backend.Copier); ok {
		t.Run("Copier", s.testCopier)
	}
}

type suite struct {
	newBackend func(t *testing.T) backend.Backend
	opts       Options
}

// content returns size pseudo-random bytes determined by seed.
func content(seed uint64, size int64) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)}))
	b := make([]byte, size)
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// onlyReader hides every method but Read (io.ReaderAt, io.Seeker,
// io.WriterTo...), for the backends' streaming paths.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// The two shapes of source a Put may get.
var readerKinds = []struct {
	name string
	wrap func([]byte) io.Reader
}{
	{"Stream", func(b []byte) io.Reader { return onlyReader{bytes.NewReader(b)} }},
	{"ReaderAt", func(b []byte) io.Reader { return bytes.NewReader(b) }},
}

func ctxT(t *testing.T) context.Context { return t.Context() }

func put(t *testing.T, b backend.Backend, key string, data []byte) {
	t.Helper()
	require.NoError(t, b.Put(ctxT(t), key, bytes.NewReader(data), int64(len(data))), "put %s", key)
}

func get(t *testing.T, b backend.Backend, key string, offset, length int64) []byte {
	t.Helper()
	rc, err := b.Get(ctxT(t), key, offset, length)
	require.NoError(t, err, "get %s [%d,+%d)", key, offset, length)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err, "read %s [%d,+%d)", key, offset, length)
	return data
}

// requireContent checks the whole object under key, without printing
// megabytes on failure.
func requireContent(t *testing.T, b backend.Backend, key string, want []byte) {
	t.Helper()
	got := get(t, b, key, 0, -1)
	require.Equal(t, len(want), len(got), "size of %s", key)
	require.True(t, bytes.Equal(want, got), "content of %s: got sha256 %s, want %s", key, digest(got), digest(want))
	info, err := b.Stat(ctxT(t), key)
	require.NoError(t, err)
	require.Equal(t, int64(len(want)), info.Size, "Stat size of %s", key)
}

// requireAbsent checks that nothing is visible under key, by any method.
func requireAbsent(t *testing.T, b backend.Backend, key string) {
	t.Helper()
	_, err := b.Stat(ctxT(t), key)
	require.ErrorIs(t, err, backend.ErrNotFound, "Stat %s", key)
	rc, err := b.Get(ctxT(t), key, 0, -1)
	if err == nil {
		rc.Close()
	}
	require.ErrorIs(t, err, backend.ErrNotFound, "Get %s", key)
	require.Empty(t, list(t, b, key), "List %s", key)
}

// list returns the keys under prefix, sorted, checking each entry's
// sanity.
func list(t *testing.T, b backend.Backend, prefix string) []string {
	t.Helper()
	var keys []string
	err := b.List(ctxT(t), prefix, func(info backend.ObjectInfo) error {
		assert.NoError(t, backend.CheckKey(info.Key), "listed key")
		assert.GreaterOrEqual(t, info.Size, int64(0))
		keys = append(keys, info.Key)
		return nil
	})
	require.NoError(t, err, "list %q", prefix)
	sort.Strings(keys)
	return keys
}

func (s *suite) testLocation(t *testing.T) {
	b := s.newBackend(t)
	assert.NotEmpty(t, b.Location())
}

func (s *suite) testPutGetStat(t *testing.T) {
	sizes := []struct {
		name string
		size int64
	}{
		{"Empty", 0},
		{"OneByte", 1},
		{"Small", 4099},
		{"Large", s.opts.LargeObjectSize},
	}
	b := s.newBackend(t)
	for i, sz := range sizes {
		for j, kind := range readerKinds {
			t.Run(sz.name+"/"+kind.name, func(t *testing.T) {
				key := fmt.Sprintf("objects/%s-%s", sz.name, kind.name)
				data := content(uint64(10*i+j), sz.size)
				require.NoError(t, b.Put(ctxT(t), key, kind.wrap(data), sz.size))
				requireContent(t, b, key, data)
				info, err := b.Stat(ctxT(t), key)
				require.NoError(t, err)
				assert.Equal(t, key, info.Key)
			})
		}
	}
	// A ReaderAt+Seeker is read from its current offset.
	t.Run("SeekedReader", func(t *testing.T) {
		data := content(99, 1000)
		r := bytes.NewReader(data)
		_, err := r.Seek(100, io.SeekStart)
		require.NoError(t, err)
		require.NoError(t, b.Put(ctxT(t), "objects/seeked", r, 900))
		requireContent(t, b, "objects/seeked", data[100:])
	})
}

func (s *suite) testPutExisting(t *testing.T) {
	for i, sz := range []struct {
		name string
		size int64
	}{{"Small", 1000}, {"Large", s.opts.LargeObjectSize}} {
		for j, kind := range readerKinds {
			t.Run(sz.name+"/"+kind.name, func(t *testing.T) {
				b := s.newBackend(t)
				key := "blobs/ab/" + sz.name
				first := content(uint64(100+10*i+j), sz.size)
				require.NoError(t, b.Put(ctxT(t), key, kind.wrap(first), sz.size))

				second := content(uint64(200+10*i+j), sz.size)
				err := b.Put(ctxT(t), key, kind.wrap(second), sz.size)
				require.ErrorIs(t, err, backend.ErrExists)
				assert.Contains(t, err.Error(), key, "the error names the key")

				// Another size does not matter either.
				err = b.Put(ctxT(t), key, kind.wrap(second[:10]), 10)
				require.ErrorIs(t, err, backend.ErrExists)

				requireContent(t, b, key, first)
				assert.Equal(t, []string{key}, list(t, b, ""))
			})
		}
	}
}

// race has n goroutines Put different contents under one key at once, and
// checks that exactly one wins and its content is what is stored.
func (s *suite) race(t *testing.T, n int, size int64, wrap func([]byte) io.Reader) {
	b := s.newBackend(t)
	const key = "refs/race"
	contents := make([][]byte, n)
	for i := range contents {
		contents[i] = content(uint64(1000+i), size)
	}
	errs := make([]error, n)
	start := make(chan struct{})
	var g errgroup.Group
	for i := range n {
		g.Go(func() error {
			<-start
			errs[i] = b.Put(ctxT(t), key, wrap(contents[i]), size)
			return nil
		})
	}
	close(start)
	require.NoError(t, g.Wait())

	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "two Puts of one key succeeded: %d and %d", winner, i)
			winner = i
			continue
		}
		require.ErrorIs(t, err, backend.ErrExists, "racer %d", i)
	}
	require.NotEqual(t, -1, winner, "no Put succeeded")
	requireContent(t, b, key, contents[winner])
	assert.Equal(t, []string{key}, list(t, b, ""))
}

func (s *suite) testConcurrentCreate(t *testing.T) {
	s.race(t, s.opts.Racers, 3000, readerKinds[0].wrap)
}

func (s *suite) testConcurrentCreateLarge(t *testing.T) {
	for _, kind := range readerKinds {
		t.Run(kind.name, func(t *testing.T) {
			s.race(t, 3, s.opts.LargeObjectSize, kind.wrap)
		})
	}
}

func (s *suite) testGetRange(t *testing.T) {
	b := s.newBackend(t)
	const size = 1000
	data := content(7, size)
	put(t, b, "blob", data)
	tests := []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"Whole", 0, -1, data},
		{"WholeExactLength", 0, size, data},
		{"Head", 0, 10, data[:10]},
		{"Middle", 100, 250, data[100:350]},
		{"MiddleToEnd", 600, -1, data[600:]},
		{"ExactEnd", size - 7, 7, data[size-7:]},
		{"LastByte", size - 1, -1, data[size-1:]},
		{"ZeroLength", 500, 0, nil},
		{"ZeroLengthAtStart", 0, 0, nil},
		{"AtEndToEnd", size, -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := get(t, b, "blob", tt.offset, tt.length)
			assert.Equal(t, len(tt.want), len(got))
			assert.True(t, bytes.Equal(tt.want, got), "content of [%d,+%d)", tt.offset, tt.length)
		})
	}
	t.Run("EmptyObject", func(t *testing.T) {
		put(t, b, "empty", nil)
		assert.Empty(t, get(t, b, "empty", 0, -1))
		assert.Empty(t, get(t, b, "empty", 0, 0))
	})
}

func (s *suite) testGetRangeLarge(t *testing.T) {
	b := s.newBackend(t)
	size := s.opts.LargeObjectSize
	data := content(8, size)
	put(t, b, "large", data)
	mid := size / 2
	tests := []struct {
		name           string
		offset, length int64
	}{
		{"Head", 0, 1 << 10},
		{"AcrossMiddle", mid - 1<<20, 2 << 20},
		{"Tail", size - 3<<20, -1},
		{"ExactEnd", size - 12345, 12345},
		{"AllButEdges", 1, size - 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offset := max(tt.offset, 0)
			end := size
			if tt.length >= 0 {
				end = min(offset+tt.length, size)
			}
			got := get(t, b, "large", offset, tt.length)
			require.Equal(t, end-offset, int64(len(got)))
			require.True(t, bytes.Equal(data[offset:end], got), "content of [%d,%d)", offset, end)
		})
	}
}

func (s *suite) testMissing(t *testing.T) {
	b := s.newBackend(t)
	put(t, b, "present/x", []byte("x"))
	defer requireContent(t, b, "present/x", []byte("x"))
	for _, key := range []string{"missing", "present/y", "present/x/z", "absent/x"} {
		t.Run(key, func(t *testing.T) {
			_, err := b.Stat(ctxT(t), key)
			require.ErrorIs(t, err, backend.ErrNotFound)
			assert.Contains(t, err.Error(), key, "the error names the key")
			for _, r := range [][2]int64{{0, -1}, {0, 10}, {5, 0}, {3, -1}} {
				rc, err := b.Get(ctxT(t), key, r[0], r[1])
				if err == nil {
					rc.Close()
				}
				require.ErrorIs(t, err, backend.ErrNotFound, "Get [%d,+%d)", r[0], r[1])
			}
			require.NoError(t, b.Delete(ctxT(t), key), "Delete")
		})
	}
}

// A key that is a prefix of others ("a" of "a/b") is no object: on a file
// system it is a folder.
func (s *suite) testPrefixIsNotAnObject(t *testing.T) {
	b := s.newBackend(t)
	put(t, b, "a/b/c", []byte("abc"))
	for _, key := range []string{"a", "a/b"} {
		_, err := b.Stat(ctxT(t), key)
		require.ErrorIs(t, err, backend.ErrNotFound, "Stat %s", key)
		rc, err := b.Get(ctxT(t), key, 0, -1)
		if err == nil {
			rc.Close()
		}
		require.ErrorIs(t, err, backend.ErrNotFound, "Get %s", key)
		require.NoError(t, b.Delete(ctxT(t), key), "Delete %s", key)
	}
	requireContent(t, b, "a/b/c", []byte("abc"))
}

func (s *suite) testStatTimes(t *testing.T) {
	b := s.newBackend(t)
	skew := s.opts.ClockSkew
	before := time.Now()
	put(t, b, "t/one", []byte("1"))
	put(t, b, "t/two", []byte("22"))
	after := time.Now()

	stats := map[string]backend.ObjectInfo{}
	for _, key := range []string{"t/one", "t/two"} {
		info, err := b.Stat(ctxT(t), key)
		require.NoError(t, err)
		assert.Equal(t, key, info.Key)
		assert.False(t, info.ModTime.IsZero())
		assert.WithinRange(t, info.ModTime, before.Add(-skew), after.Add(skew))
		stats[key] = info
	}
	assert.Equal(t, int64(1), stats["t/one"].Size)
	assert.Equal(t, int64(2), stats["t/two"].Size)

	// List reports the same objects; times may differ in precision only.
	n := 0
	require.NoError(t, b.List(ctxT(t), "t/", func(info backend.ObjectInfo) error {
		n++
		st, ok := stats[info.Key]
		require.True(t, ok, "unexpected key %s", info.Key)
		assert.Equal(t, st.Size, info.Size)
		assert.WithinDuration(t, st.ModTime, info.ModTime, time.Second, "ModTime of %s in List vs Stat", info.Key)
		return nil
	}))
	assert.Equal(t, 2, n)
}

func (s *suite) testList(t *testing.T) {
	b := s.newBackend(t)
	keys := []string{
		"blobs/abc/x",
		"blobs/abc/y/z",
		"blobs/ab1",
		"blobs/b",
		"blobsx",
		"refs/main",
		"refs/tags/v1.0",
		"top",
	}
	sizes := map[string]int64{}
	for i, k := range keys {
		data := content(uint64(i), int64(10+i))
		put(t, b, k, data)
		sizes[k] = int64(len(data))
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", keys},
		{"blobs/", []string{"blobs/ab1", "blobs/abc/x", "blobs/abc/y/z", "blobs/b"}},
		{"blobs/ab", []string{"blobs/ab1", "blobs/abc/x", "blobs/abc/y/z"}},
		{"blobs/abc", []string{"blobs/abc/x", "blobs/abc/y/z"}},
		{"blobs/abc/", []string{"blobs/abc/x", "blobs/abc/y/z"}},
		{"blobs/abc/y/", []string{"blobs/abc/y/z"}},
		{"blobs", []string{"blobs/ab1", "blobs/abc/x", "blobs/abc/y/z", "blobs/b", "blobsx"}},
		{"blobs/b", []string{"blobs/b"}},
		{"blobs/abc/x", []string{"blobs/abc/x"}},
		{"refs/tags/v1", []string{"refs/tags/v1.0"}},
		{"t", []string{"top"}},
		{"nothing/", nil},
		{"nothing", nil},
		{"blobs/c", nil},
		// Prefixes that no valid key has: nothing, and never anything
		// outside the registry or of the backend's own.
		{"/", nil},
		{"./", nil},
		{"../", nil},
		{"..", nil},
		{".tmp/", nil},
		{".", nil},
		{"blobs//", nil},
		{"blobs/.", nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.prefix), func(t *testing.T) {
			want := slices.Clone(tt.want)
			sort.Strings(want)
			var got []string
			err := b.List(ctxT(t), tt.prefix, func(info backend.ObjectInfo) error {
				got = append(got, info.Key)
				assert.Equal(t, sizes[info.Key], info.Size, "size of %s", info.Key)
				return nil
			})
			require.NoError(t, err)
			sort.Strings(got)
			assert.Equal(t, want, got)
		})
	}
}

func (s *suite) testListStops(t *testing.T) {
	b := s.newBackend(t)
	for i := range 5 {
		put(t, b, fmt.Sprintf("k/%d", i), []byte{byte(i)})
	}
	stop := errors.New("stop here")
	calls := 0
	err := b.List(ctxT(t), "k/", func(backend.ObjectInfo) error {
		calls++
		return stop
	})
	require.ErrorIs(t, err, stop)
	assert.Equal(t, 1, calls)

	calls = 0
	err = b.List(ctxT(t), "", func(backend.ObjectInfo) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop)
	assert.Equal(t, 3, calls)
}

// gateReader gives the first n bytes of data, then says so on reached and
// waits for release, after which it fails with err.
type gateReader struct {
	data    []byte
	n       int
	pos     int
	once    sync.Once
	reached chan struct{}
	release chan struct{}
	err     error
}

func (g *gateReader) Read(p []byte) (int, error) {
	if g.pos < g.n {
		k := copy(p, g.data[g.pos:g.n])
		g.pos += k
		return k, nil
	}
	g.once.Do(func() { close(g.reached) })
	<-g.release
	return 0, g.err
}

// While a Put is under way (its reader stalled midway), nothing of it is
// listed or visible; once it fails, still nothing, and the key is free.
func (s *suite) testListHidesUnfinishedPut(t *testing.T) {
	for _, sz := range []struct {
		name string
		size int64
	}{{"Small", 5000}, {"Large", s.opts.LargeObjectSize}} {
		t.Run(sz.name, func(t *testing.T) {
			b := s.newBackend(t)
			put(t, b, "done/one", []byte("1"))
			data := content(5, sz.size)
			boom := errors.New("source broke")
			g := &gateReader{data: data, n: int(sz.size * 3 / 4), reached: make(chan struct{}), release: make(chan struct{}), err: boom}

			var eg errgroup.Group
			var putErr error
			eg.Go(func() error {
				putErr = b.Put(ctxT(t), "wip/obj", g, sz.size)
				return nil
			})
			select {
			case <-g.reached:
			case <-time.After(time.Minute):
				close(g.release)
				t.Fatal("the Put never read three quarters of its data")
			}
			assert.Equal(t, []string{"done/one"}, list(t, b, ""))
			_, err := b.Stat(ctxT(t), "wip/obj")
			assert.ErrorIs(t, err, backend.ErrNotFound)
			close(g.release)
			require.NoError(t, eg.Wait())

			require.ErrorIs(t, putErr, boom)
			requireAbsent(t, b, "wip/obj")
			assert.Equal(t, []string{"done/one"}, list(t, b, ""))
			put(t, b, "wip/obj", data)
			requireContent(t, b, "wip/obj", data)
		})
	}
}

func (s *suite) testDelete(t *testing.T) {
	b := s.newBackend(t)
	put(t, b, "d/x", []byte("x"))
	put(t, b, "d/y", []byte("y"))
	require.NoError(t, b.Delete(ctxT(t), "d/x"))
	requireAbsent(t, b, "d/x")
	assert.Equal(t, []string{"d/y"}, list(t, b, ""))

	require.NoError(t, b.Delete(ctxT(t), "d/x"), "delete twice")
	require.NoError(t, b.Delete(ctxT(t), "never/was"), "delete a missing key")

	// The key is free again.
	put(t, b, "d/x", []byte("new"))
	requireContent(t, b, "d/x", []byte("new"))
}

// faultyReader serves data but fails with err once it reaches byte
// failAt, by Read and by ReadAt alike.
type faultyReader struct {
	data   []byte
	failAt int64
	err    error
	pos    int64
}

func (f *faultyReader) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.pos)
	f.pos += int64(n)
	return n, err
}

func (f *faultyReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.failAt {
		return 0, f.err
	}
	n := copy(p, f.data[off:min(int64(len(f.data)), f.failAt)])
	if n < len(p) {
		return n, f.err
	}
	return n, nil
}

func (s *suite) testFailingReader(t *testing.T) {
	boom := errors.New("disk on fire")
	for _, sz := range []struct {
		name string
		size int64
	}{{"Small", 10000}, {"Large", s.opts.LargeObjectSize}} {
		for _, at := range []struct {
			name string
			frac float64
		}{{"AtStart", 0}, {"Midway", 0.5}, {"NearEnd", 0.99}} {
			for _, kind := range []string{"Stream", "ReaderAt"} {
				t.Run(sz.name+"/"+at.name+"/"+kind, func(t *testing.T) {
					b := s.newBackend(t)
					data := content(3, sz.size)
					f := &faultyReader{data: data, failAt: int64(float64(sz.size) * at.frac), err: boom}
					var r io.Reader = f
					if kind == "Stream" {
						r = onlyReader{f}
					}
					err := b.Put(ctxT(t), "blobs/f", r, sz.size)
					require.ErrorIs(t, err, boom)
					requireAbsent(t, b, "blobs/f")
					assert.Empty(t, list(t, b, ""))

					put(t, b, "blobs/f", data)
					requireContent(t, b, "blobs/f", data)
				})
			}
		}
	}
}

func (s *suite) testSizeMismatch(t *testing.T) {
	for _, sz := range []struct {
		name string
		size int64
	}{{"Small", 10000}, {"Large", s.opts.LargeObjectSize}} {
		for _, kind := range readerKinds {
			for _, tt := range []struct {
				name  string
				delta int64 // announced size - real size
			}{{"Short", 10}, {"Long", -10}} {
				t.Run(sz.name+"/"+kind.name+"/"+tt.name, func(t *testing.T) {
					b := s.newBackend(t)
					data := content(4, sz.size)
					err := b.Put(ctxT(t), "blobs/m", kind.wrap(data), sz.size+tt.delta)
					require.Error(t, err)
					require.NotErrorIs(t, err, backend.ErrExists)
					requireAbsent(t, b, "blobs/m")
					put(t, b, "blobs/m", data)
					requireContent(t, b, "blobs/m", data)
				})
			}
		}
	}
}

// cancelReader cancels a context once n bytes were read.
type cancelReader struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	} else if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	return k, err
}

func (s *suite) testCancelledContext(t *testing.T) {
	for _, sz := range []struct {
		name string
		size int64
	}{{"Small", 10000}, {"Large", s.opts.LargeObjectSize}} {
		t.Run(sz.name+"/Before", func(t *testing.T) {
			b := s.newBackend(t)
			ctx, cancel := context.WithCancel(ctxT(t))
			cancel()
			data := content(6, sz.size)
			err := b.Put(ctx, "c/x", bytes.NewReader(data), sz.size)
			require.ErrorIs(t, err, context.Canceled)
			requireAbsent(t, b, "c/x")
			put(t, b, "c/x", data)
			requireContent(t, b, "c/x", data)
		})
		t.Run(sz.name+"/Midway", func(t *testing.T) {
			b := s.newBackend(t)
			ctx, cancel := context.WithCancel(ctxT(t))
			defer cancel()
			data := content(6, sz.size)
			r := &cancelReader{r: bytes.NewReader(data), n: sz.size / 2, cancel: cancel}
			err := b.Put(ctx, "c/x", r, sz.size)
			require.ErrorIs(t, err, context.Canceled)
			requireAbsent(t, b, "c/x")
			put(t, b, "c/x", data)
			requireContent(t, b, "c/x", data)
		})
	}
}

func (s *suite) testInvalidKeys(t *testing.T) {
	b := s.newBackend(t)
	put(t, b, "a/b", []byte("ab"))
	for _, key := range []string{
		"", "/", "/a", "a/", "a//b", ".tmp", ".tmp/x", "a/.b", "a/./b", "a/../b", "..", "../a",
		"a b", "a\\b", "a:b", "ü", "a\x00b", "a\nb", "a?b", "a*b", "a#b",
	} {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			require.Error(t, backend.CheckKey(key), "the suite's own premise")
			ctx := ctxT(t)
			err := b.Put(ctx, key, bytes.NewReader([]byte("x")), 1)
			require.Error(t, err, "Put")
			assert.NotErrorIs(t, err, backend.ErrExists)
			_, err = b.Get(ctx, key, 0, -1)
			require.Error(t, err, "Get")
			_, err = b.Stat(ctx, key)
			require.Error(t, err, "Stat")
			require.Error(t, b.Delete(ctx, key), "Delete")
		})
	}
	assert.Equal(t, []string{"a/b"}, list(t, b, ""))
	requireContent(t, b, "a/b", []byte("ab"))
}

// copyCheck describes data for a server-side copy.
func copyCheck(data []byte) backend.CopyCheck {
	return backend.CopyCheck{Size: int64(len(data)), MD5: md5.Sum(data)}
}

// otherBackend hides a backend's type (and its Copier): a backend a
// Copier cannot copy from.
type otherBackend struct{ backend.Backend }

// testCopier checks a backend.Copier between two backends of the same
// server: a copy appears whole and create-only, only if it is the bytes
// described, and nothing is visible otherwise.
func (s *suite) testCopier(t *testing.T) {
	src := s.newBackend(t)
	dst := s.newBackend(t).(backend.Copier)
	dstB := dst.(backend.Backend)
	require.True(t, dst.CanCopyFrom(src), "two backends of one server")
	require.False(t, dst.CanCopyFrom(otherBackend{src}), "a backend of another kind")

	small, large := content(300, 5000), content(301, s.opts.LargeObjectSize)
	put(t, src, "blobs/aa/small", small)
	put(t, src, "blobs/aa/large", large) // the multipart path: its ETag is no MD5

	t.Run("Copies", func(t *testing.T) {
		for name, data := range map[string][]byte{"small": small, "large": large} {
			key := "blobs/aa/" + name
			require.NoError(t, dst.CopyFrom(ctxT(t), src, key, key, copyCheck(data)))
			requireContent(t, dstB, key, data)
			requireContent(t, src, key, data)
		}
		// Under another key too.
		require.NoError(t, dst.CopyFrom(ctxT(t), src, "blobs/aa/small", "manifests/bb/renamed", copyCheck(small)))
		requireContent(t, dstB, "manifests/bb/renamed", small)
	})
	t.Run("CreateOnly", func(t *testing.T) {
		other := content(302, 777)
		put(t, dstB, "blobs/cc/taken", other)
		err := dst.CopyFrom(ctxT(t), src, "blobs/aa/small", "blobs/cc/taken", copyCheck(small))
		require.ErrorIs(t, err, backend.ErrExists)
		requireContent(t, dstB, "blobs/cc/taken", other)
	})
	t.Run("Mismatch", func(t *testing.T) {
		wrong := copyCheck(small)
		wrong.MD5[0] ^= 1
		err := dst.CopyFrom(ctxT(t), src, "blobs/aa/small", "blobs/dd/wrong-md5", wrong)
		require.ErrorIs(t, err, backend.ErrCopyMismatch)
		requireAbsent(t, dstB, "blobs/dd/wrong-md5")

		// The source is shorter than described.
		longer := append(append([]byte{}, small...), 'x')
		err = dst.CopyFrom(ctxT(t), src, "blobs/aa/small", "blobs/dd/too-long", copyCheck(longer))
		require.ErrorIs(t, err, backend.ErrCopyMismatch)
		requireAbsent(t, dstB, "blobs/dd/too-long")
		assert.Empty(t, list(t, dstB, "blobs/dd/"))
	})
	t.Run("MissingSource", func(t *testing.T) {
		err := dst.CopyFrom(ctxT(t), src, "blobs/aa/none", "blobs/ee/none", copyCheck(small))
		require.ErrorIs(t, err, backend.ErrNotFound)
		requireAbsent(t, dstB, "blobs/ee/none")
	})
	t.Run("OtherBackend", func(t *testing.T) {
		err := dst.CopyFrom(ctxT(t), otherBackend{src}, "blobs/aa/small", "blobs/ff/other", copyCheck(small))
		require.ErrorIs(t, err, backend.ErrCopyUnsupported)
		requireAbsent(t, dstB, "blobs/ff/other")
	})
	t.Run("Race", func(t *testing.T) {
		// Racing copies and puts of one key: exactly one creates it.
		const key = "blobs/99/race"
		n := s.opts.Racers
		errs := make([]error, n)
		start := make(chan struct{})
		var g errgroup.Group
		for i := range n {
			g.Go(func() error {
				<-start
				if i%2 == 0 {
					errs[i] = dst.CopyFrom(ctxT(t), src, "blobs/aa/small", key, copyCheck(small))
				} else {
					errs[i] = dstB.Put(ctxT(t), key, bytes.NewReader(small), int64(len(small)))
				}
				return nil
			})
		}
		close(start)
		require.NoError(t, g.Wait())
		won := 0
		for i, err := range errs {
			if err == nil {
				won++
				continue
			}
			require.ErrorIs(t, err, backend.ErrExists, "racer %d", i)
		}
		require.Equal(t, 1, won, "exactly one racer creates the key")
		requireContent(t, dstB, key, small)
	})
	t.Run("CancelledContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctxT(t))
		cancel()
		err := dst.CopyFrom(ctx, src, "blobs/aa/small", "blobs/ab/cancelled", copyCheck(small))
		require.ErrorIs(t, err, context.Canceled)
		requireAbsent(t, dstB, "blobs/ab/cancelled")
	})
}
