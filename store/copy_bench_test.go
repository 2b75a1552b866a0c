package store_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/miniotest"
	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/s3"
)

// BenchmarkCopyMinIO copies a 128 MiB bf16 model (16 chunks of 8 MiB,
// planes coded) between two buckets of one MinIO server, 8 workers, into a
// fresh bucket each time: with the destination's server copying each object
// itself (ServerSide: read and verified here, then UploadPartCopy), and
// with the bytes sent back through this process (DownloadUpload). Both read
// and verify every object from the source. Over loopback (Loopback) the
// network costs nothing; the Link variants give this process a simulated
// link of 100 MB/s down and 25 MB/s up (an office or cloud-egress uplink),
// where what server-side copying saves, the upload, is what costs.
//
// Measured on the 2-core development VM under a load average of about 20
// (go test -bench BenchmarkCopyMinIO -benchtime 3x, 2026-12-01): Loopback
// ServerSide 4.95 s, DownloadUpload 3.51 s (server-side 0.71x the speed:
// MinIO's own read, MD5 and write of each part compete for the same two
// cores, and loopback uploads are free); Link100down25up ServerSide
// 4.59 s, DownloadUpload 4.96 s (1.08x). Reading and verifying every object
// (decoding the planes codec) dominates both on this machine; what
// server-side copying reliably saves is the upload: no object byte leaves
// this process.
func BenchmarkCopyMinIO(b *testing.B) {
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "model")
	require.NoError(b, synth.WriteBase(dir, synth.ModelOfSize(128<<20, layout.DtypeBF16), 1, filepath.Join("..", "testdata", "gpt2")))
	if minioServer == nil {
		b.Skip(miniotest.SkipMessage)
	}
	srcBucket := minioServer.NewBucket(b)
	src, _, err := store.Init(ctx, minioBucket(b, srcBucket, nil), store.Options{Workers: 8})
	require.NoError(b, err)
	res, err := src.Push(ctx, dir, store.PushOptions{Name: "bench", Version: "1"})
	require.NoError(b, err)
	for _, link := range []struct {
		name     string
		down, up float64 // bytes per second, 0 for no limit
	}{{"Loopback", 0, 0}, {"Link100down25up", 100e6, 25e6}} {
		for _, mode := range []struct {
			name       string
			serverSide bool
		}{{"ServerSide", true}, {"DownloadUpload", false}} {
			b.Run(link.name+"/"+mode.name, func(b *testing.B) {
				var tr http.RoundTripper
				if link.down > 0 {
					tr = &linkTransport{base: http.DefaultTransport.(*http.Transport).Clone(),
						down: &throttle{rate: link.down}, up: &throttle{rate: link.up}}
				}
				// The source again, through the link.
				lsrc, err := store.Open(ctx, minioBucket(b, srcBucket, tr), store.Options{Workers: 8})
				require.NoError(b, err)
				b.SetBytes(res.Logical)
				for range b.N {
					b.StopTimer()
					dst, _, err := store.Init(ctx, minioBucket(b, minioServer.NewBucket(b), tr), store.Options{Workers: 8})
					require.NoError(b, err)
					b.StartTimer()
					cres, err := lsrc.CopyTo(ctx, dst, []store.CopySpec{{Name: "bench", Ref: "1"}}, store.CopyOptions{ServerSide: mode.serverSide})
					require.NoError(b, err)
					if mode.serverSide {
						require.Equal(b, cres.Blobs+cres.Manifests, cres.ServerSide)
					} else {
						require.Zero(b, cres.ServerSide)
					}
				}
			})
		}
	}
}

// minioBucket is an S3 backend on bucket of the package's MinIO through
// tr (nil: the default transport).
func minioBucket(b *testing.B, bucket string, tr http.RoundTripper) backend.Backend {
	b.Helper()
	be, err := s3.New(context.Background(), s3.Config{
		Bucket: bucket, Prefix: "registry", Endpoint: minioServer.Endpoint, Region: miniotest.Region,
		Creds: minioServer.Creds(), Transport: tr,
	})
	require.NoError(b, err)
	return be
}

// throttle paces bytes to rate per second, shared by every caller.
type throttle struct {
	rate float64
	mu   sync.Mutex
	next time.Time
}

// wait blocks until n more bytes fit the rate.
func (t *throttle) wait(n int) {
	t.mu.Lock()
	now := time.Now()
	if t.next.Before(now) {
		t.next = now
	}
	t.next = t.next.Add(time.Duration(float64(n) / t.rate * float64(time.Second)))
	until := t.next
	t.mu.Unlock()
	time.Sleep(time.Until(until))
}

// linkTransport sends request bodies through up and response bodies
// through down: a client on a link of those speeds.
type linkTransport struct {
	base     http.RoundTripper
	down, up *throttle
}

func (l *linkTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		req = req.Clone(req.Context())
		req.Body = &pacedBody{ReadCloser: req.Body, t: l.up}
	}
	resp, err := l.base.RoundTrip(req)
	if err == nil && resp.Body != nil {
		resp.Body = &pacedBody{ReadCloser: resp.Body, t: l.down}
	}
	return resp, err
}

type pacedBody struct {
	io.ReadCloser
	t *throttle
}

func (p *pacedBody) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	if n > 0 {
		p.t.wait(n)
	}
	return n, err
}
