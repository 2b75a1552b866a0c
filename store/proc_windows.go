//go:build windows

package store

import (
	"errors"

	"golang.org/x/sys/windows"
)

// processAlive reports whether a process with this pid runs on this
// machine: it can be opened and has not exited. A process of another user
// that cannot be opened counts as running.
func processAlive(pid int) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return errors.Is(err, windows.ERROR_ACCESS_DENIED)
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return true
	}
	const stillActive = 259 // STILL_ACTIVE
	return code == stillActive
}
