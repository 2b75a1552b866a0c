package refs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/object"
)

// independentCanonical recomputes a ref's canonical form the way
// docs/format.md §5 tells a stranger to, with nothing of package refs: decode
// the members, drop "checksum", sort by name, write name and compacted value.
func independentCanonical(t testing.TB, ref []byte) []byte {
	t.Helper()
	var members map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(ref, &members))
	delete(members, "checksum")
	names := make([]string, 0, len(members))
	for n := range members {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`"` + n + `":`)
		require.NoError(t, json.Compact(&buf, members[n]))
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// docBlock returns the fenced code block that follows marker in text.
func docBlock(t *testing.T, text, marker string) string {
	t.Helper()
	re := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(marker) + " -->\n```[a-z]*\n(.*?)\n```")
	m := re.FindStringSubmatch(text)
	require.NotNil(t, m, "docs/format.md has no block after %q", marker)
	return m[1]
}

// TestRefChecksumWorkedExample recomputes the worked example of
// docs/format.md §5 from the document's text alone.
func TestRefChecksumWorkedExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/format.md")
	require.NoError(t, err)
	ref := []byte(docBlock(t, string(doc), "checksum-example:ref"))
	canonical := docBlock(t, string(doc), "checksum-example:canonical")

	assert.Equal(t, canonical, string(independentCanonical(t, ref)), "the documented canonical form follows the documented rules")
	sum := sha256.Sum256([]byte(canonical))
	var stated struct {
		Checksum string `json:"checksum"`
	}
	require.NoError(t, json.Unmarshal(ref, &stated))
	assert.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), stated.Checksum)
	assert.Contains(t, string(doc), "whose SHA-256 is `"+hex.EncodeToString(sum[:])+"`")

	// The implementation agrees, accepts the example, and refuses it with
	// one digit of eval_loss or of the manifest changed.
	members, err := parseRefObject(ref)
	require.NoError(t, err)
	canon, err := canonicalRef(members)
	require.NoError(t, err)
	assert.Equal(t, canonical, string(canon))
	legacy, err := verifyRefData(ref)
	require.NoError(t, err)
	assert.False(t, legacy)
	for _, edit := range [][2]string{{`"eval_loss": 1.42`, `"eval_loss": 1.43`}, {`"3b1f0a`, `"3b1f0b`}} {
		bad := bytes.Replace(ref, []byte(edit[0]), []byte(edit[1]), 1)
		require.NotEqual(t, ref, bad)
		_, err := verifyRefData(bad)
		assert.ErrorContains(t, err, "checksum mismatch", edit[1])
	}

	// The tag example of the same section.
	tag, err := Encode(TagRecord{Version: "500", Tagged: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	assert.Contains(t, string(doc), "`"+string(independentCanonical(t, tag))+"`")
	require.NoError(t, json.Unmarshal(tag, &stated))
	assert.Contains(t, string(doc), "`"+stated.Checksum+"`")
}

// TestEncodeRefVerifies: what writers write verifies, carries the checksum
// the independent reading computes, and decodes to the same value.
func TestEncodeRefVerifies(t *testing.T) {
	mid := object.Hash([]byte("manifest"))
	ep := 0.5
	values := []any{
		Record{Name: "org/run", Version: "100", Manifest: mid, Step: 100, Epoch: &ep,
			Metrics: map[string]float64{"eval_loss": 0.1, "eval_acc": 1e-7}, Base: &BaseRef{Name: "gpt2", Version: "1", Manifest: mid},
			Source: "host:/tmp/<dir> & \"quoted\"\n"},
		TagRecord{Version: "7", Tagged: time.Unix(0, 0).UTC()},
		storedPolicy{KeepLast: 2},
		storedPolicy{},
	}
	for _, v := range values {
		data, err := Encode(v)
		require.NoError(t, err)
		legacy, err := verifyRefData(data)
		require.NoError(t, err, "%s", data)
		assert.False(t, legacy)
		sum := sha256.Sum256(independentCanonical(t, data))
		assert.Contains(t, string(data), `"checksum": "sha256:`+hex.EncodeToString(sum[:])+`"`)
		// White space does not matter: a compacted or re-indented copy verifies.
		var compact, indented bytes.Buffer
		require.NoError(t, json.Compact(&compact, data))
		require.NoError(t, json.Indent(&indented, data, " \r", "\t"))
		for _, variant := range [][]byte{compact.Bytes(), indented.Bytes()} {
			_, err := verifyRefData(variant)
			assert.NoError(t, err, "%s", variant)
		}
	}
	var rec Record
	data, err := Encode(values[0])
	require.NoError(t, err)
	_, err = Decode("refs/org/run/v/100", data, &rec)
	require.NoError(t, err)
	assert.Equal(t, values[0], rec)
}

// TestRefChecksumRules: what makes a ref corrupt, what stays legacy.
func TestRefChecksumRules(t *testing.T) {
	withSum := func(body string) string {
		members, err := parseRefObject([]byte(body))
		require.NoError(t, err)
		sum, err := refChecksum(members)
		require.NoError(t, err)
		return strings.TrimSuffix(body, "}") + `,"checksum":"` + sum + `"}`
	}
	good := withSum(`{"version":"5","tagged":"2026-01-01T00:00:00Z"}`)
	cases := []struct {
		name   string
		ref    string
		legacy bool
		err    string // "" : verifies
	}{
		{"Checked", good, false, ""},
		{"Legacy", `{"version":"5","tagged":"2026-01-01T00:00:00Z"}`, true, ""},
		{"LegacyEmpty", `{}`, true, ""},
		{"MemberOrderIrrelevant", `{"checksum":` + good[strings.Index(good, `"sha256`):len(good)-1] + `,"tagged":"2026-01-01T00:00:00Z","version":"5"}`, false, ""},
		{"UnknownFutureFieldCovered", withSum(`{"version":"5","future":{"b":1,"a":[1, 2]}}`), false, ""},
		{"UnknownFieldEdited", strings.Replace(withSum(`{"version":"5","future":{"b":1}}`), `"b":1`, `"b":2`, 1), false, "checksum mismatch"},
		{"NumberTextMatters", strings.Replace(withSum(`{"version":"5","x":1.0}`), `1.0`, `1`, 1), false, "checksum mismatch"},
		{"VersionEdited", strings.Replace(good, `"5"`, `"6"`, 1), false, "checksum mismatch"},
		{"ChecksumDigitFlipped", good[:len(good)-3] + flipHex(good[len(good)-3]) + good[len(good)-2:], false, "checksum mismatch"},
		{"ChecksumNameFlipped", strings.Replace(good, `"checksum"`, `"checksun"`, 1), false, "damaged"},
		{"ChecksumNameCase", strings.Replace(good, `"checksum"`, `"Checksum"`, 1), false, "damaged"},
		{"UnknownAlgorithm", strings.Replace(good, `sha256:`, `sha512:`, 1), false, "unknown algorithm"},
		{"UpperHex", strings.Replace(good, `sha256:`+good[strings.Index(good, "sha256:")+7:][:4], `sha256:ABCD`, 1), false, "lowercase"},
		{"ChecksumNotString", `{"version":"5","checksum":5}`, false, "not a string"},
		{"EscapedName", `{"vers\u0069on":"5"}`, false, "escapes"},
		{"DuplicateName", `{"version":"5","version":"6"}`, false, "twice"},
		{"TrailingData", `{"version":"5"} {}`, false, "after the object"},
		{"NotAnObject", `["version"]`, false, "not a JSON object"},
		{"Truncated", good[:len(good)-10], false, "not JSON"},
		{"Empty", ``, false, "not JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			legacy, err := verifyRefData([]byte(tc.ref))
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				var v TagRecord
				_, err := Decode("refs/x/t/y", []byte(tc.ref), &v)
				assert.ErrorIs(t, err, ErrCorrupt)
				assert.ErrorContains(t, err, "refs/x/t/y")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.legacy, legacy)
		})
	}
}

func flipHex(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

// FuzzVerifyRef: any bytes either verify or fail, never panic; what
// verifies with a checksum stays verified under any change of white space,
// and no change of one byte turns it into a legacy ref or into a ref that
// verifies while saying something else.
func FuzzVerifyRef(f *testing.F) {
	rec, err := Encode(Record{Name: "run", Version: "1", Manifest: object.Hash(nil), Metrics: map[string]float64{"eval_loss": 1.5}})
	require.NoError(f, err)
	f.Add(rec, 10, byte(1))
	f.Add([]byte(`{"version":"5"}`), 0, byte(0))
	f.Add([]byte(`{"a":{"b":[1,2,{"c":"\u00e9"}]},"checksum":"sha256:00"}`), 3, byte(4))
	f.Fuzz(func(t *testing.T, data []byte, at int, flip byte) {
		if len(data) > MaxSize {
			return
		}
		legacy, err := verifyRefData(data)
		if err != nil || legacy {
			return
		}
		members, err := parseRefObject(data)
		require.NoError(t, err)
		canon, err := canonicalRef(members)
		require.NoError(t, err)
		if len(data) == 0 || flip == 0 {
			return
		}
		changed := bytes.Clone(data)
		i := (at%len(data) + len(data)) % len(data)
		changed[i] ^= flip
		legacy2, err := verifyRefData(changed)
		if err != nil {
			return
		}
		require.False(t, legacy2, "one changed byte made a checked ref legacy: %q", changed)
		m2, err := parseRefObject(changed)
		require.NoError(t, err)
		canon2, err := canonicalRef(m2)
		require.NoError(t, err)
		require.Equal(t, string(canon), string(canon2), "a changed ref verified with other content: %q", changed)
	})
}
