//go:build !unix

package hfcache

import (
	"io/fs"
	"testing"
)

// inode is not available here; the modification time still shows a
// rewrite.
func inode(fs.FileInfo) uint64 { return 0 }

func mkfifo(t *testing.T, path string) {
	t.Helper()
	t.Fatalf("cannot make the named pipe %s on this platform", path)
}
