package layout

import "runtime"

// allocs returns the bytes the Go heap allocated while f ran; the fuzz
// targets bound what a parser of hostile input may allocate by it.
func allocs(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// jsonExpansion bounds the bytes a JSON parser allocates per input byte:
// numbers in arrays grow from 2 bytes to 8, maps and strings carry headers,
// and slices grow by doubling.
const jsonExpansion = 32

// parseOverhead is what a parser may allocate whatever its input.
const parseOverhead = 64 << 10
