//go:build !unix

package store

// mapBuf reports false: pooled buffers live on the Go heap here.
func mapBuf(int) ([]byte, bool) { return nil, false }

// returnPages does nothing where buffers are not mapped.
func returnPages([]byte) {}
