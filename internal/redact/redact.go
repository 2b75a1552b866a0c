// Package redact keeps credentials out of everything ckpt prints.
//
// Three layers, from the most to the least specific:
//
//   - URL redacts one URL (or URL-like string) by parsing it: the userinfo
//     ("KEY:SECRET@") is replaced by "REDACTED@", query values by
//     "REDACTED", the fragment by "REDACTED". Secrets may hold any character
//     ('/', '@', ':', '?', '#', '%', '+', '='), so the userinfo is taken to
//     end at the LAST '@' of the string: a URL whose path or query holds an
//     '@' loses more than its userinfo, never less; one with a '?' or '#'
//     before its last '@' is masked whole after the scheme. Query keys are
//     unescaped with net/url and kept when they are plain names.
//   - Text finds the URLs in a free text (an error message) and redacts each
//     with URL; outside URLs, it redacts the values of key=value pairs whose
//     key names a credential (X-Amz-Signature, X-Amz-Credential,
//     X-Amz-Security-Token, Signature, Credential, token, sig, secret,
//     password, ...).
//   - Secrets holds the values of the secret environment variables (AWS,
//     MinIO, mc) and Scrub removes them, in every encoding ckpt or its
//     libraries could print them in (raw, %-escaped in either case, Go- and
//     JSON-quoted), from any text. It is the last line of defence: it does
//     not need to know where a secret came from.
package redact

import (
	"encoding/json"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Mask replaces what is redacted.
const Mask = "REDACTED"

// URL returns u with its userinfo, query values and fragment replaced by
// Mask (see the package documentation). A string without "://" is treated
// as "userinfo@host/path?query" after the same rules. A URL with nothing to
// redact is returned unchanged.
func URL(u string) string {
	scheme, rest := splitScheme(u)
	userinfo := false
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		if qf := strings.IndexAny(rest, "?#"); qf >= 0 && qf < at {
			// Either the userinfo holds a '?' or '#', or a query value or
			// the fragment holds an '@': no part of it is known to be safe.
			return scheme + Mask
		}
		rest, userinfo = rest[at+1:], true
	} else if scheme != "" && !plausibleHost(rest) {
		// "KEY:SECRET" cut before its '@' (a message quoting part of a
		// URL): a host's port is a number.
		return scheme + Mask
	}
	body, query, fragment, hasQuery, hasFragment := splitQueryFragment(rest)
	if !userinfo && !hasQuery && !hasFragment {
		return u
	}
	var b strings.Builder
	b.WriteString(scheme)
	if userinfo {
		b.WriteString(Mask + "@")
	}
	b.WriteString(body)
	if hasQuery {
		b.WriteByte('?')
		b.WriteString(redactQuery(query))
	}
	if hasFragment {
		b.WriteByte('#')
		if fragment != "" {
			b.WriteString(Mask)
		}
	}
	return b.String()
}

// plausibleHost reports whether the authority that starts rest (up to the
// first '/', '?' or '#') can be a host with an optional numeric port, as
// opposed to the "user:password" of a URL whose '@' is missing.
func plausibleHost(rest string) bool {
	auth := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		auth = rest[:i]
	}
	// Punctuation of the sentence around a URL: "at http://host:9000: ...".
	auth = strings.TrimRight(auth, ":.,;)")
	if strings.HasPrefix(auth, "[") { // IPv6 literal
		end := strings.IndexByte(auth, ']')
		if end < 0 {
			return false
		}
		auth = auth[end+1:]
		if auth == "" {
			return true
		}
		if auth[0] != ':' {
			return false
		}
		return allDigits(auth[1:])
	}
	_, port, hasPort := strings.Cut(auth, ":")
	return !hasPort || allDigits(port)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// splitScheme cuts "scheme://" off u; scheme is "" when u has none.
func splitScheme(u string) (scheme, rest string) {
	i := strings.Index(u, "://")
	if i < 0 || !isScheme(u[:i]) {
		return "", u
	}
	return u[:i+3], u[i+3:]
}

// isScheme reports whether s is a URL scheme: a letter, then letters,
// digits, '+', '-' or '.'.
func isScheme(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isSchemeChar(s[i]) {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isSchemeChar(c byte) bool {
	return isLetter(c) || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

// splitQueryFragment splits "host/path?query#fragment" (userinfo already
// removed) at the first '?' or '#'.
func splitQueryFragment(s string) (body, query, fragment string, hasQuery, hasFragment bool) {
	i := strings.IndexAny(s, "?#")
	if i < 0 {
		return s, "", "", false, false
	}
	body, s = s[:i], s[i:]
	if s[0] == '?' {
		hasQuery = true
		s = s[1:]
		if j := strings.IndexByte(s, '#'); j >= 0 {
			query, fragment, hasFragment = s[:j], s[j+1:], true
		} else {
			query = s
		}
		return body, query, fragment, hasQuery, hasFragment
	}
	return body, "", s[1:], false, true
}

// redactQuery keeps a query's keys (when they are plain names once
// unescaped) and replaces every value. Bare keys are kept only when they are
// S3 sub-resources ("?uploads", "?location"): a bare token could be a
// credential. Pairs keep their order.
func redactQuery(q string) string {
	if q == "" {
		return ""
	}
	var parts []string
	for _, pair := range strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, hasValue := strings.Cut(pair, "=")
		if unescaped, err := url.QueryUnescape(k); err == nil {
			k = unescaped
		}
		if !plainKey(k) {
			k = Mask
		}
		switch {
		case !hasValue && s3SubResources[k]:
			parts = append(parts, k)
		case !hasValue:
			parts = append(parts, Mask)
		case v == "":
			parts = append(parts, k+"=")
		default:
			parts = append(parts, k+"="+Mask)
		}
	}
	return strings.Join(parts, "&")
}

// plainKey reports whether a query key is a short name worth keeping.
func plainKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(isLetter(c) || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// s3SubResources are bare query keys of S3 requests, kept in messages.
var s3SubResources = map[string]bool{
	"acl": true, "cors": true, "delete": true, "encryption": true, "legal-hold": true,
	"lifecycle": true, "location": true, "notification": true, "object-lock": true,
	"policy": true, "replication": true, "retention": true, "tagging": true,
	"uploads": true, "versioning": true, "versions": true,
}

// credentialKeys name credentials in key=value pairs outside URLs (compared
// in lower case). A bare "key" is not one of them: messages say "want
// key=value". Inside URLs every query value is redacted anyway.
var credentialKeys = map[string]bool{
	"x-amz-signature": true, "x-amz-credential": true, "x-amz-security-token": true,
	"signature": true, "credential": true, "sig": true, "token": true, "access_token": true,
	"session_token": true, "security_token": true, "apikey": true, "api_key": true,
	"secret": true, "secret_key": true, "secretkey": true, "secret_access_key": true,
	"aws_secret_access_key": true, "aws_session_token": true, "password": true, "passwd": true,
	"pwd": true, "awsaccesskeyid": true, "minio_root_password": true, "minio_secret_key": true,
}

// urlDelims end a URL inside a text: white space, quotes and angle brackets.
func urlDelim(r rune) bool {
	return unicode.IsSpace(r) || r == '"' || r == '\'' || r == '`' || r == '<' || r == '>'
}

// Text redacts every URL in s with URL, and the values of credential
// key=value pairs outside URLs.
func Text(s string) string {
	if !strings.Contains(s, "://") && !strings.Contains(s, "=") {
		return s
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			b.WriteString(redactPairs(rest))
			break
		}
		start := i
		for start > 0 && isSchemeChar(rest[start-1]) {
			start--
		}
		for start < i && !isLetter(rest[start]) {
			start++
		}
		if start == i { // "://" without a scheme: not a URL
			b.WriteString(redactPairs(rest[:i+3]))
			rest = rest[i+3:]
			continue
		}
		end := i + 3 + strings.IndexFunc(rest[i+3:], urlDelim)
		if end < i+3 {
			end = len(rest)
		}
		b.WriteString(redactPairs(rest[:start]))
		b.WriteString(URL(rest[start:end]))
		rest = rest[end:]
	}
	return b.String()
}

// redactPairs masks the values of key=value pairs whose key names a
// credential, in a text without URLs. Pairs are separated by white space,
// '&', ',' or ';'; the key may be preceded by punctuation ("?token=").
func redactPairs(s string) string {
	if !strings.Contains(s, "=") {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			b.WriteString(s)
			break
		}
		keyStart := eq
		for keyStart > 0 && isKeyChar(s[keyStart-1]) {
			keyStart--
		}
		key := strings.ToLower(s[keyStart:eq])
		b.WriteString(s[:eq+1])
		s = s[eq+1:]
		if !credentialKeys[key] {
			continue
		}
		end := strings.IndexFunc(s, func(r rune) bool {
			return unicode.IsSpace(r) || r == '&' || r == ',' || r == ';' || r == '"' || r == '\''
		})
		if end < 0 {
			end = len(s)
		}
		if end > 0 {
			b.WriteString(Mask)
		}
		s = s[end:]
	}
	return b.String()
}

func isKeyChar(c byte) bool {
	return isLetter(c) || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// SecretEnv names the environment variables whose values are secrets:
// the AWS and MinIO secret keys, session tokens and passwords. MC_HOST_*
// variables (mc aliases, "https://KEY:SECRET@host") count too.
var SecretEnv = []string{
	"AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
	"MINIO_ROOT_PASSWORD", "MINIO_SECRET_KEY", "MINIO_SESSION_TOKEN",
}

// MinSecretLen is the shortest value Secrets scrubs: shorter values would
// mangle every line they happen to occur in (and are no real secret keys;
// MinIO wants at least 8 characters, AWS has 40).
const MinSecretLen = 6

// Secrets scrubs known secret values from text.
type Secrets struct {
	r *strings.Replacer // nil: nothing to scrub
}

// FromEnv collects the values of SecretEnv and the secrets of MC_HOST_*
// aliases from the environment.
func FromEnv() *Secrets {
	var values []string
	for _, name := range SecretEnv {
		values = append(values, os.Getenv(name))
	}
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "MC_HOST_") {
			values = append(values, userinfoSecret(value))
		}
	}
	return NewSecrets(values...)
}

// userinfoSecret is the password of "scheme://USER:PASSWORD@host" (the
// userinfo ends at the last '@'), or "".
func userinfoSecret(u string) string {
	_, rest := splitScheme(u)
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	if unescaped, err := url.PathUnescape(pw); err == nil {
		return unescaped
	}
	return pw
}

// NewSecrets scrubs the given values (those shorter than MinSecretLen are
// ignored) in each form they could be printed in.
func NewSecrets(values ...string) *Secrets {
	seen := map[string]bool{}
	var forms []string
	add := func(f string) {
		if len(f) >= MinSecretLen && !seen[f] {
			seen[f] = true
			forms = append(forms, f)
		}
	}
	for _, v := range values {
		if len(v) < MinSecretLen {
			continue
		}
		add(v)
		for _, esc := range []string{url.QueryEscape(v), url.PathEscape(v), userinfoEscape(v)} {
			add(esc)
			add(lowerHex(esc))
		}
		q := strconv.Quote(v)
		add(q[1 : len(q)-1])
		if j, err := json.Marshal(v); err == nil {
			add(string(j[1 : len(j)-1]))
		}
	}
	if len(forms) == 0 {
		return &Secrets{}
	}
	// Longer forms first: a form may contain another.
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, Mask)
	}
	return &Secrets{r: strings.NewReplacer(pairs...)}
}

// userinfoEscape is v as net/url writes a password in a URL's userinfo.
func userinfoEscape(v string) string {
	s := url.UserPassword("", v).String()
	return strings.TrimPrefix(s, ":")
}

// lowerHex writes the hex digits of %-escapes in lower case.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			for j := i + 1; j <= i+2; j++ {
				if b[j] >= 'A' && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
		}
	}
	return string(b)
}

// Scrub replaces every known secret in s by Mask.
func (s *Secrets) Scrub(text string) string {
	if s == nil || s.r == nil {
		return text
	}
	return s.r.Replace(text)
}
