//go:build !unix

package main

import "time"

// threadCPU is not measured here: speeds are reported as unknown.
func threadCPU() time.Duration { return 0 }
