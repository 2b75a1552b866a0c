package textsafe

import (
	"encoding/json"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"model.safetensors", "model.safetensors"},
		{"deep/er/vocab.json", "deep/er/vocab.json"},
		{"with space.txt", "with space.txt"},
		{"日本語.json", "日本語.json"},
		{"evil\x1b[2Jname.txt", `"evil\x1b[2Jname.txt"`},
		{"new\nline.json", `"new\nline.json"`},
		{"tab\there", `"tab\there"`},
		{"cr\rhere", `"cr\rhere"`},
		{"del\x7f", `"del\x7f"`},
		{"bad\xff.json", `"bad\xff.json"`},
		{`a\b.json`, `"a\\b.json"`},
		{`say "hi"`, `"say \"hi\""`},
		{"rtl\u202eoverride", `"rtl\u202eoverride"`},
		{"c1\u0085next", `"c1\u0085next"`},
		{"", ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Name(tt.in), "%q", tt.in)
	}
	assert.Equal(t, []string{"a", `"b\n"`}, Names([]string{"a", "b\n"}))
}

func TestMessage(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain message\nsecond line\twith tab", "plain message\nsecond line\twith tab"},
		{"clear \x1b[2J screen", `clear \x1b[2J screen`},
		{"return\rhere", `return\rhere`},
		{"bell\a", `bell\a`},
		{"bad \xff byte", `bad \xff byte`},
		{"bidi \u202e override", `bidi \u202e override`},
		{"c1 \u009b csi", `c1 \u009b csi`},
		{"non-breaking\u00a0space ü", "non-breaking\u00a0space ü"},
		{"del\x7f", `del\u007f`},
		{"tag \U000e0001 char", `tag \udb40\udc01 char`},
		{"zero\u200bwidth", `zero\u200bwidth`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Message(tt.in), "%q", tt.in)
	}
}

// A JSON document passed through Message is still JSON, with the same
// values: encoding/json writes DEL, C1 and format characters raw.
func TestMessageKeepsJSONValid(t *testing.T) {
	names := []string{"del\x7f", "c1\u0085", "bidi\u202e", "tag\U000e0001", "zw\u200b", "plain"}
	doc, err := json.Marshal(names)
	require.NoError(t, err)
	var back []string
	require.NoError(t, json.Unmarshal([]byte(Message(string(doc))), &back))
	assert.Equal(t, names, back)
}

func TestLine(t *testing.T) {
	assert.Equal(t, `a\nb\tc \x1b[0m`, Line("a\nb\tc \x1b[0m"))
	assert.Equal(t, "plain line", Line("plain line"))
}

// FuzzName: a printed name never carries a control character, is the name
// itself when plain, and unquotes back to the name otherwise.
func FuzzName(f *testing.F) {
	for _, s := range []string{"a.json", "evil\x1b[2J", "new\nline", `a\b`, "bad\xff", `"q"`, "\u202e", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Name(s)
		require.True(t, utf8.ValidString(out))
		for _, r := range out {
			require.True(t, strconv.IsPrint(r), "%q printed as %q", s, out)
		}
		if Plain(s) {
			require.Equal(t, s, out)
			return
		}
		back, err := strconv.Unquote(out)
		require.NoError(t, err)
		require.Equal(t, s, back)
	})
}

// FuzzMessage: a message keeps its newlines and tabs and nothing else that
// a terminal would interpret.
func FuzzMessage(f *testing.F) {
	for _, s := range []string{"a\nb", "\x1b[31mred", "\r", "\xff", "\u202e", "\u0085"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Message(s)
		require.True(t, utf8.ValidString(out))
		for _, r := range out {
			require.True(t, r == '\n' || r == '\t' || strconv.IsGraphic(r), "%q printed as %q", s, out)
		}
		line := Line(s)
		require.True(t, utf8.ValidString(line))
		for _, r := range line {
			require.True(t, strconv.IsGraphic(r), "%q printed as line %q", s, line)
		}
	})
}
