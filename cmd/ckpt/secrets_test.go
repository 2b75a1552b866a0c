package main

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/miniotest"
)

const (
	// envSecret is the secret key in the environment: only the last line
	// of defence (scrubbing known secrets) keeps it out where ckpt echoes
	// a value it does not know to be one.
	envSecret = "wJal/rXU+tnF=EM@I%K:7MD#x?y"
	// urlSecret appears only inside URLs given on the command line:
	// redaction by parsing must remove it.
	urlSecret = "sEcR/eT+=%@:k3y#q?z"
	accessKey = "AKIAEXAMPLEKEY0001"
)

// secretForms are the ways a secret could be printed.
func secretForms(s string) []string {
	forms := []string{s, url.QueryEscape(s), url.PathEscape(s), strings.ToLower(url.QueryEscape(s)), strings.ToLower(url.PathEscape(s))}
	q := strconv.Quote(s)
	forms = append(forms, q[1:len(q)-1])
	u := url.UserPassword("x", s).String()
	forms = append(forms, strings.TrimPrefix(u, "x:"))
	return forms
}

// runCLI runs ckpt in-process through the same error printer as main, and
// returns the exit code and everything written to stdout and stderr.
func runCLI(ctx context.Context, t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := runWith(ctx, args, &out, &out)
	return code, out.String()
}

func assertNoSecrets(t *testing.T, out string, args []string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, f := range secretForms(s) {
			assert.NotContains(t, out, f, "ckpt %q printed a form of a secret:\n%s", args, out)
		}
	}
}

// closedPort is a local TCP port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestSecretsNeverPrinted(t *testing.T) {
	newCLI(t)
	t.Setenv("AWS_ACCESS_KEY_ID", accessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", envSecret)
	t.Setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEJr//////////wEaDH"+"session+token=")
	t.Setenv("CKPT_S3_ENDPOINT", "")
	t.Setenv("AWS_REGION", "us-east-1")
	refused := closedPort(t)
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake it refuses is the point
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	dir := t.TempDir()
	userinfo := url.UserPassword(accessKey, urlSecret).String() // %-escaped as a user would have to
	raw := accessKey + ":" + urlSecret                          // as a user might paste it

	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
	}{
		{"s3 URL with credentials", []string{"--repo", "s3://" + raw + "@bucket/prefix", "ls"}, nil, 2},
		{"s3 URL with escaped credentials", []string{"--repo", "s3://" + userinfo + "@bucket/prefix", "ls"}, nil, 2},
		{"s3 URL from CKPT_REPO", []string{"ls"}, map[string]string{"CKPT_REPO": "s3://" + raw + "@bucket/p"}, 2},
		{"s3 URL with a signature", []string{"--repo", "s3://bucket/prefix?X-Amz-Signature=" + url.QueryEscape(urlSecret), "ls"}, nil, 2},
		{"s3 URL with tokens", []string{"--repo", "s3://bucket/p?X-Amz-Credential=" + urlSecret + "&X-Amz-Security-Token=" + urlSecret, "ls"}, nil, 2},
		{"s3 URL with a token after the bucket", []string{"--repo", "s3://bucket?token=" + urlSecret, "ls"}, nil, 2},
		{"https repo URL", []string{"--repo", "https://" + raw + "@host/x", "ls"}, nil, 2},
		{"file URL with host", []string{"--repo", "file://user:" + urlSecret + "@host/path", "ls"}, nil, 2},
		{"file URL without host", []string{"--repo", "file://user:" + url.PathEscape(urlSecret) + "@/" + dir, "ls"}, nil, 2},
		{"file URL with a query", []string{"--repo", "file://" + dir + "?sig=" + urlSecret, "ls"}, nil, 2},
		{"endpoint with credentials", []string{"--repo", "s3://bucket", "--s3-endpoint", "https://" + raw + "@127.0.0.1:9000", "ls"}, nil, 1},
		{"endpoint with escaped credentials", []string{"--repo", "s3://bucket", "--s3-endpoint", "https://" + userinfo + "@127.0.0.1:9000", "ls"}, nil, 1},
		{"endpoint with a query", []string{"--repo", "s3://bucket", "--s3-endpoint", "http://127.0.0.1:9000/?key=" + urlSecret, "ls"}, nil, 1},
		{"endpoint from the environment", []string{"--repo", "s3://bucket", "ls"}, map[string]string{"CKPT_S3_ENDPOINT": "http://" + raw + "@127.0.0.1:9000"}, 1},
		{"connection refused", []string{"--repo", "s3://bucket", "--s3-endpoint", "http://" + refused, "ls"}, nil, 1},
		{"TLS failure", []string{"--repo", "s3://bucket", "--s3-endpoint", tlsSrv.URL, "ls"}, nil, 1},
		{"secret echoed by a flag error", []string{"--workers", envSecret, "ls"}, nil, 2},
		{"URL as an unknown command", []string{"s3://" + raw + "@bucket"}, nil, 1},
		{"URL as a NAME", []string{"--repo", dir, "push", dir, "s3://" + raw + "@bucket"}, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second) // retries of a refused connection
			defer cancel()
			code, out := runCLI(ctx, t, tt.args...)
			assert.NotEqual(t, 0, code, out)
			if tt.code != 0 {
				assert.Equal(t, tt.code, code, out)
			}
			t.Logf("ckpt %q:\n%s", tt.args, out)
			assert.NotEmpty(t, out, "an error is printed")
			assertNoSecrets(t, out, tt.args, envSecret, urlSecret, "session+token=")
			assert.NotContains(t, out, accessKey+":", "the key of a key:secret pair")
		})
	}
}

// A real MinIO refusing a wrong secret key (403): the error says so, and
// names neither the secret nor any of its encodings.
func TestSecretNotPrintedOnAccessDenied(t *testing.T) {
	newCLI(t)
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", envSecret)
	t.Setenv("AWS_REGION", miniotest.Region)
	args := []string{"--repo", "s3://" + bucket + "/team", "--s3-endpoint", srv.Endpoint, "ls"}
	code, out := runCLI(context.Background(), t, args...)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, strings.ToLower(out), "signature", "the server's reason is printed")
	t.Logf("ckpt %q:\n%s", args, out)
	assertNoSecrets(t, out, args, envSecret)
}
