package s3_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/backend/s3"
)

// Registry URLs and endpoints that carry credentials or tokens are refused,
// and the error never shows them, whatever characters they hold.
func TestURLErrorsHideCredentials(t *testing.T) {
	secrets := []string{"se/cr+et=", "p@ss:w/rd", "a%2Fb%zz", "q?x#y", "12/cd"}
	for _, secret := range secrets {
		esc := url.QueryEscape(secret)
		for _, u := range []string{
			"s3://AKIAKEY:" + secret + "@bkt/p",
			"s3://AKIAKEY:" + esc + "@bkt/p",
			"s3://bkt/p?X-Amz-Signature=" + secret,
			"s3://bkt/p?X-Amz-Credential=" + esc + "&X-Amz-Security-Token=" + secret,
			"s3://bkt?token=" + secret,
			"s3://bkt/p#" + secret,
		} {
			_, _, err := s3.ParseURL(u)
			require.Error(t, err, u)
			assert.NotContains(t, err.Error(), secret, u)
			assert.NotContains(t, err.Error(), esc, u)
		}
		for _, ep := range []string{
			"https://AKIAKEY:" + secret + "@127.0.0.1:9000",
			"https://AKIAKEY:" + esc + "@127.0.0.1:9000",
			"http://127.0.0.1:9000/?X-Amz-Signature=" + secret,
			"http://127.0.0.1:9000/#" + secret,
		} {
			_, err := s3.New(context.Background(), s3.Config{Bucket: "bkt", Endpoint: ep})
			require.Error(t, err, ep)
			assert.NotContains(t, err.Error(), secret, ep)
			assert.NotContains(t, err.Error(), esc, ep)
			assert.NotContains(t, err.Error(), "AKIAKEY", ep)
		}
	}
}
