//go:build unix

package store

import "golang.org/x/sys/unix"

// mapBuf maps n bytes of anonymous memory outside the Go heap, or reports
// false (the caller allocates on the heap instead).
func mapBuf(n int) ([]byte, bool) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, false
	}
	return b, true
}

// returnPages gives the pages of a mapped buffer back to the system; the
// mapping stays valid (it reads as zeros, or as it was, until written).
func returnPages(b []byte) {
	_ = unix.Madvise(b[:cap(b)], unix.MADV_DONTNEED) // only ever a saving
}
