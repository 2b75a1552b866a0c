package s3_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// faultRT is the test's HTTP transport: it passes requests to base, except
// those that a fault matches, which it fails in the fault's way.
type faultRT struct {
	base http.RoundTripper

	mu     sync.Mutex
	faults []*fault
	seen   map[string]int // requests by operation, faulty ones included
}

type fault struct {
	op    string // operation name, see opOf
	times int    // how many more matching requests to fail
	act   action
}

// action handles one faulty request.
type action func(base http.RoundTripper, req *http.Request) (*http.Response, error)

func newFaultRT() *faultRT {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &faultRT{base: tr, seen: map[string]int{}}
}

// inject fails the next times requests of operation op with act.
func (f *faultRT) inject(op string, times int, act action) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &fault{op: op, times: times, act: act})
}

// count returns how many requests of operation op went through.
func (f *faultRT) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[op]
}

func (f *faultRT) RoundTrip(req *http.Request) (*http.Response, error) {
	op := opOf(req)
	f.mu.Lock()
	f.seen[op]++
	var act action
	for _, ft := range f.faults {
		if ft.op == op && ft.times > 0 {
			ft.times--
			act = ft.act
			break
		}
	}
	f.mu.Unlock()
	if act != nil {
		return act(f.base, req)
	}
	return f.base.RoundTrip(req)
}

// opOf names the S3 operation of a (path-style) request.
func opOf(req *http.Request) string {
	q := req.URL.Query()
	object := strings.Count(strings.Trim(req.URL.Path, "/"), "/") > 0
	switch m := req.Method; {
	case m == http.MethodPut && q.Has("partNumber"):
		return "UploadPart"
	case m == http.MethodPut && object:
		return "PutObject"
	case m == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload"
	case m == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case m == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	case m == http.MethodDelete && object:
		return "DeleteObject"
	case m == http.MethodGet && object:
		return "GetObject"
	case m == http.MethodGet && q.Has("list-type"):
		return "ListObjectsV2"
	case m == http.MethodHead && object:
		return "HeadObject"
	case m == http.MethodHead:
		return "HeadBucket"
	}
	return req.Method + " " + req.URL.Path
}

// respond answers with an S3 error, without reaching the server.
func respond(status int, code string) action {
	return func(_ http.RoundTripper, req *http.Request) (*http.Response, error) {
		if req.Body != nil {
			req.Body.Close()
		}
		body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+
			`<Error><Code>%s</Code><Message>injected %s</Message><Resource>%s</Resource><RequestId>fault</RequestId></Error>`,
			code, code, req.URL.Path)
		if req.Method == http.MethodHead {
			body = ""
		}
		return &http.Response{
			Status:        strconv.Itoa(status) + " " + http.StatusText(status),
			StatusCode:    status,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        http.Header{"Content-Type": {"application/xml"}, "X-Amz-Request-Id": {"fault"}},
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)),
			Request:       req,
		}, nil
	}
}

// errConnReset is what a cut connection looks like.
var errConnReset = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}

// cutRequest sends the first n bytes of the request body, then the
// connection breaks.
func cutRequest(n int64) action {
	return func(base http.RoundTripper, req *http.Request) (*http.Response, error) {
		req = req.Clone(req.Context())
		req.Body = &cutReader{r: req.Body, n: n, c: req.Body}
		return base.RoundTrip(req)
	}
}

// cutResponse lets the first n bytes of the response body through, then
// the connection breaks.
func cutResponse(n int64) action {
	return func(base http.RoundTripper, req *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		resp.Body = &cutReader{r: resp.Body, n: n, c: resp.Body}
		return resp, nil
	}
}

type cutReader struct {
	r io.Reader
	n int64
	c io.Closer
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errConnReset
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	return k, err
}

func (c *cutReader) Close() error { return c.c.Close() }

// delay holds the request for d (or until it is cancelled) before sending it.
func delay(d time.Duration) action {
	return func(base http.RoundTripper, req *http.Request) (*http.Response, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-req.Context().Done():
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, req.Context().Err()
		}
		return base.RoundTrip(req)
	}
}

// stallBody lets the first n bytes of the response body through, then
// hangs until the request is cancelled.
func stallBody(n int64) action {
	return func(base http.RoundTripper, req *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		resp.Body = &stallReader{r: resp.Body, n: n, ctx: req.Context()}
		return resp, nil
	}
}

type stallReader struct {
	r   io.ReadCloser
	n   int64
	ctx context.Context
}

func (s *stallReader) Read(p []byte) (int, error) {
	if s.n <= 0 {
		<-s.ctx.Done()
		return 0, s.ctx.Err()
	}
	if int64(len(p)) > s.n {
		p = p[:s.n]
	}
	k, err := s.r.Read(p)
	s.n -= int64(k)
	return k, err
}

func (s *stallReader) Close() error { return s.r.Close() }

// loseResponse sends the request, which the server carries out, but the
// answer never arrives.
func loseResponse() action {
	return func(base http.RoundTripper, req *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return nil, errors.New("test bug: the request to lose failed: " + resp.Status)
		}
		return nil, errConnReset
	}
}

// before runs fn, then sends the request.
func before(fn func()) action {
	return func(base http.RoundTripper, req *http.Request) (*http.Response, error) {
		fn()
		return base.RoundTrip(req)
	}
}
