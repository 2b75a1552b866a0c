//go:build linux || darwin

package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The primitives of safefs.go on Linux and macOS: everything inside a folder
// is reached relative to the folder's descriptor (openat, mkdirat, linkat,
// renameat), and never through a symbolic link (O_NOFOLLOW,
// AT_SYMLINK_NOFOLLOW).

// withFd runs fn with f's descriptor, keeping f open meanwhile.
func withFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func inodeOf(st *unix.Stat_t) inode {
	in := inode{
		perm:  fs.FileMode(st.Mode) & fs.ModePerm,
		uid:   int(st.Uid),
		nlink: uint64(st.Nlink),
		size:  st.Size,
		dev:   uint64(st.Dev),
		ino:   uint64(st.Ino),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		in.kind = kindFile
	case unix.S_IFDIR:
		in.kind = kindDir
	case unix.S_IFLNK:
		in.kind = kindSymlink
	default:
		in.kind = kindOther
	}
	return in
}

// statFile describes the open file f.
func statFile(f *os.File) (inode, error) {
	var st unix.Stat_t
	if err := withFd(f, func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
		return inode{}, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return inodeOf(&st), nil
}

// lstatAt describes name in d without following a link.
func lstatAt(d *os.File, name string) (inode, error) {
	var st unix.Stat_t
	err := withFd(d, func(fd int) error {
		return ignoringEINTR(func() error { return unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	})
	if err != nil {
		return inode{}, &os.PathError{Op: "lstat", Path: filepath.Join(d.Name(), name), Err: err}
	}
	return inodeOf(&st), nil
}

// openAt opens name in d with flag; a symbolic link named name is refused
// (O_NOFOLLOW), whatever the flags.
func openAt(d *os.File, name string, flag int, perm fs.FileMode) (*os.File, error) {
	var nfd int
	err := withFd(d, func(fd int) error {
		return ignoringEINTR(func() (err error) {
			nfd, err = unix.Openat(fd, name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
			return err
		})
	})
	p := filepath.Join(d.Name(), name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(nfd), p), nil
}

// openDirAt opens the folder name in d; a link is refused.
func openDirAt(d *os.File, name string) (*os.File, error) {
	return openAt(d, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
}

// mkdirAt makes the folder name in d with perm (less the umask); it fails
// if name exists, whatever it is.
func mkdirAt(d *os.File, name string, perm fs.FileMode) error {
	err := withFd(d, func(fd int) error {
		return ignoringEINTR(func() error { return unix.Mkdirat(fd, name, uint32(perm.Perm())) })
	})
	if err != nil {
		return &os.PathError{Op: "mkdir", Path: filepath.Join(d.Name(), name), Err: err}
	}
	return nil
}

// linkAt makes name in d a hard link to the file src (itself not a link).
func linkAt(src string, d *os.File, name string) error {
	err := withFd(d, func(fd int) error {
		return ignoringEINTR(func() error { return unix.Linkat(unix.AT_FDCWD, src, fd, name, 0) })
	})
	if err != nil {
		return &os.LinkError{Op: "link", Old: src, New: filepath.Join(d.Name(), name), Err: err}
	}
	return nil
}

// renameAt renames from to to inside d.
func renameAt(d *os.File, from, to string) error {
	err := withFd(d, func(fd int) error {
		return ignoringEINTR(func() error { return unix.Renameat(fd, from, fd, to) })
	})
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// removeAt removes the file or empty folder name from d (a link itself,
// never its target).
func removeAt(d *os.File, name string) error {
	err := withFd(d, func(fd int) error {
		err := ignoringEINTR(func() error { return unix.Unlinkat(fd, name, 0) })
		if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
			err = ignoringEINTR(func() error { return unix.Unlinkat(fd, name, unix.AT_REMOVEDIR) })
		}
		return err
	})
	if err != nil {
		return &os.PathError{Op: "remove", Path: filepath.Join(d.Name(), name), Err: err}
	}
	return nil
}

// tryLock takes an exclusive advisory lock on f without waiting; false if
// another process (or handle) holds it. Closing f releases it.
func tryLock(f *os.File) (bool, error) {
	err := withFd(f, func(fd int) error {
		return ignoringEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) })
	})
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// currentUID is the user files must belong to, to be trusted.
func currentUID() int { return os.Geteuid() }

// openFileNoFollow opens the file at path for reading; a link there is
// refused.
func openFileNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}
