package watch

import (
	"io/fs"
	"syscall"
)

// identity is what a listing records of a regular file beyond its size and
// modification time: its change time (which no one can set back) and its
// inode, so that a file rewritten with the same size and a restored mtime
// (cp -p, rsync -t) still changes the listing.
func identity(info fs.FileInfo) (ctimeNs int64, ino uint64) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	return st.Ctim.Nano(), st.Ino
}
