package s3_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/internal/miniotest"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/s3"
)

// faultyBackend is a backend on a fresh bucket of s whose requests go
// through a faultRT.
type faultyBackend struct {
	*s3.Backend
	rt     *faultRT
	cfg    s3.Config
	client *minio.Client // direct access, bypassing the faults
}

func newFaultyBackend(t *testing.T, s *miniotest.Server, edit func(*s3.Config)) *faultyBackend {
	needMinio(t)
	t.Helper()
	cfg := config(t, s)
	rt := newFaultRT()
	cfg.Transport = rt
	if edit != nil {
		edit(&cfg)
	}
	client, err := s.Client()
	require.NoError(t, err)
	return &faultyBackend{Backend: newBackend(t, cfg), rt: rt, cfg: cfg, client: client}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 42))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func (f *faultyBackend) put(t *testing.T, key string, data []byte) error {
	t.Helper()
	return f.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)))
}

func (f *faultyBackend) read(t *testing.T, key string, offset, length int64) ([]byte, error) {
	t.Helper()
	rc, err := f.Get(t.Context(), key, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// requireObject checks the object's content, reading it directly.
func (f *faultyBackend) requireObject(t *testing.T, key string, want []byte) {
	t.Helper()
	obj, err := f.client.GetObject(t.Context(), f.cfg.Bucket, f.cfg.Prefix+"/"+key, minio.GetObjectOptions{})
	require.NoError(t, err)
	defer obj.Close()
	got, err := io.ReadAll(obj)
	require.NoError(t, err, "reading %s", key)
	require.Equal(t, len(want), len(got), "size of %s", key)
	require.True(t, sha256.Sum256(got) == sha256.Sum256(want), "content of %s", key)
}

// requireNoObject checks that nothing is visible under key.
func (f *faultyBackend) requireNoObject(t *testing.T, key string) {
	t.Helper()
	_, err := f.client.StatObject(t.Context(), f.cfg.Bucket, f.cfg.Prefix+"/"+key, minio.StatObjectOptions{})
	require.Error(t, err)
	assert.Equal(t, "NoSuchKey", minio.ToErrorResponse(err).Code)
	n := 0
	for obj := range f.client.ListObjectsIter(t.Context(), f.cfg.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, obj.Err)
		if obj.Key == f.cfg.Prefix+"/"+key {
			n++
		}
	}
	assert.Zero(t, n, "%s is listed", key)
}

var (
	small = randomBytes(100 << 10)
	large = randomBytes(largeSize)
)

// operation is one backend call under test, with its expected outcome
// checked; prepare sets up what it needs first (without faults).
type operation struct {
	prepare func(t *testing.T, f *faultyBackend)
	run     func(t *testing.T, f *faultyBackend) error
	check   func(t *testing.T, f *faultyBackend) // after success
}

var (
	putSmall = operation{
		run:   func(t *testing.T, f *faultyBackend) error { return f.put(t, "blobs/x", small) },
		check: func(t *testing.T, f *faultyBackend) { f.requireObject(t, "blobs/x", small) },
	}
	putLarge = operation{
		run:   func(t *testing.T, f *faultyBackend) error { return f.put(t, "blobs/x", large) },
		check: func(t *testing.T, f *faultyBackend) { f.requireObject(t, "blobs/x", large) },
	}
	putLargeStream = operation{
		run: func(t *testing.T, f *faultyBackend) error {
			return f.Put(t.Context(), "blobs/x", onlyReader{bytes.NewReader(large)}, int64(len(large)))
		},
		check: func(t *testing.T, f *faultyBackend) { f.requireObject(t, "blobs/x", large) },
	}
	getLarge = operation{
		prepare: func(t *testing.T, f *faultyBackend) { require.NoError(t, f.put(t, "blobs/x", large)) },
		run: func(t *testing.T, f *faultyBackend) error {
			got, err := f.read(t, "blobs/x", 0, -1)
			if err == nil && !bytes.Equal(got, large) {
				t.Fatalf("Get returned %d wrong bytes without an error", len(got))
			}
			return err
		},
	}
	getRange = operation{
		prepare: func(t *testing.T, f *faultyBackend) { require.NoError(t, f.put(t, "blobs/x", large)) },
		run: func(t *testing.T, f *faultyBackend) error {
			got, err := f.read(t, "blobs/x", 1000, 3<<20)
			if err == nil && !bytes.Equal(got, large[1000:1000+3<<20]) {
				t.Fatalf("Get returned %d wrong bytes without an error", len(got))
			}
			return err
		},
	}
	stat = operation{
		prepare: func(t *testing.T, f *faultyBackend) { require.NoError(t, f.put(t, "blobs/x", small)) },
		run: func(t *testing.T, f *faultyBackend) error {
			info, err := f.Stat(t.Context(), "blobs/x")
			if err == nil {
				assert.Equal(t, int64(len(small)), info.Size)
			}
			return err
		},
	}
	list = operation{
		prepare: func(t *testing.T, f *faultyBackend) { require.NoError(t, f.put(t, "blobs/x", small)) },
		run: func(t *testing.T, f *faultyBackend) error {
			var keys []string
			err := f.List(t.Context(), "blobs/", func(info backend.ObjectInfo) error {
				keys = append(keys, info.Key)
				return nil
			})
			if err == nil {
				assert.Equal(t, []string{"blobs/x"}, keys)
			}
			return err
		},
	}
	del = operation{
		prepare: func(t *testing.T, f *faultyBackend) { require.NoError(t, f.put(t, "blobs/x", small)) },
		run:     func(t *testing.T, f *faultyBackend) error { return f.Delete(t.Context(), "blobs/x") },
		check:   func(t *testing.T, f *faultyBackend) { f.requireNoObject(t, "blobs/x") },
	}
)

type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type faultCase struct {
	name   string
	op     string // faulty operation
	times  int
	act    action
	target operation
	calls  int // requests of op expected in all, 0: unchecked
	// atLeast makes calls a minimum: a loaded machine may add timeouts.
	atLeast bool
}

// runFaultCase expects the operation to succeed despite the fault.
func runFaultCase(t *testing.T, tt faultCase, edit func(*s3.Config)) {
	f := newFaultyBackend(t, srv, edit)
	t.Cleanup(func() { requireNoUploads(t, srv, f.cfg.Bucket) })
	if tt.target.prepare != nil {
		tt.target.prepare(t, f)
	}
	before := f.rt.count(tt.op)
	f.rt.inject(tt.op, tt.times, tt.act)
	require.NoError(t, tt.target.run(t, f))
	if tt.target.check != nil {
		tt.target.check(t, f)
	}
	switch {
	case tt.calls > 0 && tt.atLeast:
		assert.GreaterOrEqual(t, f.rt.count(tt.op)-before, tt.calls, "requests of %s", tt.op)
	case tt.calls > 0:
		assert.Equal(t, tt.calls, f.rt.count(tt.op)-before, "requests of %s", tt.op)
	}
}

// N transient failures, fewer than the attempts allowed, then success.
func TestTransientErrorsRetried(t *testing.T) {
	tests := []faultCase{
		{"PutObject/SlowDown", "PutObject", 2, respond(503, "SlowDown"), putSmall, 3, false},
		{"PutObject/InternalError", "PutObject", 3, respond(500, "InternalError"), putSmall, 4, false},
		{"PutObject/BadGateway", "PutObject", 1, respond(502, "BadGateway"), putSmall, 2, false},
		{"CreateMultipartUpload/SlowDown", "CreateMultipartUpload", 2, respond(503, "SlowDown"), putLarge, 3, false},
		{"UploadPart/InternalError", "UploadPart", 3, respond(500, "InternalError"), putLarge, 5, false},
		{"UploadPart/Stream/ServiceUnavailable", "UploadPart", 3, respond(503, "ServiceUnavailable"), putLargeStream, 5, false},
		{"CompleteMultipartUpload/SlowDown", "CompleteMultipartUpload", 2, respond(503, "SlowDown"), putLarge, 3, false},
		{"GetObject/SlowDown", "GetObject", 2, respond(503, "SlowDown"), getLarge, 3, false},
		{"HeadObject/InternalError", "HeadObject", 2, respond(500, "InternalError"), stat, 3, false},
		{"ListObjectsV2/SlowDown", "ListObjectsV2", 3, respond(503, "SlowDown"), list, 4, false},
		{"DeleteObject/InternalError", "DeleteObject", 2, respond(500, "InternalError"), del, 3, false},
		{"DeleteObject/TooManyRequests", "DeleteObject", 1, respond(429, "TooManyRequests"), del, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runFaultCase(t, tt, nil) })
	}
}

// More transient failures than attempts: a clear error naming the key and
// the last cause, and nothing visible.
func TestRetryBudgetExhausted(t *testing.T) {
	attempts := testRetry.MaxAttempts
	tests := []struct {
		name   string
		op     string
		status int
		code   string
		target operation
		want   []string
	}{
		{"PutObject", "PutObject", 503, "SlowDown", putSmall, []string{"blobs/x", "giving up after 4 attempts", "injected SlowDown"}},
		{"UploadPart", "UploadPart", 500, "InternalError", putLarge, []string{"blobs/x", "upload part", "giving up after 4 attempts", "injected InternalError"}},
		{"CompleteMultipartUpload", "CompleteMultipartUpload", 503, "SlowDown", putLarge, []string{"blobs/x", "complete multipart upload", "giving up"}},
		{"GetObject", "GetObject", 503, "SlowDown", getLarge, []string{"blobs/x", "giving up after 4 attempts"}},
		{"HeadObject", "HeadObject", 500, "InternalError", stat, []string{"blobs/x", "giving up after 4 attempts"}},
		{"ListObjectsV2", "ListObjectsV2", 503, "SlowDown", list, []string{"blobs/", "giving up after 4 attempts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One part at a time, so that exactly one request spends
			// the budget.
			f := newFaultyBackend(t, srv, func(c *s3.Config) { c.Concurrency = 1 })
			t.Cleanup(func() { requireNoUploads(t, srv, f.cfg.Bucket) })
			if tt.target.prepare != nil {
				tt.target.prepare(t, f)
			}
			before := f.rt.count(tt.op)
			f.rt.inject(tt.op, 1000, respond(tt.status, tt.code))
			err := tt.target.run(t, f)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotErrorIs(t, err, backend.ErrExists)
			assert.NotErrorIs(t, err, backend.ErrNotFound)
			assert.Equal(t, attempts, f.rt.count(tt.op)-before, "requests of %s", tt.op)
			if tt.target.prepare == nil { // a failed Put
				f.requireNoObject(t, "blobs/x")
			}
		})
	}
	t.Run("NotRetried", func(t *testing.T) {
		f := newFaultyBackend(t, srv, nil)
		f.rt.inject("PutObject", 1000, respond(403, "AccessDenied"))
		err := f.put(t, "blobs/x", small)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "blobs/x")
		assert.Equal(t, 1, f.rt.count("PutObject"), "a permanent error is not retried")
	})
}

// A connection cut while the request or the response body is under way.
func TestConnectionCut(t *testing.T) {
	tests := []faultCase{
		{"PutObject/Request", "PutObject", 1, cutRequest(20 << 10), putSmall, 2, false},
		{"PutObject/RequestTwice", "PutObject", 2, cutRequest(1), putSmall, 3, false},
		{"UploadPart/Request", "UploadPart", 2, cutRequest(1 << 20), putLarge, 4, false},
		{"UploadPart/Stream/Request", "UploadPart", 2, cutRequest(1 << 20), putLargeStream, 4, false},
		{"CompleteMultipartUpload/Request", "CompleteMultipartUpload", 1, cutRequest(10), putLarge, 2, false},
		{"GetObject/Response", "GetObject", 1, cutResponse(3 << 20), getLarge, 2, false},
		{"GetObject/ResponseAtStart", "GetObject", 1, cutResponse(0), getLarge, 2, false},
		// Each cut comes after progress: more cuts than attempts are fine.
		{"GetObject/ResponseManyTimes", "GetObject", 6, cutResponse(1 << 20), getLarge, 7, false},
		{"GetObject/RangeResponse", "GetObject", 2, cutResponse(1 << 20), getRange, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runFaultCase(t, tt, nil) })
	}

	t.Run("GetObject/ResponseWithoutProgress", func(t *testing.T) {
		// After 1 MiB, every resumed read is cut before its first byte:
		// the reader fails, never passing a short object off as whole.
		f := newFaultyBackend(t, srv, nil)
		getLarge.prepare(t, f)
		f.rt.inject("GetObject", 1, cutResponse(1<<20))
		f.rt.inject("GetObject", 1000, cutResponse(0))
		got, err := f.read(t, "blobs/x", 0, -1)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "blobs/x")
		assert.Contains(t, err.Error(), "giving up after 4 attempts")
		require.Len(t, got, 1<<20)
		assert.True(t, bytes.Equal(large[:1<<20], got))
		// The cut first body counts as the first failed attempt.
		assert.Equal(t, testRetry.MaxAttempts, f.rt.count("GetObject"))
	})

	t.Run("GetObject/ChangedWhileReading", func(t *testing.T) {
		// The object is replaced between a cut and the resumed read: an
		// error, never a mix of two objects.
		f := newFaultyBackend(t, srv, nil)
		getLarge.prepare(t, f)
		f.rt.inject("GetObject", 1, cutResponse(1<<20))
		f.rt.inject("GetObject", 1, before(func() {
			ctx := t.Context()
			name := f.cfg.Prefix + "/blobs/x"
			assert.NoError(t, f.client.RemoveObject(ctx, f.cfg.Bucket, name, minio.RemoveObjectOptions{}))
			other := randomBytes(len(large) - 1)
			_, err := f.client.PutObject(ctx, f.cfg.Bucket, name, bytes.NewReader(other), int64(len(other)), minio.PutObjectOptions{})
			assert.NoError(t, err)
		}))
		_, err := f.read(t, "blobs/x", 0, -1)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "changed while being read")
	})
}

// A server that does not answer within the request timeout: the request
// is abandoned and sent again.
func TestSlowResponses(t *testing.T) {
	// Well above MinIO's own latency on a loaded machine (it fsyncs), so
	// that only the injected delays time out... mostly: the counts are
	// minimums, and the budget is larger.
	const timeout = 500 * time.Millisecond
	edit := func(c *s3.Config) {
		c.RequestTimeout = timeout
		c.Retry.MaxAttempts = 6
	}
	tests := []faultCase{
		{"PutObject", "PutObject", 1, delay(time.Minute), putSmall, 2, true},
		{"UploadPart", "UploadPart", 1, delay(time.Minute), putLarge, 3, true},
		{"CompleteMultipartUpload", "CompleteMultipartUpload", 1, delay(time.Minute), putLarge, 2, true},
		{"GetObject", "GetObject", 1, delay(time.Minute), getLarge, 2, true},
		{"GetObject/StalledBody", "GetObject", 1, stallBody(1 << 20), getLarge, 2, true},
		{"HeadObject", "HeadObject", 1, delay(time.Minute), stat, 2, true},
		{"ListObjectsV2", "ListObjectsV2", 1, delay(time.Minute), list, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			runFaultCase(t, tt, edit)
			assert.Less(t, time.Since(start), 30*time.Second, "the delay is a minute: it was cut short")
		})
	}
	t.Run("SlowReaderIsNotTimedOut", func(t *testing.T) {
		// The clock only runs while the caller waits for the server.
		f := newFaultyBackend(t, srv, edit)
		require.NoError(t, f.put(t, "blobs/x", small))
		rc, err := f.Get(t.Context(), "blobs/x", 0, -1)
		require.NoError(t, err)
		defer rc.Close()
		head := make([]byte, 10)
		_, err = io.ReadFull(rc, head)
		require.NoError(t, err)
		time.Sleep(2 * timeout) // a slow consumer, not a wait for an event
		rest, err := io.ReadAll(rc)
		require.NoError(t, err)
		assert.Equal(t, small, append(head, rest...))
		assert.Equal(t, 1, f.rt.count("GetObject"), "no second request")
	})
}

// The server carries out a create-only request but its answer is lost: the
// retry finds the key taken by this very Put, which succeeds.
func TestLostResponse(t *testing.T) {
	tests := []faultCase{
		{"PutObject", "PutObject", 1, loseResponse(), putSmall, 2, false},
		{"CompleteMultipartUpload", "CompleteMultipartUpload", 1, loseResponse(), putLarge, 2, false},
		{"CompleteMultipartUpload/Stream", "CompleteMultipartUpload", 1, loseResponse(), putLargeStream, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runFaultCase(t, tt, nil) })
	}

	t.Run("OtherWriterWonMeanwhile", func(t *testing.T) {
		// The first attempt fails before reaching the server; another
		// writer creates the key; the retry's 412 is a real ErrExists.
		f := newFaultyBackend(t, srv, nil)
		other := randomBytes(777)
		f.rt.inject("PutObject", 1, func(_ http.RoundTripper, req *http.Request) (*http.Response, error) {
			req.Body.Close()
			_, err := f.client.PutObject(t.Context(), f.cfg.Bucket, f.cfg.Prefix+"/blobs/x",
				bytes.NewReader(other), int64(len(other)), minio.PutObjectOptions{})
			assert.NoError(t, err)
			return nil, errConnReset
		})
		err := f.put(t, "blobs/x", small)
		require.ErrorIs(t, err, backend.ErrExists)
		assert.Equal(t, 2, f.rt.count("PutObject"))
		f.requireObject(t, "blobs/x", other)
	})
}

// MinIO dies in the middle of a multipart upload.
func TestServerStoppedMidMultipart(t *testing.T) {
	t.Run("FailsCleanlyThenSucceedsAfterRestart", func(t *testing.T) {
		own := miniotest.Start(t)
		f := newFaultyBackend(t, own, func(c *s3.Config) { c.Concurrency = 1 })
		var parts atomic.Int32
		f.rt.inject("UploadPart", 1<<20, before(func() {
			if parts.Add(1) == 2 {
				own.Stop()
			}
		}))
		err := f.put(t, "blobs/x", large)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "put blobs/x")
		assert.Contains(t, err.Error(), "upload part 2 of 2")
		assert.Contains(t, err.Error(), "giving up after")
		assert.Contains(t, err.Error(), "connection refused")
		assert.Contains(t, err.Error(), "could not be aborted")

		own.Restart(t)
		_, err = f.Stat(t.Context(), "blobs/x")
		require.ErrorIs(t, err, backend.ErrNotFound)
		f.requireNoObject(t, "blobs/x")

		require.NoError(t, f.put(t, "blobs/x", large))
		f.requireObject(t, "blobs/x", large)
	})

	t.Run("RestartedWhileRetrying", func(t *testing.T) {
		// The outage is shorter than the retry budget: the same Put call
		// rides it out.
		own := miniotest.Start(t)
		f := newFaultyBackend(t, own, func(c *s3.Config) {
			c.Concurrency = 1
			c.Retry = s3.RetryPolicy{MaxAttempts: 200, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
		})
		var g errgroup.Group
		var parts atomic.Int32
		f.rt.inject("UploadPart", 1<<20, before(func() {
			if parts.Add(1) == 2 {
				own.Stop()
				g.Go(own.Launch)
			}
		}))
		require.NoError(t, f.put(t, "blobs/x", large))
		require.NoError(t, g.Wait())
		f.requireObject(t, "blobs/x", large)
		requireNoUploads(t, own, f.cfg.Bucket)
		assert.Greater(t, f.rt.count("UploadPart"), 2, "part 2 was retried")
	})
}

func TestErrorsAreTyped(t *testing.T) {
	f := newFaultyBackend(t, srv, nil)
	require.NoError(t, f.put(t, "k", small))
	err := f.put(t, "k", small)
	require.ErrorIs(t, err, backend.ErrExists)
	assert.True(t, errors.Is(err, backend.ErrExists))
	assert.Contains(t, err.Error(), f.cfg.Bucket)
	_, err = f.Stat(t.Context(), "nope")
	require.ErrorIs(t, err, backend.ErrNotFound)
	assert.Contains(t, err.Error(), "nope")
	assert.Contains(t, err.Error(), f.cfg.Bucket)
}
