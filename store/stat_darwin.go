package store

import (
	"os"
	"syscall"
)

// fileStat fills the identity fields a stat-cache entry is checked against.
func fileStat(fi os.FileInfo) statEntry {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return statEntry{}
	}
	return statEntry{CtimeNs: st.Ctimespec.Nano(), Ino: st.Ino, Dev: uint64(st.Dev)}
}
