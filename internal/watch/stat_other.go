//go:build !linux

package watch

import "io/fs"

// identity is not available here: listings rely on size and mtime, and
// deletion on the content check (FolderHolds) alone.
func identity(fs.FileInfo) (ctimeNs int64, ino uint64) { return 0, 0 }
