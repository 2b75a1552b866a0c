package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/store/backend"
)

// putTokenMeta is the user metadata that marks an object with the Put call
// that created it. A retried create-only request that finds the key taken
// (412) compares tokens: if the object carries ours, an earlier attempt
// was committed by the server and only its response got lost.
const putTokenMeta = "Ckpt-Put"

// abortTimeout bounds the cleanup of a failed multipart upload, which runs
// even when the caller's context is cancelled.
const abortTimeout = time.Minute

// Put implements backend.Backend. Objects up to the part size go in one PUT
// with If-None-Match: *; larger ones in a multipart upload whose completion
// carries If-None-Match: *, so the object appears whole, once, or not at
// all.
//
// The data is re-read for retries: from r itself when it is an io.ReaderAt
// (from its current offset if it is also an io.Seeker, else from 0),
// otherwise from memory (the whole object for a single PUT, up to
// Concurrency parts at a time for a multipart upload).
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	object, err := b.object(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	p := &put{b: b, ctx: ctx, key: key, object: object, size: size, token: newToken()}
	seeker, _ := r.(io.Seeker)
	if ra, ok := r.(io.ReaderAt); ok {
		var base int64
		if seeker != nil {
			if base, err = seeker.Seek(0, io.SeekCurrent); err != nil {
				return fmt.Errorf("put %s: %w", key, &sourceError{err})
			}
		}
		p.ra, p.base = ra, base
	} else {
		p.r = r
	}
	if size <= b.partSize {
		err = p.single()
	} else {
		err = p.multipart()
	}
	if err != nil {
		if errors.Is(err, backend.ErrExists) {
			return fmt.Errorf("put %s in %s: %w", key, b.location, backend.ErrExists)
		}
		return fmt.Errorf("put %s in %s: %w", key, b.location, err)
	}
	if p.ra != nil && seeker != nil {
		// Leave r where reading it would have left it.
		_, _ = seeker.Seek(p.base+size, io.SeekStart)
	}
	return nil
}

// put is one Put call.
type put struct {
	b      *Backend
	ctx    context.Context
	key    string
	object string
	size   int64
	token  string

	// The source: ra from base, or r read once.
	ra   io.ReaderAt
	base int64
	r    io.Reader
}

func newToken() string {
	var t [16]byte
	_, _ = rand.Read(t[:])
	return hex.EncodeToString(t[:])
}

func (p *put) options() minio.PutObjectOptions {
	return minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		UserMetadata: map[string]string{putTokenMeta: p.token},
	}
}

// section returns a fresh reader of bytes [off, off+n) of the source (an
// io.ReaderAt).
func (p *put) section(off, n int64) *exactReader {
	return &exactReader{r: io.NewSectionReader(p.ra, p.base+off, n), remaining: n}
}

// checkEnd fails if the source has data beyond size bytes.
func (p *put) checkEnd() error {
	var one [1]byte
	if p.ra != nil {
		n, err := p.ra.ReadAt(one[:], p.base+p.size)
		if n > 0 {
			return &sourceError{fmt.Errorf("the data is longer than the announced %d bytes", p.size)}
		}
		if err != nil && err != io.EOF {
			return &sourceError{err}
		}
		return nil
	}
	n, err := io.ReadFull(ctxReader{p.ctx, p.r}, one[:])
	if n > 0 {
		return &sourceError{fmt.Errorf("the data is longer than the announced %d bytes", p.size)}
	}
	if err != nil && err != io.EOF {
		if cerr := p.ctx.Err(); cerr != nil {
			return cerr
		}
		return &sourceError{err}
	}
	return nil
}

// readFull fills buf from the plain reader source.
func (p *put) readFull(buf []byte, off int64) error {
	n, err := io.ReadFull(ctxReader{p.ctx, p.r}, buf)
	switch {
	case err == nil:
		return nil
	case p.ctx.Err() != nil:
		return p.ctx.Err()
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return &sourceError{fmt.Errorf("the data ended after %d of the announced %d bytes", off+int64(n), p.size)}
	default:
		return &sourceError{err}
	}
}

// committed reports whether the object now under the key is the one this
// Put created (an earlier attempt went through but its answer was lost).
func (p *put) committed() (bool, error) {
	info, err := p.b.core.StatObject(p.ctx, p.b.bucket, p.object, minio.StatObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return info.Metadata.Get("X-Amz-Meta-"+putTokenMeta) == p.token, nil
}

// single sends the object in one create-only PUT.
func (p *put) single() error {
	var data []byte // the whole object, when the source is not a ReaderAt
	if p.ra == nil {
		data = make([]byte, p.size)
		if err := p.readFull(data, 0); err != nil {
			return err
		}
	}
	if err := p.checkEnd(); err != nil {
		return err
	}
	opts := p.options()
	opts.SetMatchETagExcept("*")
	return p.b.retry(p.ctx, "upload", func(attempt int) error {
		var body *exactReader
		if data != nil {
			body = &exactReader{r: bytes.NewReader(data), remaining: p.size}
		} else {
			body = p.section(0, p.size)
		}
		_, err := p.b.core.PutObject(p.ctx, p.b.bucket, p.object, body, p.size, "", "", opts)
		if serr := body.finish(); serr != nil {
			return serr
		}
		if err != nil && isPreconditionFailed(err) {
			return p.exists(attempt)
		}
		return err
	})
}

// exists handles a 412 answer to a create-only request: ErrExists, unless an
// earlier attempt of this Put is what occupies the key.
func (p *put) exists(attempt int) error {
	if attempt > 1 {
		ok, err := p.committed()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return backend.ErrExists
}

// multipart uploads the object in parts, Concurrency at a time, then
// completes the upload with If-None-Match: *. On any failure the upload is
// aborted, so that no part lingers.
func (p *put) multipart() (err error) {
	b := p.b
	partSize := partSizeFor(p.size, b.partSize)
	nparts := int((p.size + partSize - 1) / partSize)

	uploadID, err := p.startUpload()
	if err != nil {
		return err
	}
	completed := false
	defer p.abortIncomplete(uploadID, &completed, &err)

	parts := make([]minio.CompletePart, nparts)
	if err := p.uploadParts(uploadID, partSize, parts); err != nil {
		return err
	}
	if err := p.complete(uploadID, parts); err != nil {
		return err
	}
	completed = true
	return nil
}

// complete completes the upload with If-None-Match: *, so that the object
// appears whole, once, or not at all.
func (p *put) complete(uploadID string, parts []minio.CompletePart) error {
	b := p.b
	opts := p.options()
	opts.SetMatchETagExcept("*")
	return b.retry(p.ctx, "complete multipart upload", func(attempt int) error {
		_, err := b.core.CompleteMultipartUpload(p.ctx, b.bucket, p.object, uploadID, parts, opts)
		if err == nil {
			return nil
		}
		code, _ := errorCode(err)
		if isPreconditionFailed(err) {
			return p.exists(attempt)
		}
		if code == "NoSuchUpload" && attempt > 1 {
			// The upload is gone: maybe our lost earlier attempt completed it.
			ok, cerr := p.committed()
			if cerr != nil {
				return cerr // if transient, the completion is tried again
			}
			if ok {
				return nil
			}
		}
		return err
	})
}

// partSizeFor returns the part size for an object of size bytes: the
// configured one, or larger (a whole number of MiB) if the object would
// otherwise need more than S3's 10,000 parts.
func partSizeFor(size, configured int64) int64 {
	if n := (size + maxParts - 1) / maxParts; n > configured {
		return (n + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return configured
}

// uploadParts sends every part, filling parts in order.
func (p *put) uploadParts(uploadID string, partSize int64, parts []minio.CompletePart) error {
	b := p.b
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	upload := func(i int, open func() *exactReader, n int64) error {
		number := i + 1
		what := fmt.Sprintf("upload part %d of %d", number, len(parts))
		return b.retry(gctx, what, func(int) error {
			body := open()
			part, err := b.core.PutObjectPart(gctx, b.bucket, p.object, uploadID, number, body, n, minio.PutObjectPartOptions{})
			if serr := body.finish(); serr != nil {
				return serr
			}
			if err != nil {
				return err
			}
			parts[i] = minio.CompletePart{PartNumber: number, ETag: part.ETag}
			return nil
		})
	}
	partLen := func(i int) int64 { return min(partSize, p.size-int64(i)*partSize) }

	var readErr error // a failure of the plain source, seen by this goroutine
	if p.ra != nil {
		if err := p.checkEnd(); err != nil {
			return err
		}
		g.SetLimit(b.concurrency)
		for i := range parts {
			if gctx.Err() != nil {
				break
			}
			off, n := int64(i)*partSize, partLen(i)
			g.Go(func() error {
				return upload(i, func() *exactReader { return p.section(off, n) }, n)
			})
		}
	} else {
		// Read parts one after the other into at most Concurrency buffers,
		// each uploaded (and retried) from memory by its own goroutine.
		free := make(chan []byte, b.concurrency)
		for range b.concurrency {
			free <- nil
		}
	produce:
		for i := range parts {
			var buf []byte
			select {
			case buf = <-free:
			case <-gctx.Done():
				break produce
			}
			n := partLen(i)
			if int64(cap(buf)) < n {
				buf = make([]byte, n)
			}
			buf = buf[:n]
			if readErr = p.readFull(buf, int64(i)*partSize); readErr != nil {
				break
			}
			g.Go(func() error {
				defer func() { free <- buf }()
				return upload(i, func() *exactReader { return &exactReader{r: bytes.NewReader(buf), remaining: n} }, n)
			})
		}
		if readErr == nil && gctx.Err() == nil {
			readErr = p.checkEnd()
		}
		if readErr != nil {
			cancel() // stop the uploads under way
		}
	}
	err := g.Wait()
	if readErr != nil {
		return readErr
	}
	if err != nil {
		return err
	}
	return p.ctx.Err()
}

// abort cancels an upload; it runs even if the Put's context is done.
func (p *put) abort(uploadID string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), abortTimeout)
	defer cancel()
	return p.b.retry(ctx, "abort multipart upload", func(int) error {
		err := p.b.core.AbortMultipartUpload(ctx, p.b.bucket, p.object, uploadID)
		if code, _ := errorCode(err); code == "NoSuchUpload" {
			return nil
		}
		return err
	})
}

// exactReader reads exactly remaining bytes from r: an early end is an
// error. Every failure of the source is kept (as a sourceError) so that it
// is not mistaken for a network problem. finish ends the reading: the HTTP
// transport may still hold the body after the request returned, and the
// source (a reused buffer) must not be read after that.
type exactReader struct {
	mu        sync.Mutex
	r         io.Reader
	remaining int64
	err       error
	done      bool
}

func (e *exactReader) Read(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return 0, errors.New("request body read after the request ended")
	}
	if e.err != nil {
		return 0, e.err
	}
	if e.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.remaining {
		p = p[:e.remaining]
	}
	n, err := e.r.Read(p)
	e.remaining -= int64(n)
	switch {
	case err == io.EOF && e.remaining > 0:
		e.err = &sourceError{fmt.Errorf("the data ended %d bytes short of the announced size", e.remaining)}
		return n, e.err
	case err != nil && err != io.EOF:
		e.err = &sourceError{err}
		return n, e.err
	}
	if e.remaining == 0 {
		return n, io.EOF
	}
	return n, nil
}

// finish stops further reads and returns the source's failure, if any.
func (e *exactReader) finish() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.done = true
	return e.err
}

// ctxReader stops a read loop once the context is done.
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

// startUpload starts a multipart upload of the object.
func (p *put) startUpload() (uploadID string, err error) {
	b := p.b
	err = b.retry(p.ctx, "start multipart upload", func(int) error {
		var err error
		uploadID, err = b.core.NewMultipartUpload(p.ctx, b.bucket, p.object, p.options())
		return err
	})
	return uploadID, err
}

// abortIncomplete aborts the upload unless it completed, adding a failed
// abort to *err (deferred by the callers of startUpload).
func (p *put) abortIncomplete(uploadID string, completed *bool, err *error) {
	if *completed {
		return
	}
	if aerr := p.abort(uploadID); aerr != nil {
		*err = fmt.Errorf("%w; and the incomplete upload %s could not be aborted (a lifecycle rule for incomplete multipart uploads removes it): %v", *err, uploadID, aerr)
	}
}
