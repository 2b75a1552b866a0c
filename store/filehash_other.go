//go:build !linux && !darwin

package store

import "os"

// hashRange returns the XXH3-64 of the n bytes of f from off.
func hashRange(f *os.File, off, n int64) (uint64, error) { return hashRead(f, off, n) }
