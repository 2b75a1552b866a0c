package hfcache

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultRevision is the revision meant when none is given, as in every
// Hub client.
const DefaultRevision = "main"

// maxPathLen bounds the length of a file path or ref name, in bytes.
const maxPathLen = 4096

// IsCommitHash reports whether s is a full commit hash as Hub clients
// recognize one (REGEX_COMMIT_HASH): exactly 40 lowercase hex digits.
func IsCommitHash(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerHex(s[i]) {
			return false
		}
	}
	return true
}

func isLowerHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// CheckPath rejects a file path that cannot name a file of a snapshot
// safely: empty, longer than 4096 bytes, not UTF-8, absolute, not clean,
// with an empty, "." or ".." segment, a backslash, a control character, or
// a segment that Windows reads as a drive ("C:"). Paths are
// slash-separated and relative to the snapshot folder.
func CheckPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > maxPathLen:
		return fmt.Errorf("path longer than %d bytes", maxPathLen)
	case !utf8.ValidString(p):
		return fmt.Errorf("path %q is not UTF-8", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute", p)
	case strings.Contains(p, `\`):
		return fmt.Errorf("path %q contains a backslash", p)
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return fmt.Errorf("path %q contains a control character", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean", p)
	}
	for _, seg := range strings.Split(p, "/") {
		switch {
		case seg == "." || seg == "..":
			return fmt.Errorf("path %q contains %q", p, seg)
		case len(seg) >= 2 && seg[1] == ':' && (seg[0]|0x20 >= 'a' && seg[0]|0x20 <= 'z'):
			return fmt.Errorf("path %q has a Windows drive segment %q", p, seg)
		}
	}
	return nil
}

// checkRefName accepts a branch or tag name for refs/: a path by
// CheckPath ("main", "v1.0", "refs/pr/1") that does not look like a commit
// hash, which clients would take as one instead of reading the ref.
func checkRefName(name string) error {
	if err := CheckPath(name); err != nil {
		return fmt.Errorf("ref name: %w", err)
	}
	if IsCommitHash(name) {
		return fmt.Errorf("ref name %q is a commit hash", name)
	}
	return nil
}

// isWithin reports whether target is under root (not root itself); both
// are absolute and free of symlinks.
func isWithin(root, target string) bool {
	rel, err := filepath.Rel(root, target)
	return err == nil && rel != "." && filepath.IsLocal(rel)
}

// showPath quotes p for an error message if it holds characters a
// terminal would not print as themselves.
func showPath(p string) string {
	if !utf8.ValidString(p) || strings.IndexFunc(p, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) >= 0 {
		return strconv.Quote(p)
	}
	return p
}
