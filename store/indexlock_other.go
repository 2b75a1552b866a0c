//go:build !unix

package store

import (
	"os"
	"time"
)

// openLocked opens (creating) the file at path; bbolt locks it.
func openLocked(path string, wait time.Duration) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}
