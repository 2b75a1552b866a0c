package redact

import (
	"net/url"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"s3://bkt/p", "s3://bkt/p"},
		{"https://minio.internal:9000", "https://minio.internal:9000"},
		{"/plain/path", "/plain/path"},
		{"s3://key:secret@bkt/p", "s3://REDACTED@bkt/p"},
		{"s3://AKIA:se/cr+et=@%:x@bucket/prefix", "s3://REDACTED@bucket/prefix"},
		{"s3://AKIA:12/cd@bucket/p", "s3://REDACTED@bucket/p"},
		{"s3://K:a#b?c@bucket/p?token=x", "s3://REDACTED"},
		{"https://host/o?X-Amz-Signature=ab@cdefgh", "https://REDACTED"},
		{"https://KEY:SECRET@host:9000", "https://REDACTED@host:9000"},
		{"https://KEY:SEC%2FRET@host:9000/x", "https://REDACTED@host:9000/x"},
		{"http://key:secret@host:9000/x", "http://REDACTED@host:9000/x"},
		{"file://user:pw@host/path", "file://REDACTED@host/path"},
		{"key:secret@host", "REDACTED@host"},
		{"https://host/o?X-Amz-Signature=abc&X-Amz-Credential=AKIA%2F2026&X-Amz-Security-Token=tok",
			"https://host/o?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED"},
		{"https://host/o?token=a&sig=b&key=c", "https://host/o?token=REDACTED&sig=REDACTED&key=REDACTED"},
		{"http://h/b/?location=", "http://h/b/?location="},
		{"http://h/b/?uploads", "http://h/b/?uploads"},
		{"http://h/b/?SECRETTOKEN", "http://h/b/?REDACTED"},
		{"http://h/b/?bad%zzkey=v", "http://h/b/?REDACTED=REDACTED"},
		{"http://h/b#frag", "http://h/b#REDACTED"},
		{"http://h/b?x=1#frag", "http://h/b?x=REDACTED#REDACTED"},
		{"s3://AKIA:sEcR/eT+=%", "s3://REDACTED"},
		{"http://[::1]:9000/x", "http://[::1]:9000/x"},
		{"http://[::1]/x", "http://[::1]/x"},
		{"http://host:/x", "http://host:/x"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, URL(tt.in), "%q", tt.in)
	}
}

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"no urls here", "no urls here"},
		{`Get "http://127.0.0.1:9000/b/?location=": dial tcp 127.0.0.1:9000: connect: connection refused`,
			`Get "http://127.0.0.1:9000/b/?location=": dial tcp 127.0.0.1:9000: connect: connection refused`},
		{`registry URL "s3://K:se/cr+et@bkt/p": bad`, `registry URL "s3://REDACTED@bkt/p": bad`},
		{`unknown command "s3://K:S3CR3T@b" for "ckpt"`, `unknown command "s3://REDACTED@b" for "ckpt"`},
		{"see https://u:p@h/x and s3://a:b@c/d.", "see https://REDACTED@h/x and s3://REDACTED@c/d."},
		{"Authorization: AWS4-HMAC-SHA256 Credential=AKIA/2026/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abcdef",
			"Authorization: AWS4-HMAC-SHA256 Credential=REDACTED, SignedHeaders=host, Signature=REDACTED"},
		{"token=abc sig=def secret=ghi step=10", "token=REDACTED sig=REDACTED secret=REDACTED step=10"},
		{`--metric "eval_loss": want key=value`, `--metric "eval_loss": want key=value`},
		{"eval_loss=1.2 run@best", "eval_loss=1.2 run@best"},
		{"a :// b", "a :// b"},
		{"registry s3://b at http://127.0.0.1:9000: check bucket", "registry s3://b at http://127.0.0.1:9000: check bucket"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Text(tt.in), "%q", tt.in)
	}
}

func TestSecretsScrubEveryForm(t *testing.T) {
	secret := `se/cr+et=@%:x"\`
	s := NewSecrets(secret, "short", "")
	forms := []string{
		secret,
		url.QueryEscape(secret),
		url.PathEscape(secret),
		strings.ToLower(url.QueryEscape(secret)),
		`se/cr+et=@%:x\"\\`, // Go or JSON quoted
	}
	for _, f := range forms {
		out := s.Scrub("before " + f + " after")
		assert.Equal(t, "before REDACTED after", out, "form %q", f)
	}
	assert.Equal(t, "short stays", s.Scrub("short stays"), "values under MinSecretLen are not scrubbed")
	assert.Equal(t, "x", (*Secrets)(nil).Scrub("x"))
}

func TestFromEnv(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY=")
	t.Setenv("MINIO_ROOT_PASSWORD", "minio-root-pass")
	t.Setenv("MC_HOST_team", "https://trainer:mc%2Fsecret-pw@minio.internal:9000")
	s := FromEnv()
	out := s.Scrub("a wJalrXUtnFEMI/K7MDENG+bPxRfiCY= b wJalrXUtnFEMI%2FK7MDENG%2BbPxRfiCY%3D c minio-root-pass d mc/secret-pw e mc%2Fsecret-pw")
	assert.Equal(t, "a REDACTED b REDACTED c REDACTED d REDACTED e REDACTED", out)
}

// occursIn reports whether secret occurs in what the output may keep
// (then its presence proves nothing).
func occursIn(secret string, kept ...string) bool {
	for _, k := range kept {
		if strings.Contains(k, secret) {
			return true
		}
	}
	return false
}

// FuzzURL: whatever characters a secret holds, neither a URL's userinfo nor
// its query values survive.
func FuzzURL(f *testing.F) {
	f.Add("AKIA", "se/cr+et=@%:x", "bucket", "/prefix")
	f.Add("k", "a#b?c", "h:9000", "")
	f.Add("", "p%zz", "host", "/x?y=1")
	f.Fuzz(func(t *testing.T, user, secret, host, path string) {
		// Shorter secrets can match the punctuation the output itself
		// writes ("&", "?").
		if len(secret) < MinSecretLen || strings.Contains(host+path, "@") {
			return
		}
		u := "s3://" + user + ":" + secret + "@" + host + path
		out := URL(u)
		if !occursIn(secret, "s3://"+Mask+"@"+host+path) {
			require.NotContains(t, out, secret, "userinfo of %q", u)
		}
		q := "https://" + host + "/o?X-Amz-Signature=" + secret
		out = URL(q)
		if !strings.ContainsAny(secret, "&;#") && !occursIn(secret, "https://"+host+"/o?X-Amz-Signature="+Mask) {
			require.NotContains(t, out, secret, "query of %q", q)
		}
	})
}

// FuzzText: a URL with credentials inside a message loses them.
func FuzzText(f *testing.F) {
	f.Add("error: ", "K", "se/cr+et", "bkt/p", ": failed")
	f.Fuzz(func(t *testing.T, before, user, secret, rest, after string) {
		bad := func(s string) bool {
			return strings.ContainsFunc(s, func(r rune) bool { return urlDelim(r) }) || strings.Contains(s, "@")
		}
		if len(secret) < MinSecretLen || bad(secret) || bad(user) || bad(rest) || strings.ContainsFunc(rest, unicode.IsSpace) {
			return
		}
		msg := before + " s3://" + user + ":" + secret + "@" + rest + " " + after
		out := Text(msg)
		if !occursIn(secret, before, after, rest, "s3://", Mask, "@") {
			require.NotContains(t, out, secret, "%q", msg)
		}
	})
}
