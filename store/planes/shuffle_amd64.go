//go:build amd64 && !purego

package planes

// interleave2 interleaves the n bytes of p0 and of p1 (n a positive
// multiple of 16) into the 2n bytes of dst, as merge2 does, rotating each
// 16-bit element right by one bit when rot is set. SSE2, which every amd64
// processor has (shuffle_amd64.s).
//
//go:noescape
func interleave2(dst, p0, p1 *byte, n int, rot bool)

// merge2 interleaves the planes p0 and p1 (each len(p0) bytes) into dst:
// 16 elements at a time with SSE2 (measured 1.2 GB/s of output for the
// 64-bit SWAR loop of merge2Generic on the shared VM, about a tenth of the
// reference decode of a delta pull), the tail in Go.
func merge2(dst, p0, p1 []byte, rot bool) {
	m := len(p0)
	p1, dst = p1[:m], dst[:2*m]
	n := m &^ 15
	if n > 0 {
		interleave2(&dst[0], &p0[0], &p1[0], n, rot)
	}
	merge2Generic(dst[2*n:], p0[n:], p1[n:], rot)
}

// interleave4 interleaves the first n bytes of the planes p0 to p3 (n a
// positive multiple of 16) into n elements of 4 bytes in dst, as merge4
// does, rotating the top 16 bits of each right by one bit when rot is set;
// with ref not nil, each element is then combined with ref's (ref may be
// dst) as combine4 does: by XOR, or with sub by adding its unzigzagged
// value.
//
//go:noescape
func interleave4(dst, p0, p1, p2, p3, ref *byte, n int, rot, sub bool)

// merge4 interleaves the planes planes[0:4] (each at least m bytes) into
// the m elements of dst: 16 elements at a time with SSE2 (merge4Generic
// merged 3.0 GB/s of output), the tail in Go.
func merge4(dst []byte, planes *[maxPlanes][]byte, m int, rot bool) {
	p0, p1, p2, p3 := planes[0][:m], planes[1][:m], planes[2][:m], planes[3][:m]
	dst = dst[:4*m]
	n := m &^ 15
	if n > 0 {
		interleave4(&dst[0], &p0[0], &p1[0], &p2[0], &p3[0], nil, n, rot, false)
	}
	tail := [maxPlanes][]byte{p0[n:], p1[n:], p2[n:], p3[n:]}
	merge4Generic(dst[4*n:], &tail, m-n, rot)
}

// mergeCombine4 is merge4 followed by combining each element with ref's
// by op (combine4): with SSE2, the tail in Go.
func mergeCombine4(dst []byte, planes *[maxPlanes][]byte, m int, rot bool, ref []byte, op DeltaOp) {
	p0, p1, p2, p3 := planes[0][:m], planes[1][:m], planes[2][:m], planes[3][:m]
	dst, ref = dst[:4*m], ref[:4*m]
	n := m &^ 15
	if op != OpXOR && op != OpSub {
		n = 0
	}
	if n > 0 {
		interleave4(&dst[0], &p0[0], &p1[0], &p2[0], &p3[0], &ref[0], n, rot, op == OpSub)
	}
	tail := [maxPlanes][]byte{p0[n:], p1[n:], p2[n:], p3[n:]}
	mergeCombine4Generic(dst[4*n:], &tail, m-n, rot, ref[4*n:], op)
}
