package s3

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"

	"github.com/ckptdev/ckpt/store/backend"
)

// Get implements backend.Backend. The returned reader resumes where it
// stopped when the connection fails mid-body (a new ranged GET, pinned to
// the object's ETag), within the retry policy; it never returns fewer bytes
// than the object has in the range without an error.
func (b *Backend) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	object, err := b.object(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, offset)
	}
	if length == 0 {
		if _, err := b.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(eofReader{}), nil
	}
	r := &objectReader{b: b, ctx: ctx, key: key, object: object, pos: offset, end: -1}
	if length > 0 {
		r.end = offset + length
	}
	err = b.retry(ctx, "request", func(int) error { return r.open() })
	if err != nil {
		if errors.Is(err, errRangeNotSatisfiable) {
			// The range starts at or past the end: nothing to read, if
			// the object exists.
			if _, err := b.Stat(ctx, key); err != nil {
				return nil, err
			}
			return io.NopCloser(eofReader{}), nil
		}
		if errors.Is(err, backend.ErrNotFound) {
			return nil, fmt.Errorf("%s in %s: %w", key, b.location, backend.ErrNotFound)
		}
		return nil, fmt.Errorf("get %s in %s: %w", key, b.location, err)
	}
	return r, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

var errRangeNotSatisfiable = errors.New("range not satisfiable")

// objectReader reads bytes [pos, end) of an object, reopening the object
// after a transient failure.
type objectReader struct {
	b      *Backend
	ctx    context.Context
	key    string
	object string

	body     io.ReadCloser
	etag     string // of the first response; later requests must match it
	pos      int64  // next byte to read
	end      int64  // end of the range, -1 until the first response
	failures int    // consecutive failures without progress
	err      error  // sticky final error
}

// open sends one GET for [pos, end).
func (r *objectReader) open() error {
	var opts minio.GetObjectOptions
	if r.etag != "" {
		if err := opts.SetMatchETag(r.etag); err != nil {
			return err
		}
	}
	switch {
	case r.end >= 0:
		if err := opts.SetRange(r.pos, r.end-1); err != nil {
			return err
		}
	case r.pos > 0:
		if err := opts.SetRange(r.pos, 0); err != nil {
			return err
		}
	}
	body, info, _, err := r.b.core.GetObject(r.ctx, r.b.bucket, r.object, opts)
	if err != nil {
		code, status := errorCode(err)
		switch {
		case code == "InvalidRange" || status == 416:
			return errRangeNotSatisfiable
		case isNotFound(err):
			return backend.ErrNotFound
		case r.etag != "" && isPreconditionFailed(err):
			return fmt.Errorf("the object changed while being read: %w", err)
		}
		return err
	}
	if info.Size < 0 {
		_ = body.Close() // already failing; the read error is the one to report
		return errors.New("the server sent no Content-Length")
	}
	if r.etag == "" {
		r.etag = info.ETag
		// The server may return less than asked if the range passes
		// the end of the object.
		if r.end < 0 || r.pos+info.Size < r.end {
			r.end = r.pos + info.Size
		}
	} else if info.Size != r.end-r.pos {
		_ = body.Close() // already failing; the read error is the one to report
		return fmt.Errorf("resumed read returned %d bytes, want %d", info.Size, r.end-r.pos)
	}
	r.body = body
	return nil
}

func (r *objectReader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.pos >= r.end {
			return 0, io.EOF
		}
		if r.body == nil {
			if err := r.open(); err != nil {
				if !r.failed(err) {
					return 0, r.err
				}
				continue
			}
		}
		if rest := r.end - r.pos; int64(len(p)) > rest {
			p = p[:rest]
		}
		n, err := r.body.Read(p)
		r.pos += int64(n)
		if n > 0 {
			r.failures = 0
		}
		if err == io.EOF && r.pos < r.end {
			err = io.ErrUnexpectedEOF
		}
		if err == nil || err == io.EOF {
			if r.pos >= r.end {
				return n, io.EOF
			}
			return n, nil
		}
		_ = r.body.Close() // read-only response body
		r.body = nil
		if !r.failed(err) {
			return n, r.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// failed records a failure and reports whether to try again (after a
// backoff); if not, r.err is set.
func (r *objectReader) failed(err error) bool {
	r.failures++
	what := fmt.Sprintf("read %s in %s at offset %d", r.key, r.b.location, r.pos)
	switch {
	case r.ctx.Err() != nil:
		r.err = fmt.Errorf("%s: %w", what, r.ctx.Err())
	case !isTransient(err):
		r.err = fmt.Errorf("%s: %w", what, err)
	case r.failures >= r.b.retryPolicy.MaxAttempts:
		r.err = fmt.Errorf("%s: giving up after %d attempts: %w", what, r.failures, err)
	default:
		if serr := sleep(r.ctx, r.b.retryPolicy.delay(r.failures)); serr != nil {
			r.err = fmt.Errorf("%s: %w (last error: %v)", what, serr, err)
			return false
		}
		return true
	}
	return false
}

func (r *objectReader) Close() error {
	if r.err == nil {
		r.err = errors.New("read after close")
	}
	if r.body != nil {
		err := r.body.Close()
		r.body = nil
		return err
	}
	return nil
}
