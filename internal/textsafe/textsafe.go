// Package textsafe makes text that comes from outside ckpt (file names,
// tensor names, JSON keys, folder paths typed by a user) safe to print on a
// terminal and unambiguous to read back.
//
// One rule, used by every command that prints such a name: a name made only
// of printable characters (strconv.IsPrint: letters, marks, numbers,
// punctuation, symbols and the ASCII space), valid UTF-8, and holding
// neither a double quote nor a backslash, is printed as it is; any other
// name is printed Go-quoted (strconv.Quote), so ESC, newline, tab, CR, other
// control and format characters and invalid bytes appear as escapes such as
// \x1b, \n and \xff. A printed name that starts with a double quote is
// therefore always a quoted one.
package textsafe

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Name returns s ready to print: s itself when it is plain, else s
// Go-quoted (see the package documentation).
func Name(s string) string {
	if Plain(s) {
		return s
	}
	return strconv.Quote(s)
}

// Names applies Name to each of names, in a new slice.
func Names(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = Name(n)
	}
	return out
}

// Plain reports whether s prints as itself: valid UTF-8, only printable
// characters, no double quote and no backslash.
func Plain(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == '"' || c == '\\' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || !strconv.IsPrint(r) {
			return false
		}
		i += size
	}
	return true
}

// Message makes a whole message (several lines, names already escaped by
// Name where the code knew them) safe for a terminal: newlines and tabs are
// kept, every other control character (C0, DEL, C1), Unicode format
// character (bidirectional overrides and the like) and invalid byte is
// written as an escape (see escapeRune; a JSON document stays valid JSON). It is the last line of defence for names that
// reach a message unescaped.
func Message(s string) string {
	return escapeControls(s, true)
}

// escapeControls escapes what a terminal would interpret, keeping newlines
// and tabs when keepLayout.
func escapeControls(s string, keepLayout bool) string {
	if messagePlain(s, keepLayout) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if keepLayout && (c == '\n' || c == '\t') || c >= 0x20 && c != 0x7f {
				b.WriteByte(c)
			} else {
				b.WriteString(escapeRune(rune(c)))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x` + strconv.FormatUint(uint64(c)>>4, 16) + strconv.FormatUint(uint64(c)&0xf, 16))
		case !strconv.IsGraphic(r):
			b.WriteString(escapeRune(r))
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Line is Message for text that must stay on one line (a note, a value in
// a table): newlines and tabs are escaped too.
func Line(s string) string {
	return escapeControls(s, false)
}

func messagePlain(s string, keepLayout bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && !(keepLayout && (c == '\n' || c == '\t')) || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || !strconv.IsGraphic(r) {
			return false
		}
		i += size
	}
	return true
}

// escapeRune writes r as an escape: a C0 control as Go writes it (\x1b,
// \n, \r), anything else as \uXXXX (a UTF-16 surrogate pair beyond the
// BMP), which Go and JSON both read back, so that a JSON document passed
// through Message stays valid JSON (encoding/json leaves DEL, C1 and format
// characters raw).
func escapeRune(r rune) string {
	if r < 0x20 {
		q := strconv.QuoteRune(r)
		return q[1 : len(q)-1]
	}
	if r > 0xffff {
		r1, r2 := utf16.EncodeRune(r)
		return fmt.Sprintf(`\u%04x\u%04x`, r1, r2)
	}
	return fmt.Sprintf(`\u%04x`, r)
}
