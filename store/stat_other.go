//go:build !linux && !darwin

package store

import "os"

// fileStat: without ctime and inode the stat cache relies on size and mtime.
func fileStat(fi os.FileInfo) statEntry { return statEntry{} }
