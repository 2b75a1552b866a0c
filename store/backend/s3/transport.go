package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// newTransport returns the HTTP transport used when Config.Transport is nil:
// minio-go's defaults, with caFile's certificates added to the system pool
// and certificate checks skipped only if insecure.
func newTransport(secure bool, caFile string, insecure bool) (*http.Transport, error) {
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	// The per-request watchdog (Config.RequestTimeout) bounds waiting for
	// the server; a second, shorter limit here would only confuse.
	tr.ResponseHeaderTimeout = 0
	if !secure {
		return tr, nil
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := tr.TLSClientConfig.RootCAs
		if pool == nil {
			if pool, err = x509.SystemCertPool(); err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate found", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	tr.TLSClientConfig.InsecureSkipVerify = insecure
	return tr, nil
}

// timeoutError is what a request that stopped making progress fails with.
type timeoutError struct{ d time.Duration }

// The text must not contain "EOF": minio-go rewrites such transport errors.
func (e *timeoutError) Error() string {
	return fmt.Sprintf("request timeout: no progress for %s", e.d)
}
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// watchdogTransport abandons a request that makes no progress for d: while
// the request is sent, each chunk of body read restarts the clock; then the
// clock runs until the response headers arrive; after that it runs only
// while the caller waits in a Read of the response body. A slow reader of a
// GET is thus never punished, but a stalled server is.
type watchdogTransport struct {
	base http.RoundTripper
	d    time.Duration
}

func (t *watchdogTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	w := &watchdog{d: t.d, cancel: cancel, sending: true}
	req = req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &sendBody{ReadCloser: req.Body, w: w}
	}
	w.arm()
	resp, err := t.base.RoundTrip(req)
	fired := w.stopSending()
	if err != nil {
		cancel()
		if fired {
			return nil, &timeoutError{t.d}
		}
		return nil, err
	}
	if fired {
		_ = resp.Body.Close() // response already consumed
		cancel()
		return nil, &timeoutError{t.d}
	}
	resp.Body = &watchedBody{body: resp.Body, w: w}
	return resp, nil
}

type watchdog struct {
	d      time.Duration
	cancel context.CancelFunc

	mu      sync.Mutex
	timer   *time.Timer
	fired   bool
	sending bool
}

// arm (re)starts the clock.
func (w *watchdog) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armLocked()
}

func (w *watchdog) armLocked() {
	if w.fired {
		return
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(w.d, w.fire)
	} else {
		w.timer.Reset(w.d)
	}
}

// progress restarts the clock if the request is still being sent (the
// transport may go on reading the body after the response came back).
func (w *watchdog) progress() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sending {
		w.armLocked()
	}
}

func (w *watchdog) fire() {
	w.mu.Lock()
	w.fired = true
	w.mu.Unlock()
	w.cancel()
}

// disarm stops the clock and reports whether it had run out.
func (w *watchdog) disarm() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
	return w.fired
}

func (w *watchdog) stopSending() bool {
	w.mu.Lock()
	w.sending = false
	w.mu.Unlock()
	return w.disarm()
}

type sendBody struct {
	io.ReadCloser
	w *watchdog
}

func (b *sendBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.progress()
	}
	return n, err
}

type watchedBody struct {
	body io.ReadCloser
	w    *watchdog
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.w.arm()
	n, err := b.body.Read(p)
	if b.w.disarm() && err != nil {
		return n, &timeoutError{b.w.d}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.w.disarm()
	err := b.body.Close()
	b.w.cancel()
	return err
}
