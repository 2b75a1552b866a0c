package store

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// processUmask is the process's file mode creation mask, read once (by
// setting it and setting it back: macOS has no way to only read it).
func processUmask() fs.FileMode { return umaskAtStart() }

var umaskAtStart = sync.OnceValue(func() fs.FileMode {
	m := syscall.Umask(0o077)
	syscall.Umask(m)
	return fs.FileMode(m) & fs.ModePerm
})

// cloneFile is not used on macOS (clonefile creates its target itself):
// linking falls back to a hard link or a copy.
func cloneFile(out, in *os.File) error { return errors.ErrUnsupported }

// renameExclAt renames from to to inside d, failing if to exists.
func renameExclAt(d *os.File, from, to string) error {
	err := withFd(d, func(fd int) error {
		return ignoringEINTR(func() error { return unix.RenameatxNp(fd, from, fd, to, unix.RENAME_EXCL) })
	})
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// changeTime is when fi's inode last changed (a write, chmod, link or unlink).
func changeTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctimespec.Unix())
	}
	return fi.ModTime()
}

// linkCount is fi's number of hard links (1 where unknown).
func linkCount(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}
