package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
)

// RetryPolicy bounds the retries of one S3 request. Every request (one part
// upload, one GET, one LIST page...) gets MaxAttempts attempts; between two
// attempts the backend waits an exponentially growing, jittered delay:
// a random duration in [d/2, d] where d = min(MaxDelay, BaseDelay·2^(n-1))
// before the n-th retry.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts of a request, the first one
	// included (1 disables retries). Zero means DefaultRetry.MaxAttempts.
	MaxAttempts int
	// BaseDelay is the delay before the first retry. Zero means
	// DefaultRetry.BaseDelay.
	BaseDelay time.Duration
	// MaxDelay caps the delay between two attempts. Zero means
	// DefaultRetry.MaxDelay.
	MaxDelay time.Duration
}

// DefaultRetry is the policy used for the zero fields of Config.Retry: about
// a minute of patience in total before a request is given up.
var DefaultRetry = RetryPolicy{MaxAttempts: 8, BaseDelay: 250 * time.Millisecond, MaxDelay: 20 * time.Second}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultRetry.MaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultRetry.BaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultRetry.MaxDelay
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	return p
}

// delay returns the wait before retry number n (1 for the first retry).
func (p RetryPolicy) delay(n int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retry runs op until it succeeds, fails with an error that is not
// transient, or the policy's attempts are spent. op receives the attempt
// number, starting at 1. what names the request in the final error, which
// always carries the last cause.
func (b *Backend) retry(ctx context.Context, what string, op func(attempt int) error) error {
	for attempt := 1; ; attempt++ {
		err := op(attempt)
		if err == nil {
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			if errors.Is(err, ctxErr) {
				return fmt.Errorf("%s: %w", what, err)
			}
			return fmt.Errorf("%s: %w (last error: %v)", what, ctxErr, err)
		}
		if !isTransient(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if attempt >= b.retryPolicy.MaxAttempts {
			return fmt.Errorf("%s: giving up after %d attempts: %w", what, attempt, err)
		}
		if serr := sleep(ctx, b.retryPolicy.delay(attempt)); serr != nil {
			return fmt.Errorf("%s: %w (last error: %v)", what, serr, err)
		}
	}
}

// sourceError is a failure of the caller's reader: never retried, and
// returned (wrapped) to the caller as it is.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "reading the data to upload: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// Codes of S3 errors that are worth another attempt.
var transientCodes = map[string]bool{
	"InternalError":           true,
	"ServiceUnavailable":      true,
	"SlowDown":                true,
	"SlowDownRead":            true,
	"SlowDownWrite":           true,
	"RequestTimeout":          true,
	"RequestTimeoutException": true,
	"Throttling":              true,
	"ThrottlingException":     true,
	"RequestLimitExceeded":    true,
	"RequestThrottled":        true,
	// AWS: a conditional write raced with another operation; retry.
	"ConditionalRequestConflict": true,
	"XMinioServerNotInitialized": true,
	"XMinioReadQuorum":           true,
	"XMinioWriteQuorum":          true,
}

// isTransient reports whether err, returned by one attempt of a request,
// may go away if the request is sent again.
func isTransient(err error) bool {
	var se *sourceError
	if errors.As(err, &se) {
		return false
	}
	if errors.Is(err, context.Canceled) {
		// Only our own per-request watchdog cancels without the caller's
		// context being done; it reports a timeoutError instead.
		return false
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) && (er.Code != "" || er.StatusCode != 0) {
		if transientCodes[er.Code] {
			return true
		}
		return er.StatusCode >= 500 || er.StatusCode == 429 || er.StatusCode == 408
	}
	var certErr *tls.CertificateVerificationError
	var authErr x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidErr x509.CertificateInvalidError
	if errors.As(err, &certErr) || errors.As(err, &authErr) || errors.As(err, &hostErr) || errors.As(err, &invalidErr) {
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// The request did not get an HTTP answer: connection refused,
		// reset, closed early... Worth another try; TLS trust problems
		// were excluded above.
		return true
	}
	// minio-go rewrites transport errors that mention EOF into this text.
	return strings.Contains(err.Error(), "Connection closed by foreign host")
}

// errorCode returns the S3 error code and HTTP status of err, if it is an
// S3 error response.
func errorCode(err error) (code string, status int) {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code, er.StatusCode
	}
	return "", 0
}

func isPreconditionFailed(err error) bool {
	code, status := errorCode(err)
	return code == "PreconditionFailed" || status == 412
}

func isNotFound(err error) bool {
	code, status := errorCode(err)
	if code == "NoSuchBucket" {
		return false
	}
	return code == "NoSuchKey" || status == 404
}
