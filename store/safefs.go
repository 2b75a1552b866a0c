package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Safe writing inside a folder ckpt made (a pull's build folder, beside the
// target): the folder is opened once, without following a link, and checked
// to belong to the user and to be writable by nobody else; every file and
// subfolder in it is then reached relative to that handle, one path
// component at a time, and a symbolic link is never followed, wherever it
// was planted. The primitives (openAt, mkdirAt, ...) are in safefs_unix.go
// and, for other systems, safefs_other.go.

type inodeKind int

const (
	kindOther inodeKind = iota
	kindFile
	kindDir
	kindSymlink
)

// inode is what ckpt checks of a file or folder before trusting it.
type inode struct {
	kind     inodeKind
	perm     fs.FileMode
	uid      int // -1 where the system has no owners to check
	nlink    uint64
	size     int64
	dev, ino uint64
}

// errUntrusted marks a folder or file ckpt will not write into or read
// from: a link, not ours, or writable by others.
var errUntrusted = errors.New("not a private folder of this user")

// checkPrivateDir refuses d unless it is a real folder, owned by the
// current user and writable by nobody else.
func checkPrivateDir(d *os.File) error {
	in, err := statFile(d)
	if err != nil {
		return err
	}
	switch {
	case in.kind != kindDir:
		return fmt.Errorf("%s: %w (not a folder)", d.Name(), errUntrusted)
	case in.uid >= 0 && in.uid != currentUID():
		return fmt.Errorf("%s: %w (owned by uid %d)", d.Name(), errUntrusted, in.uid)
	case in.perm&0o022 != 0:
		return fmt.Errorf("%s: %w (mode %04o: others can write it)", d.Name(), errUntrusted, in.perm)
	}
	return nil
}

// openPrivateDir opens the folder name in parent if it is one ckpt may
// use: a real folder (not a link), the user's, writable by nobody else.
func openPrivateDir(parent *os.File, name string) (*os.File, error) {
	d, err := openDirAt(parent, name)
	if err != nil {
		return nil, err
	}
	if err := checkPrivateDir(d); err != nil {
		_ = d.Close() // a directory handle: nothing buffered
		return nil, err
	}
	return d, nil
}

// openParentOf opens the folder holding rel (slash-separated, already
// checked by CheckRelPath) under root, making missing folders (mode 0777
// less the umask) when create is set, and returns it with rel's last
// component. No component may be a link.
func openParentOf(root *os.File, rel string, create bool) (*os.File, string, error) {
	segs := strings.Split(rel, "/")
	d := root
	for _, seg := range segs[:len(segs)-1] {
		next, err := openDirAt(d, seg)
		if errors.Is(err, fs.ErrNotExist) && create {
			if err = mkdirAt(d, seg, 0o777); err == nil || errors.Is(err, fs.ErrExist) {
				next, err = openDirAt(d, seg)
			}
		}
		if d != root {
			_ = d.Close() // a directory handle: nothing buffered
		}
		if err != nil {
			return nil, "", err
		}
		d = next
	}
	if d == root {
		// The caller closes what it gets: hand out a handle of its own.
		dup, err := openDirAt(root, ".")
		if err != nil {
			return nil, "", err
		}
		d = dup
	}
	return d, segs[len(segs)-1], nil
}

// openRel opens the regular file rel under root with flag (O_CREATE makes
// missing folders on the way); neither it nor any folder on the way may be
// a link, and it must be a regular file linked only once (so that writing
// it cannot write some other file).
func openRel(root *os.File, rel string, flag int, perm fs.FileMode) (*os.File, error) {
	dir, name, err := openParentOf(root, rel, flag&os.O_CREATE != 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = dir.Close() }() // a directory handle: nothing buffered
	f, err := openAt(dir, name, flag, perm)
	if err != nil {
		return nil, err
	}
	in, err := statFile(f)
	if err == nil && (in.kind != kindFile || in.nlink != 1) {
		err = fmt.Errorf("%s: %w (not a regular file linked once)", f.Name(), errUntrusted)
	}
	if err != nil {
		_ = f.Close() // giving up on this file: the error above is the one to report
		return nil, err
	}
	return f, nil
}

// checkResumeTree checks that the folder d holds nothing but folders on
// the way to the files in want and regular files of want, each the user's
// and linked once: what an interrupted pull of the same selection leaves.
func checkResumeTree(d *os.File, prefix string, want map[string]bool) error {
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, name := range names {
		rel := prefix + name
		in, err := lstatAt(d, name)
		if err != nil {
			return err
		}
		if in.uid >= 0 && in.uid != currentUID() {
			return fmt.Errorf("%s: %w (owned by uid %d)", rel, errUntrusted, in.uid)
		}
		switch {
		case in.kind == kindFile && want[rel] && in.nlink == 1:
		case in.kind == kindDir && wantsUnder(want, rel+"/"):
			sub, err := openDirAt(d, name)
			if err != nil {
				return err
			}
			err = checkResumeTree(sub, rel+"/", want)
			_ = sub.Close() // a directory handle: nothing buffered
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: %w (unexpected here)", rel, errUntrusted)
		}
	}
	return nil
}

func wantsUnder(want map[string]bool, dir string) bool {
	for p := range want {
		if strings.HasPrefix(p, dir) {
			return true
		}
	}
	return false
}
