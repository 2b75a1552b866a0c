//go:build !linux && !darwin

package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// The primitives of safefs.go where openat and O_NOFOLLOW are not used: by
// path, with a check that the last component is not a link just before
// each use. Owners are not checked (Windows protects files by ACLs), and
// there are no advisory locks.

var errIsLink = errors.New("is a symbolic link or not a regular file or folder")

func inodeOfInfo(fi fs.FileInfo) inode {
	in := inode{perm: fi.Mode().Perm(), uid: -1, nlink: linkCount(fi), size: fi.Size()}
	switch {
	case fi.Mode().IsRegular():
		in.kind = kindFile
	case fi.IsDir():
		in.kind = kindDir
	case fi.Mode()&fs.ModeSymlink != 0:
		in.kind = kindSymlink
	default:
		in.kind = kindOther
	}
	return in
}

func statFile(f *os.File) (inode, error) {
	fi, err := f.Stat()
	if err != nil {
		return inode{}, err
	}
	return inodeOfInfo(fi), nil
}

func lstatAt(d *os.File, name string) (inode, error) {
	fi, err := os.Lstat(filepath.Join(d.Name(), name))
	if err != nil {
		return inode{}, err
	}
	return inodeOfInfo(fi), nil
}

func openAt(d *os.File, name string, flag int, perm fs.FileMode) (*os.File, error) {
	p := filepath.Join(d.Name(), name)
	if in, err := lstatAt(d, name); err == nil && in.kind != kindFile && in.kind != kindDir {
		return nil, &os.PathError{Op: "open", Path: p, Err: errIsLink}
	}
	return os.OpenFile(p, flag, perm)
}

func openDirAt(d *os.File, name string) (*os.File, error) {
	p := filepath.Join(d.Name(), name)
	in, err := lstatAt(d, name)
	if err != nil {
		return nil, err
	}
	if in.kind != kindDir {
		return nil, &os.PathError{Op: "open", Path: p, Err: errIsLink}
	}
	return os.Open(p)
}

func mkdirAt(d *os.File, name string, perm fs.FileMode) error {
	return os.Mkdir(filepath.Join(d.Name(), name), perm)
}

func linkAt(src string, d *os.File, name string) error {
	return os.Link(src, filepath.Join(d.Name(), name))
}

func renameAt(d *os.File, from, to string) error {
	return os.Rename(filepath.Join(d.Name(), from), filepath.Join(d.Name(), to))
}

func removeAt(d *os.File, name string) error {
	return os.Remove(filepath.Join(d.Name(), name))
}

func tryLock(f *os.File) (bool, error) { return true, nil }

func currentUID() int { return -1 }

func openFileNoFollow(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: path, Err: errIsLink}
	}
	return os.Open(path)
}
