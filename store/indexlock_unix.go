//go:build unix

package store

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// openLocked opens (creating) the file at path and takes an exclusive
// flock on it, waiting up to wait for another process to release it. It
// retries when the file it locked is no longer the one at path (another
// process set it aside meanwhile). bbolt, handed the file, takes the same
// lock on the same open file, which succeeds at once.
func openLocked(path string, wait time.Duration) (*os.File, error) {
	deadline := time.Now().Add(wait)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err == nil {
				break
			}
			if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
				_ = f.Close() // giving up on this file: the error above is the one to report
				return nil, err
			}
			if time.Now().After(deadline) {
				_ = f.Close() // giving up on this file: the error above is the one to report
				return nil, errIndexBusy
			}
			time.Sleep(20 * time.Millisecond)
		}
		fi, err1 := f.Stat()
		cur, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(fi, cur) {
			return f, nil
		}
		_ = f.Close() // giving up on this file: the error above is the one to report
		if time.Now().After(deadline) {
			return nil, errIndexBusy
		}
	}
}
