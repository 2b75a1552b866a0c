package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/ckptdev/ckpt/internal/redact"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/s3"
)

// s3Flags are the S3 connection settings.
type s3Flags struct {
	endpoint string
	ca       string
	insecure bool
}

func (s *s3Flags) register(f *pflag.FlagSet) {
	f.StringVar(&s.endpoint, "s3-endpoint", "", "S3 endpoint URL, e.g. http://127.0.0.1:9000 (env CKPT_S3_ENDPOINT; default AWS)")
	f.StringVar(&s.ca, "s3-ca", "", "PEM file of a CA to trust for the S3 endpoint (default $SSL_CERT_FILE)")
	f.BoolVar(&s.insecure, "s3-insecure", false, "do not verify the S3 endpoint's TLS certificate (insecure)")
}

// open connects to s3://BUCKET/PREFIX. Credentials come from the standard
// chain (AWS and MinIO environment variables, the AWS shared credentials
// file and profile, the MinIO client config, IAM); they never appear in
// output or errors.
func (s *s3Flags) open(ctx context.Context, loc string, warn io.Writer) (backend.Backend, error) {
	bucket, prefix, err := s3.ParseURL(loc)
	if err != nil {
		return nil, usageError{err}
	}
	cfg := s3.Config{
		Bucket:   bucket,
		Prefix:   prefix,
		Endpoint: firstNonEmpty(s.endpoint, os.Getenv("CKPT_S3_ENDPOINT")),
		Region:   firstNonEmpty(os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION")),
		CAFile:   firstNonEmpty(s.ca, os.Getenv("SSL_CERT_FILE")),
		Insecure: s.insecure,
	}
	if s.insecure {
		fmt.Fprintln(warn, "ckpt: warning: --s3-insecure: the endpoint's TLS certificate is not verified")
	}
	b, err := s3.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redact.URL(loc), err)
	}
	return b, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
