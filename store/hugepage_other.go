//go:build unix && !linux

package store

// adviseHugePages does nothing where huge pages are not asked for by
// madvise.
func adviseHugePages([]byte) {}
