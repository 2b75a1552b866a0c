//go:build !linux && !darwin

package store

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// processUmask: other systems are treated as having the common umask 022
// (Windows has none; its files' permissions come from ACLs).
func processUmask() fs.FileMode { return 0o022 }

// cloneFile is not supported here: linking falls back to a hard link or a
// copy.
func cloneFile(out, in *os.File) error { return errors.ErrUnsupported }

// renameExclAt renames from to to inside d, failing if to exists (checked
// first: to has a random name).
func renameExclAt(d *os.File, from, to string) error {
	if _, err := lstatAt(d, to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: fs.ErrExist}
	}
	return renameAt(d, from, to)
}

// changeTime falls back to the modification time.
func changeTime(fi fs.FileInfo) time.Time { return fi.ModTime() }

// linkCount is unknown here: every file counts as linked once.
func linkCount(fi fs.FileInfo) uint64 { return 1 }
