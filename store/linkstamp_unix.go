//go:build linux || darwin

package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// inodeStamp is what a seal records of the open file f: its device,
// inode, size, and modification and change times in ns. ok is false
// where the system cannot tell.
func inodeStamp(f *os.File) (s stamp, ok bool) {
	var st unix.Stat_t
	if err := withFd(f, func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
		return s, false
	}
	return stamp{
		Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: st.Size,
		MtimeNs: st.Mtim.Nano(), CtimeNs: st.Ctim.Nano(),
	}, true
}
