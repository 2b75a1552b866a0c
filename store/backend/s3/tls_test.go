package s3_test

import (
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/backend/s3"
)

// TLS endpoints are verified, against the system's certificates plus
// CAFile; Insecure skips the check. A certificate problem is not retried.
func TestTLS(t *testing.T) {
	var conns, requests atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusOK) // HEAD bucket: it exists
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	require.NoError(t, os.WriteFile(caFile, pemData, 0o644))

	base := s3.Config{
		Bucket:   "bucket",
		Endpoint: ts.URL,
		Region:   "us-east-1",
		Creds:    credentials.NewStaticV4("AKID", "tls-test-secret", ""),
		Retry:    testRetry,
	}
	tests := []struct {
		name     string
		caFile   string
		insecure bool
		wantErr  string
	}{
		{"Untrusted", "", false, "certificate"},
		{"CAFile", caFile, false, ""},
		{"Insecure", "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conns.Store(0)
			requests.Store(0)
			cfg := base
			cfg.CAFile, cfg.Insecure = tt.caFile, tt.insecure
			_, err := s3.New(t.Context(), cfg)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, int32(1), requests.Load())
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.NotContains(t, err.Error(), "giving up", "a certificate problem is not retried")
			assert.Equal(t, int32(1), conns.Load(), "one connection attempt")
			assert.Zero(t, requests.Load())
		})
	}
}
