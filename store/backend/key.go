package backend

import (
	"fmt"
	"strings"
)

// CheckKey reports whether key is a valid object key: slash-separated
// segments of [A-Za-z0-9._-], none empty, none starting with '.', no leading
// or trailing slash. Backends reserve keys whose first segment starts with '.'
// for their own bookkeeping (the local backend's temporary files).
func CheckKey(key string) error {
	if key == "" {
		return fmt.Errorf("invalid object key %q: empty", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" {
			return fmt.Errorf("invalid object key %q: empty segment", key)
		}
		if seg[0] == '.' {
			return fmt.Errorf("invalid object key %q: segment %q starts with '.'", key, seg)
		}
		for _, c := range seg {
			if !IsKeyChar(c) {
				return fmt.Errorf("invalid object key %q: character %q", key, c)
			}
		}
	}
	return nil
}

// IsKeyChar reports whether c may appear in a key segment: an ASCII letter
// or digit, '.', '_' or '-'.
func IsKeyChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}
