package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/ckptdev/ckpt/store"
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

func (s *s3Flags) open(ctx context.Context, loc string, warn io.Writer) (store.Backend, error) {
	return nil, fmt.Errorf("%s: S3 registries are not available in this build yet", loc)
}
