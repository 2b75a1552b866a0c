package s3

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"

	"github.com/ckptdev/ckpt/store/backend"
)

func TestRetryDelay(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 10, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.withDefaults()
	for n := 1; n <= 12; n++ {
		want := min(p.BaseDelay<<(n-1), p.MaxDelay)
		for range 50 {
			d := p.delay(n)
			assert.GreaterOrEqual(t, d, want/2, "retry %d", n)
			assert.LessOrEqual(t, d, want, "retry %d", n)
		}
	}
	assert.Equal(t, DefaultRetry, RetryPolicy{}.withDefaults())
	assert.Equal(t, RetryPolicy{MaxAttempts: 1, BaseDelay: time.Second, MaxDelay: time.Second},
		RetryPolicy{MaxAttempts: 1, BaseDelay: time.Second, MaxDelay: time.Millisecond}.withDefaults())
}

func TestIsTransient(t *testing.T) {
	urlErr := func(err error) error { return &url.Error{Op: "Put", URL: "http://127.0.0.1:9000/b/k", Err: err} }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"SlowDown", minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}, true},
		{"InternalError", minio.ErrorResponse{Code: "InternalError", StatusCode: 500}, true},
		{"RequestTimeout", minio.ErrorResponse{Code: "RequestTimeout", StatusCode: 400}, true},
		{"5xxWithoutCode", minio.ErrorResponse{StatusCode: 502}, true},
		{"TooManyRequests", minio.ErrorResponse{Code: "TooManyRequests", StatusCode: 429}, true},
		{"Wrapped503", fmt.Errorf("upload: %w", minio.ErrorResponse{Code: "ServiceUnavailable", StatusCode: 503}), true},
		{"AccessDenied", minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}, false},
		{"NoSuchKey", minio.ErrorResponse{Code: "NoSuchKey", StatusCode: 404}, false},
		{"PreconditionFailed", minio.ErrorResponse{Code: "PreconditionFailed", StatusCode: 412}, false},
		{"ConnectionRefused", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{"ConnectionReset", urlErr(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true},
		{"UnexpectedEOF", io.ErrUnexpectedEOF, true},
		{"WrappedUnexpectedEOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"Watchdog", urlErr(&timeoutError{time.Second}), true},
		{"Deadline", urlErr(context.DeadlineExceeded), true},
		{"MinioRewrittenEOF", urlErr(errors.New("Connection closed by foreign host http://x. Retry again.")), true},
		{"OtherTransportError", urlErr(errors.New("something odd")), true},
		{"UnknownAuthority", urlErr(x509.UnknownAuthorityError{}), false},
		{"Canceled", context.Canceled, false},
		{"CanceledInURLError", urlErr(context.Canceled), false},
		{"Source", &sourceError{errors.New("disk")}, false},
		{"SourceUnexpectedEOF", &sourceError{io.ErrUnexpectedEOF}, false},
		{"WrappedSource", fmt.Errorf("x: %w", urlErr(&sourceError{io.ErrUnexpectedEOF})), false},
		{"NotFound", backend.ErrNotFound, false},
		{"Exists", backend.ErrExists, false},
		{"Plain", errors.New("nope"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, isTransient(tt.err), "%v", tt.err)
		})
	}
}

func TestPartSizeFor(t *testing.T) {
	tests := []struct {
		size, configured, want int64
	}{
		{0, MinPartSize, MinPartSize},
		{10 << 20, MinPartSize, MinPartSize},
		{maxParts * MinPartSize, MinPartSize, MinPartSize},
		{maxParts*MinPartSize + 1, MinPartSize, 6 << 20},
		{1 << 40, DefaultPartSize, 105 << 20},
	}
	for _, tt := range tests {
		got := partSizeFor(tt.size, tt.configured)
		assert.Equal(t, tt.want, got, "size %d", tt.size)
		assert.LessOrEqual(t, (tt.size+got-1)/got, int64(maxParts))
	}
}

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"s3://bkt/p":                    "s3://bkt/p",
		"s3://key:secret@bkt/p":         "s3://REDACTED@bkt/p",
		"http://key:secret@host:9000":   "http://REDACTED@host:9000",
		"http://key:secret@host:9000/x": "http://REDACTED@host:9000/x",
		"key:secret@host":               "REDACTED@host",
		"plain":                         "plain",
	}
	for in, want := range tests {
		assert.Equal(t, want, redactURL(in), in)
	}
}

// The default chain takes credentials from the environment first (the test
// sets them, so no later provider, such as the instance role, is asked).
func TestDefaultCredentialsFromEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
	t.Setenv("AWS_SESSION_TOKEN", "")
	v, err := DefaultCredentials().GetWithContext(nil)
	assert.NoError(t, err)
	assert.Equal(t, "AKIDTEST", v.AccessKeyID)
	assert.Equal(t, "secret-from-env", v.SecretAccessKey)
}
