//go:build !amd64 || purego

package planes

// merge2 interleaves the planes p0 and p1 (each len(p0) bytes) into dst.
func merge2(dst, p0, p1 []byte, rot bool) { merge2Generic(dst, p0, p1, rot) }

// merge4 interleaves the planes planes[0:4] into the m elements of dst.
func merge4(dst []byte, planes *[maxPlanes][]byte, m int, rot bool) {
	merge4Generic(dst, planes, m, rot)
}

// mergeCombine4 is merge4 followed by combining each element with ref's.
func mergeCombine4(dst []byte, planes *[maxPlanes][]byte, m int, rot bool, ref []byte, op DeltaOp) {
	mergeCombine4Generic(dst, planes, m, rot, ref, op)
}
