//go:build !amd64 || purego

package planes

// merge2 interleaves the planes p0 and p1 (each len(p0) bytes) into dst.
func merge2(dst, p0, p1 []byte, rot bool) { merge2Generic(dst, p0, p1, rot) }
