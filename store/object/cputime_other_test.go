//go:build !unix

package object

import "time"

// cpuTime is not measured here; benchmarks then report no CPU speed.
func cpuTime() time.Duration { return 0 }
