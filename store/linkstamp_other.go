//go:build !linux && !darwin

package store

import "os"

// inodeStamp: without a change time users cannot set, no seal can be
// trusted, and every entry is hashed in full before it is used.
func inodeStamp(f *os.File) (stamp, bool) { return stamp{}, false }
