package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ckptdev/ckpt/layout"
)

// tree maps every regular file under a folder (slash-separated relative
// path) to its bytes.
type tree map[string][]byte

// readTree reads dir; a missing dir is (nil, false, nil). Anything but
// folders and regular files (a symlink, a device) is an error: a pull
// writes neither.
func readTree(dir string) (tree, bool, error) {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	out := tree{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is a %s, not a regular file", p, d.Type())
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		return nil, true, err
	}
	return out, true, nil
}

// equal reports whether two trees hold the same files with the same bytes.
func (t tree) equal(o tree) bool { return t.diff(o) == "" }

// diff describes how got differs from t (the expectation); "" if equal.
func (t tree) diff(got tree) string {
	var missing, extra, changed []string
	for p, want := range t {
		have, ok := got[p]
		switch {
		case !ok:
			missing = append(missing, p)
		case !bytes.Equal(want, have):
			changed = append(changed, fmt.Sprintf("%s (%d bytes, want %d)", p, len(have), len(want)))
		}
	}
	for p := range got {
		if _, ok := t[p]; !ok {
			extra = append(extra, p)
		}
	}
	var parts []string
	for _, s := range []struct {
		what  string
		paths []string
	}{{"missing", missing}, {"unexpected", extra}, {"different", changed}} {
		if len(s.paths) > 0 {
			sort.Strings(s.paths)
			parts = append(parts, s.what+": "+strings.Join(s.paths, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// inheritedRoles are the roles a pull takes from the base when the
// checkpoint has no file of that role (docs/format.md, section 7).
var inheritedRoles = []layout.Role{layout.RoleConfig, layout.RoleGenerationConfig, layout.RoleTokenizer}

// expectedPull is what `ckpt pull` of a checkpoint pushed from src (with
// --base the model pushed from base, if base != "") writes: its runnable
// files (all of them with full), plus every file of an inherited role it
// has none of, from the base. It is computed from the source folders by
// the rules of docs/format.md, independently of the store code.
func expectedPull(src, base string, full bool) (tree, error) {
	own, _, err := readTree(src)
	if err != nil {
		return nil, err
	}
	out := tree{}
	have := map[layout.Role]bool{}
	for p, data := range own {
		role := layout.Classify(p)
		if full || role.Runnable() {
			out[p] = data
			have[role] = true
		}
	}
	if base == "" {
		return out, nil
	}
	bt, _, err := readTree(base)
	if err != nil {
		return nil, err
	}
	for _, role := range inheritedRoles {
		if have[role] {
			continue
		}
		for p, data := range bt {
			if _, taken := out[p]; !taken && layout.Classify(p) == role {
				out[p] = data
			}
		}
	}
	return out, nil
}

// removeAll removes a folder a pull or cache wrote, read-only files and
// folders included.
func removeAll(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	// Make every folder writable and try again.
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
