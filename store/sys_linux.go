package store

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// processUmask is the process's file mode creation mask. Linux reports it
// in /proc/self/status (since 4.7), which reads it without changing it;
// elsewhere it is read once, by setting it and setting it back.
func processUmask() fs.FileMode {
	if m, ok := procUmask(); ok {
		return m
	}
	return umaskAtStart()
}

func procUmask() (fs.FileMode, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer func() { _ = f.Close() }() // read-only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				return 0, false
			}
			return fs.FileMode(m) & fs.ModePerm, true
		}
	}
	return 0, false
}

var umaskAtStart = sync.OnceValue(func() fs.FileMode {
	m := syscall.Umask(0o077)
	syscall.Umask(m)
	return fs.FileMode(m) & fs.ModePerm
})

// cloneFile makes out share in's extents (copy-on-write), where the file
// system can (btrfs, XFS, bcachefs).
func cloneFile(out, in *os.File) error {
	return withFd(out, func(ofd int) error {
		return withFd(in, func(ifd int) error { return unix.IoctlFileClone(ofd, ifd) })
	})
}

// renameExclAt renames from to to inside d, failing if to exists.
func renameExclAt(d *os.File, from, to string) error {
	err := withFd(d, func(fd int) error {
		return ignoringEINTR(func() error { return unix.Renameat2(fd, from, fd, to, unix.RENAME_NOREPLACE) })
	})
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		// Kernels or file systems without RENAME_NOREPLACE: to has a
		// random name, so a check first leaves no practical race.
		if _, err := lstatAt(d, to); err == nil {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: fs.ErrExist}
		}
		return renameAt(d, from, to)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// changeTime is when fi's inode last changed (a write, chmod, link or unlink).
func changeTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
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
