//go:build race

package testutil

// RaceEnabled reports whether the binary was built with -race. The race
// runtime changes what the heap allocates, so allocation bounds are
// asserted only without it (make test runs every package without -race
// too).
const RaceEnabled = true
