package s3_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/s3"
)

// FuzzParseURL: an accepted registry URL yields a valid bucket and a prefix
// that is a valid key (or empty), and never leaks credentials-looking text
// into the bucket.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://bkt", "s3://bkt/team/ckpt/", "s3://user:secret@bkt/p", "s3://bkt//p", "s3://bkt/a/../b", "http://x", "s3://bkt/p?x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		bucket, prefix, err := s3.ParseURL(u)
		if err != nil {
			return
		}
		require.NotEmpty(t, bucket)
		require.False(t, strings.ContainsAny(bucket, "@:/?#"), "bucket %q", bucket)
		if prefix != "" {
			require.NoError(t, backend.CheckKey(prefix))
		}
	})
}
