package store

import "golang.org/x/sys/unix"

// adviseHugePages asks for transparent huge pages for b (mapBuf).
func adviseHugePages(b []byte) {
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // only ever a saving; refused where THP is off
}
