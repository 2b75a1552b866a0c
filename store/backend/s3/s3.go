// Package s3 is the registry backend for S3-compatible object stores (AWS
// S3, MinIO and the like), built on minio-go. It owns the mapping of keys to
// objects under a bucket prefix, create-only writes (If-None-Match: * on the
// single PUT and on CompleteMultipartUpload), parallel multipart uploads for
// large objects, resumable ranged reads, and its own bounded retry policy
// for transient failures (minio-go's retries are turned off).
package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/ckptdev/ckpt/internal/redact"
	"github.com/ckptdev/ckpt/store/backend"
)

const (
	// DefaultPartSize is the part size of multipart uploads when
	// Config.PartSize is zero. Objects up to this size go in one PUT.
	DefaultPartSize = 16 << 20
	// MinPartSize is S3's smallest allowed part (the last one excepted).
	MinPartSize = 5 << 20
	// MaxPartSize is S3's largest allowed part, and single PUT.
	MaxPartSize = 5 << 30
	// DefaultConcurrency is the number of parts uploaded at once when
	// Config.Concurrency is zero.
	DefaultConcurrency = 4
	// DefaultRequestTimeout is the per-request watchdog when
	// Config.RequestTimeout is zero.
	DefaultRequestTimeout = 2 * time.Minute

	maxParts = 10000
	awsHost  = "s3.amazonaws.com"
)

// Config says where the registry lives and how to talk to it.
type Config struct {
	// Bucket must exist already. Prefix ("" or slash-separated, without
	// leading or trailing slash) is prepended to every key: key k is
	// stored as object "Prefix/k".
	Bucket, Prefix string
	// Endpoint is the server's URL, "http://127.0.0.1:9000" or
	// "https://minio.example.com"; empty means AWS (https://s3.amazonaws.com).
	// Endpoints other than AWS's are addressed path-style.
	Endpoint string
	// Region is the bucket's region ("" lets minio-go ask the server).
	Region string
	// CAFile is a PEM file of certificates trusted in addition to the
	// system's, for the default transport.
	CAFile string
	// Insecure skips TLS certificate verification (default transport only).
	Insecure bool
	// Creds are the credentials; nil means DefaultCredentials().
	Creds *credentials.Credentials
	// Transport carries the HTTP requests; nil means a transport built
	// from CAFile and Insecure. It is wrapped by the request watchdog.
	Transport http.RoundTripper
	// Retry bounds the retries of each request.
	Retry RetryPolicy
	// PartSize is the multipart part size, and the largest object sent in
	// a single PUT; 0 means DefaultPartSize. At least MinPartSize.
	PartSize int64
	// Concurrency is how many parts of one object are uploaded at once;
	// 0 means DefaultConcurrency. It also bounds the memory used to
	// buffer parts when Put's reader is not an io.ReaderAt
	// (Concurrency × PartSize).
	Concurrency int
	// RequestTimeout abandons (and retries) a request that makes no
	// progress for that long: no body byte sent, no response, or no body
	// byte received while the caller is reading. 0 means
	// DefaultRequestTimeout; negative disables the watchdog.
	RequestTimeout time.Duration
}

// Backend stores objects in an S3 bucket. It is safe for concurrent use.
type Backend struct {
	core        minio.Core
	bucket      string
	prefix      string // "" or ending with "/"
	location    string
	endpoint    string // scheme://host[:port]: backends with the same one can copy server-side
	partSize    int64
	concurrency int
	retryPolicy RetryPolicy
}

var _ backend.Backend = (*Backend)(nil)

// DefaultCredentials is the usual chain: AWS_ACCESS_KEY_ID/... and
// MINIO_ROOT_USER/... environment variables, the AWS shared credentials file
// (profile AWS_PROFILE), the mc configuration file, then the EC2/ECS/EKS
// instance role.
func DefaultCredentials() *credentials.Credentials {
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.EnvMinio{},
		&credentials.FileAWSCredentials{},
		&credentials.FileMinioClient{},
		&credentials.IAM{},
	})
}

// ParseURL splits a registry URL "s3://BUCKET/PREFIX" into bucket and
// prefix (without leading or trailing slash, "" for the bucket's root).
// Errors show the URL redacted (credentials, query values and fragment
// removed), whatever characters the credentials hold.
func ParseURL(u string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	if !ok {
		return "", "", fmt.Errorf("registry URL %q: want s3://BUCKET/PREFIX", redactURL(u))
	}
	if strings.Contains(rest, "@") {
		// Credentials may hold '/', ':' or '?': with an '@' anywhere, no
		// part of the URL is trusted to be free of them.
		return "", "", fmt.Errorf("registry URL %q: want s3://BUCKET/PREFIX without credentials, query or fragment (credentials come from the environment or a credentials file)", redactURL(u))
	}
	if strings.ContainsAny(rest, "?#") {
		return "", "", fmt.Errorf("registry URL %q: query and fragment are not allowed", redactURL(u))
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if strings.Contains(bucket, ":") {
		return "", "", fmt.Errorf("registry URL %q: the bucket name must not carry a port (use the endpoint setting)", redactURL(u))
	}
	if bucket == "" {
		return "", "", fmt.Errorf("registry URL %q: no bucket", redactURL(u))
	}
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return "", "", fmt.Errorf("registry URL %q: bucket %q: %v", redactURL(u), bucket, err)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" {
		if err := backend.CheckKey(prefix); err != nil {
			return "", "", fmt.Errorf("registry URL %q: prefix: %v", redactURL(u), err)
		}
	}
	return bucket, prefix, nil
}

// redactURL hides credentials, query values and the fragment of u
// (redact.URL).
func redactURL(u string) string { return redact.URL(u) }

// New connects to the bucket described by cfg and checks that it exists.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := s3utils.CheckValidBucketName(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("s3 bucket %q: %v", cfg.Bucket, err)
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := backend.CheckKey(prefix); err != nil {
			return nil, fmt.Errorf("s3 prefix: %v", err)
		}
		prefix += "/"
	}

	secure, host, endpoint := true, awsHost, "https://"+awsHost
	if cfg.Endpoint != "" {
		if strings.Contains(cfg.Endpoint, "@") {
			// Checked before parsing: a secret holding '/' or '?' would make
			// net/url take part of it for the host or the path.
			return nil, fmt.Errorf("s3 endpoint %q: want http://HOST[:PORT] or https://HOST[:PORT] without credentials, path or query (credentials come from the environment or a credentials file)", redactURL(cfg.Endpoint))
		}
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3 endpoint %q: want http://HOST[:PORT] or https://HOST[:PORT]", redactURL(cfg.Endpoint))
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(cfg.Endpoint, "?#") {
			return nil, fmt.Errorf("s3 endpoint %q: no path or query allowed", redactURL(cfg.Endpoint))
		}
		secure, host = u.Scheme == "https", u.Host
		endpoint = u.Scheme + "://" + u.Host
	}

	partSize := cfg.PartSize
	switch {
	case partSize == 0:
		partSize = DefaultPartSize
	case partSize < MinPartSize || partSize > MaxPartSize:
		return nil, fmt.Errorf("s3 part size %d: want between %d and %d bytes", partSize, MinPartSize, MaxPartSize)
	}
	concurrency := cfg.Concurrency
	switch {
	case concurrency == 0:
		concurrency = DefaultConcurrency
	case concurrency < 0:
		return nil, fmt.Errorf("s3 concurrency %d: want a positive number", concurrency)
	}

	transport := cfg.Transport
	if transport == nil {
		tr, err := newTransport(secure, cfg.CAFile, cfg.Insecure)
		if err != nil {
			return nil, fmt.Errorf("s3 endpoint %s: %w", endpoint, err)
		}
		transport = tr
	} else if cfg.CAFile != "" || cfg.Insecure {
		return nil, errors.New("s3: CAFile and Insecure apply to the default transport; they cannot be combined with a custom Transport")
	}
	timeout := cfg.RequestTimeout
	if timeout == 0 {
		timeout = DefaultRequestTimeout
	}
	if timeout > 0 {
		transport = &watchdogTransport{base: transport, d: timeout}
	}

	creds := cfg.Creds
	if creds == nil {
		creds = DefaultCredentials()
	}
	lookup := minio.BucketLookupPath
	if s3utils.IsAmazonEndpoint(url.URL{Host: host}) {
		lookup = minio.BucketLookupAuto // virtual-host style, as AWS prefers
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Transport:    transport,
		Region:       cfg.Region,
		BucketLookup: lookup,
		// One attempt per call: retries are ours (RetryPolicy), so that
		// the budget is bounded and bodies are re-read from the source.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %s: %w", endpoint, err)
	}

	b := &Backend{
		core:        minio.Core{Client: client},
		bucket:      cfg.Bucket,
		prefix:      prefix,
		endpoint:    endpoint,
		partSize:    partSize,
		concurrency: concurrency,
		retryPolicy: cfg.Retry.withDefaults(),
	}
	b.location = "s3://" + cfg.Bucket
	if prefix != "" {
		b.location += "/" + strings.TrimSuffix(prefix, "/")
	}
	b.location += " at " + endpoint

	var exists bool
	err = b.retry(ctx, "check bucket", func(int) error {
		var err error
		exists, err = client.BucketExists(ctx, cfg.Bucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", b.location, err)
	}
	if !exists {
		return nil, fmt.Errorf("registry %s: bucket %q does not exist", b.location, cfg.Bucket)
	}
	return b, nil
}

// Location implements backend.Backend: "s3://bucket/prefix at endpoint".
func (b *Backend) Location() string { return b.location }

// object returns the object name of key, after checking the key.
func (b *Backend) object(key string) (string, error) {
	if err := backend.CheckKey(key); err != nil {
		return "", err
	}
	return b.prefix + key, nil
}

// Stat implements backend.Backend. ModTime is the server's LastModified.
func (b *Backend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	object, err := b.object(key)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	var info minio.ObjectInfo
	err = b.retry(ctx, "stat", func(int) error {
		var err error
		info, err = b.core.StatObject(ctx, b.bucket, object, minio.StatObjectOptions{})
		if isNotFound(err) {
			return backend.ErrNotFound
		}
		return err
	})
	if err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("%s in %s: %w", key, b.location, err)
	}
	return backend.ObjectInfo{Key: key, Size: info.Size, ModTime: info.LastModified, ETag: info.ETag}, nil
}

// List implements backend.Backend. Objects under the prefix whose names are
// not valid keys (written by something else) are skipped.
func (b *Backend) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	if backend.CheckKey(prefix+"x") != nil {
		return nil // no valid key starts with prefix
	}
	full := b.prefix + prefix
	noOwner := false
	startAfter := ""
	for failures := 0; ; {
		var listErr error
		opts := minio.ListObjectsOptions{Prefix: full, Recursive: true, StartAfter: startAfter, FetchOwner: &noOwner}
		for obj := range b.core.ListObjectsIter(ctx, b.bucket, opts) {
			if obj.Err != nil {
				listErr = obj.Err
				break
			}
			failures = 0
			startAfter = obj.Key
			key, ok := strings.CutPrefix(obj.Key, b.prefix)
			if !ok || backend.CheckKey(key) != nil {
				continue
			}
			if err := fn(backend.ObjectInfo{Key: key, Size: obj.Size, ModTime: obj.LastModified, ETag: obj.ETag}); err != nil {
				return err
			}
		}
		if listErr == nil {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("list %q in %s: %w", prefix, b.location, err)
			}
			return nil
		}
		failures++
		if ctx.Err() != nil || !isTransient(listErr) {
			return fmt.Errorf("list %q in %s: %w", prefix, b.location, listErr)
		}
		if failures >= b.retryPolicy.MaxAttempts {
			return fmt.Errorf("list %q in %s: giving up after %d attempts: %w", prefix, b.location, failures, listErr)
		}
		if err := sleep(ctx, b.retryPolicy.delay(failures)); err != nil {
			return fmt.Errorf("list %q in %s: %w (last error: %v)", prefix, b.location, err, listErr)
		}
	}
}

// Delete implements backend.Backend; deleting a missing key succeeds.
func (b *Backend) Delete(ctx context.Context, key string) error {
	object, err := b.object(key)
	if err != nil {
		return err
	}
	err = b.retry(ctx, "delete", func(int) error {
		err := b.core.RemoveObject(ctx, b.bucket, object, minio.RemoveObjectOptions{})
		if isNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete %s in %s: %w", key, b.location, err)
	}
	return nil
}
