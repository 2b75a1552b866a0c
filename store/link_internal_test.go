package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSealTrusts(t *testing.T) {
	now := time.Now()
	st := stamp{Dev: 1, Ino: 2, Size: 3, MtimeNs: 4, CtimeNs: 5}
	for _, tc := range []struct {
		name string
		seal seal
		now  stamp
		want bool
	}{
		{"unchanged inode", seal{st, now.Add(-time.Minute)}, st, true},
		{"ctime changed (a write that restored the mtime, a chmod, a link)", seal{st, now}, stamp{1, 2, 3, 4, 6}, false},
		{"mtime changed", seal{st, now}, stamp{1, 2, 3, 7, 5}, false},
		{"size changed", seal{st, now}, stamp{1, 2, 8, 4, 5}, false},
		{"another inode", seal{st, now}, stamp{1, 9, 3, 4, 5}, false},
		{"another device", seal{st, now}, stamp{9, 2, 3, 4, 5}, false},
		{"hashed too long ago", seal{st, now.Add(-sealMaxAge - time.Minute)}, st, false},
		{"hashed in the future", seal{st, now.Add(time.Hour)}, st, false},
	} {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, tc.seal.trusts(tc.now)) })
	}
}

func TestSealRoundTrip(t *testing.T) {
	s := seal{stamp{1, 2, 3, 4, 5}, time.Unix(0, 1_700_000_000_123_456_789)}
	got, ok := parseSeal([]byte(formatSeal(s)))
	assert.True(t, ok)
	assert.Equal(t, s.stamp, got.stamp)
	assert.True(t, s.verified.Equal(got.verified))
	for _, bad := range []string{"", "ckpt-seal/2 1 2 3 4 5 6\n", "ckpt-seal/1 1 2 3\n", "ckpt-seal/1 a b c d e f\n"} {
		_, ok := parseSeal([]byte(bad))
		assert.False(t, ok, "%q", bad)
	}
}

func TestParseEntry(t *testing.T) {
	key := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	sum := "00112233445566778899aabbccddeeff"
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{key, true},
		{key + "-644", true},
		{key + "-444-x1" + sum, true},
		{key + "-1644-x1" + sum, false},
		{key + "-999", false},
		{key + "-444-x2" + sum, false},
		{key + "-444-x1" + sum[:30], false},
		{key[:63], false},
		{"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", false},
		{key + "-444-x1" + sum + "-1", false},
	} {
		e, ok := parseEntry(tc.name)
		assert.Equal(t, tc.ok, ok, tc.name)
		if ok {
			assert.Equal(t, tc.name, e.String(), "names round-trip")
		}
	}
}

// FuzzParseEntry: any name in a cache folder (the cache may be damaged)
// parses without panicking, and what parses names itself again.
func FuzzParseEntry(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-444-x100112233445566778899aabbccddeeff")
	f.Add("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	f.Add("x-1-2")
	f.Fuzz(func(t *testing.T, name string) {
		if e, ok := parseEntry(name); ok && e.String() != name {
			t.Fatalf("%q parses to %q", name, e.String())
		}
	})
}

// FuzzParseSeal: any seal file (the cache may be damaged) parses without
// panicking, and what parses formats to a line that parses the same.
func FuzzParseSeal(f *testing.F) {
	f.Add([]byte("ckpt-seal/1 1 2 3 4 5 6\n"))
	f.Add([]byte("ckpt-seal/1 -1 2 3 4 5 6"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, ok := parseSeal(b)
		if !ok {
			return
		}
		again, ok := parseSeal([]byte(formatSeal(s)))
		if !ok || again.stamp != s.stamp || !again.verified.Equal(s.verified) {
			t.Fatalf("%q does not round-trip", b)
		}
	})
}
