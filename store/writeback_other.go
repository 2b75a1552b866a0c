//go:build !linux

package store

import "io"

// startWriteback is a no-op where sync_file_range does not exist.
func startWriteback(w io.WriterAt, off, n int64) {}
