//go:build unix

package main

import "syscall"

// syncDisks writes every dirty page of the system back before a timed
// command.
func syncDisks() { syscall.Sync() }
