package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/bits"
	"os"
)

// The per-machine index is a bbolt file, and bbolt trusts its file: a
// damaged page can make it panic, fault on its memory map, loop forever on a
// child pointer that leads back to an ancestor, or free billions of pages
// for one corrupt overflow count. checkBoltFile reads the file's page
// structure with ordinary bounds-checked reads before bbolt maps it, and
// refuses any file on which bbolt could do one of those things. It follows
// bbolt's file format, version 2 (go.etcd.io/bbolt, internal/common):
//
//	page:    id u64, flags u16, count u16, overflow u32, then the elements
//	meta:    magic u32, version u32, page size u32, flags u32, root bucket
//	         (root page u64, sequence u64), freelist page u64, high-water
//	         mark u64, txid u64, FNV-64a checksum of the fields before it
//	branch:  element = key position u32 (from the element), key size u32, child page u64
//	leaf:    element = flags u32 (1: a sub-bucket), key position u32, key size u32, value size u32
//	bucket:  value = root page u64 (0: inline, a leaf page follows), sequence u64
//	freelist: count u16 (0xffff: the count is the first u64), page ids u64
//
// in the machine's byte order. Contents (keys and values) are not checked:
// every cache entry is validated where it is read.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltPageHeader   = 16
	boltElemSize     = 16
	boltMetaSize     = 64
	boltMetaSummed   = 56 // bytes of the meta covered by its checksum
	boltBranchFlag   = 0x01
	boltLeafFlag     = 0x02
	boltFreelistFlag = 0x10
	boltBucketFlag   = 0x01
	boltBucketHeader = 16
	boltNoFreelist   = ^uint64(0)
)

var native = binary.NativeEndian

// boltMeta is the part of a meta page the check needs.
type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages [0, pgid) are in use or free
	txid     uint64
}

// parseBoltMeta decodes the meta page at the start of page; ok only when
// bbolt would accept it (magic, version and checksum).
func parseBoltMeta(page []byte) (boltMeta, bool) {
	if len(page) < boltPageHeader+boltMetaSize {
		return boltMeta{}, false
	}
	m := page[boltPageHeader : boltPageHeader+boltMetaSize]
	if native.Uint32(m[0:]) != boltMagic || native.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(m[:boltMetaSummed])
	if h.Sum64() != native.Uint64(m[boltMetaSummed:]) {
		return boltMeta{}, false
	}
	return boltMeta{
		pageSize: native.Uint32(m[8:]),
		root:     native.Uint64(m[16:]),
		freelist: native.Uint64(m[32:]),
		pgid:     native.Uint64(m[40:]),
		txid:     native.Uint64(m[48:]),
	}, true
}

// boltPageSize finds the page size the way bbolt does when it opens a file:
// from the first meta page, else from a second one at 1 KiB << i, else the
// operating system's if either spot could be read.
func boltPageSize(r io.ReaderAt, size int64) (int64, error) {
	buf := make([]byte, 0x1000)
	canRead := false
	if n, _ := r.ReadAt(buf, 0); n == len(buf) {
		canRead = true
		if m, ok := parseBoltMeta(buf); ok {
			return int64(m.pageSize), nil
		}
	}
	for i := 0; i <= 14; i++ {
		pos := int64(1024) << i
		if pos >= size-1024 {
			break
		}
		clear(buf)
		n, err := r.ReadAt(buf, pos)
		if n == len(buf) || errors.Is(err, io.EOF) && int64(n) == size-pos {
			canRead = true
			if m, ok := parseBoltMeta(buf); ok {
				return int64(m.pageSize), nil
			}
		}
	}
	if canRead {
		return int64(os.Getpagesize()), nil
	}
	return 0, errors.New("no valid meta page")
}

// checkBoltFile verifies the structure of the bbolt file r of size bytes:
// the meta page bbolt would use, every page reachable from it (each
// reached once, inside the file, of the right type, elements inside their
// page), inline buckets, and the freelist (inside the file, disjoint from
// the pages in use). A nil result means bbolt can open and use the file
// without touching memory outside it or looping.
func checkBoltFile(r io.ReaderAt, size int64) error {
	ps, err := boltPageSize(r, size)
	if err != nil {
		return err
	}
	if ps < 1024 || ps > 1<<24 || ps&(ps-1) != 0 {
		return fmt.Errorf("page size %d", ps)
	}
	var metas [2]boltMeta
	var valid [2]bool
	for i := range metas {
		page := make([]byte, boltPageHeader+boltMetaSize)
		if n, _ := r.ReadAt(page, int64(i)*ps); n == len(page) {
			metas[i], valid[i] = parseBoltMeta(page)
		}
	}
	// bbolt uses the meta with the higher transaction id if it is valid,
	// else the other one.
	newer, older := 0, 1
	if metas[1].txid > metas[0].txid {
		newer, older = 1, 0
	}
	var m boltMeta
	switch {
	case valid[newer]:
		m = metas[newer]
	case valid[older]:
		m = metas[older]
	default:
		return errors.New("both meta pages are invalid")
	}
	if m.pgid < 3 || m.pgid > uint64(size/ps) {
		return fmt.Errorf("high-water mark %d pages, file has %d", m.pgid, size/ps)
	}
	w := &boltWalker{r: r, ps: ps, hwm: m.pgid, used: make([]uint64, (m.pgid+63)/64), free: make([]uint64, (m.pgid+63)/64)}
	w.mark(w.used, 0)
	w.mark(w.used, 1)
	if m.freelist != boltNoFreelist {
		if err := w.freelist(m.freelist); err != nil {
			return err
		}
	}
	w.todo = append(w.todo, m.root)
	for len(w.todo) > 0 {
		id := w.todo[len(w.todo)-1]
		w.todo = w.todo[:len(w.todo)-1]
		if err := w.node(id); err != nil {
			return err
		}
	}
	for i := range w.used {
		if both := w.used[i] & w.free[i]; both != 0 {
			return fmt.Errorf("page %d: in use and listed as free", i*64+bits.TrailingZeros64(both))
		}
	}
	return nil
}

// boltWalker visits the pages of one file, each at most once.
type boltWalker struct {
	r    io.ReaderAt
	ps   int64
	hwm  uint64
	used []uint64 // bitset of pages reached (overflow pages included)
	free []uint64 // bitset of pages the freelist lists
	todo []uint64 // tree pages still to visit
	elem []byte   // a node's element array
	val  []byte   // a bucket value
}

func (w *boltWalker) has(set []uint64, id uint64) bool { return set[id/64]&(1<<(id%64)) != 0 }
func (w *boltWalker) mark(set []uint64, id uint64)     { set[id/64] |= 1 << (id % 64) }

// read returns n bytes at off in buf (grown as needed).
func (w *boltWalker) read(buf *[]byte, off, n int64) ([]byte, error) {
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := w.r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("read %d bytes at %d: %w", n, off, err)
	}
	return b, nil
}

// header reads and checks the header of page id, wanting one of the flags,
// and claims its pages; it returns the element count and the span in bytes.
func (w *boltWalker) header(id uint64, wantFlags ...uint16) (count int, span int64, flags uint16, err error) {
	if id < 2 || id >= w.hwm {
		return 0, 0, 0, fmt.Errorf("page %d: outside the file's %d pages", id, w.hwm)
	}
	var h [boltPageHeader]byte
	if _, err := w.r.ReadAt(h[:], int64(id)*w.ps); err != nil {
		return 0, 0, 0, fmt.Errorf("page %d: %w", id, err)
	}
	if got := native.Uint64(h[0:]); got != id {
		return 0, 0, 0, fmt.Errorf("page %d: header says page %d", id, got)
	}
	flags = native.Uint16(h[8:])
	ok := false
	for _, f := range wantFlags {
		ok = ok || flags == f
	}
	if !ok {
		return 0, 0, 0, fmt.Errorf("page %d: unexpected flags %#x", id, flags)
	}
	overflow := uint64(native.Uint32(h[12:]))
	if overflow >= w.hwm-id {
		return 0, 0, 0, fmt.Errorf("page %d: %d overflow pages run past the file", id, overflow)
	}
	for p := id; p <= id+overflow; p++ {
		if w.has(w.used, p) {
			return 0, 0, 0, fmt.Errorf("page %d: reached twice", p)
		}
		w.mark(w.used, p)
	}
	return int(native.Uint16(h[10:])), int64(overflow+1) * w.ps, flags, nil
}

// freelist checks the freelist page and records the pages it lists.
func (w *boltWalker) freelist(id uint64) error {
	count, span, _, err := w.header(id, boltFreelistFlag)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	base := int64(id)*w.ps + boltPageHeader
	first := int64(0)
	n := int64(count)
	if count == 0xffff {
		b, err := w.read(&w.val, base, 8)
		if err != nil {
			return fmt.Errorf("freelist: %w", err)
		}
		c := native.Uint64(b)
		if c > uint64(span/8) {
			return fmt.Errorf("freelist: %d ids do not fit its %d bytes", c, span)
		}
		n, first = int64(c), 1
	}
	if boltPageHeader+(first+n)*8 > span {
		return fmt.Errorf("freelist: %d ids do not fit its %d bytes", n, span)
	}
	ids, err := w.read(&w.val, base+first*8, n*8)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	for i := int64(0); i < n; i++ {
		p := native.Uint64(ids[i*8:])
		if p < 2 || p >= w.hwm {
			return fmt.Errorf("freelist: lists page %d, outside the file's %d pages", p, w.hwm)
		}
		if w.has(w.free, p) {
			return fmt.Errorf("freelist: lists page %d twice", p)
		}
		w.mark(w.free, p)
	}
	return nil
}

// node checks the branch or leaf page id and queues the pages it points to.
func (w *boltWalker) node(id uint64) error {
	count, span, flags, err := w.header(id, boltBranchFlag, boltLeafFlag)
	if err != nil {
		return err
	}
	if flags == boltBranchFlag && count == 0 {
		return fmt.Errorf("page %d: empty branch page", id)
	}
	if boltPageHeader+int64(count)*boltElemSize > span {
		return fmt.Errorf("page %d: %d elements do not fit", id, count)
	}
	start := int64(id) * w.ps
	elems, err := w.read(&w.elem, start+boltPageHeader, int64(count)*boltElemSize)
	if err != nil {
		return fmt.Errorf("page %d: %w", id, err)
	}
	for i := 0; i < count; i++ {
		e := elems[i*boltElemSize:]
		at := int64(boltPageHeader + i*boltElemSize) // the element's offset in the node
		if flags == boltBranchFlag {
			pos, ksize, child := int64(native.Uint32(e[0:])), int64(native.Uint32(e[4:])), native.Uint64(e[8:])
			if at+pos+ksize > span {
				return fmt.Errorf("page %d: element %d runs past the page", id, i)
			}
			w.todo = append(w.todo, child)
			continue
		}
		eflags := native.Uint32(e[0:])
		pos, ksize, vsize := int64(native.Uint32(e[4:])), int64(native.Uint32(e[8:])), int64(native.Uint32(e[12:]))
		if at+pos+ksize+vsize > span {
			return fmt.Errorf("page %d: element %d runs past the page", id, i)
		}
		if eflags&boltBucketFlag == 0 {
			continue
		}
		if vsize < boltBucketHeader || vsize > w.ps+boltBucketHeader {
			return fmt.Errorf("page %d: element %d: bucket header of %d bytes", id, i, vsize)
		}
		v, err := w.read(&w.val, start+at+pos+ksize, vsize)
		if err != nil {
			return fmt.Errorf("page %d: %w", id, err)
		}
		if err := w.bucket(v); err != nil {
			return fmt.Errorf("page %d: element %d: %w", id, i, err)
		}
	}
	return nil
}

// bucket checks a bucket value: an inline bucket's page in place, else its
// root page is queued.
func (w *boltWalker) bucket(v []byte) error {
	root := native.Uint64(v)
	if root != 0 {
		if len(v) != boltBucketHeader {
			// bbolt writes a bucket with its own pages as the header alone.
			return fmt.Errorf("bucket header of %d bytes", len(v))
		}
		w.todo = append(w.todo, root)
		return nil
	}
	p := v[boltBucketHeader:]
	if len(p) < boltPageHeader {
		return fmt.Errorf("inline bucket of %d bytes", len(p))
	}
	if native.Uint16(p[8:]) != boltLeafFlag {
		return fmt.Errorf("inline bucket page with flags %#x", native.Uint16(p[8:]))
	}
	count := int(native.Uint16(p[10:]))
	if boltPageHeader+count*boltElemSize > len(p) {
		return fmt.Errorf("inline bucket: %d elements do not fit", count)
	}
	for i := 0; i < count; i++ {
		e := p[boltPageHeader+i*boltElemSize:]
		at := int64(boltPageHeader + i*boltElemSize)
		pos, ksize, vsize := int64(native.Uint32(e[4:])), int64(native.Uint32(e[8:])), int64(native.Uint32(e[12:]))
		if at+pos+ksize+vsize > int64(len(p)) {
			return fmt.Errorf("inline bucket: element %d runs past it", i)
		}
		if native.Uint32(e[0:])&boltBucketFlag == 0 {
			continue
		}
		sub := p[at+pos+ksize : at+pos+ksize+vsize]
		if len(sub) < boltBucketHeader {
			return fmt.Errorf("inline bucket: element %d: bucket header of %d bytes", i, len(sub))
		}
		// Nested values are strictly shorter, so this recursion ends.
		if err := w.bucket(sub); err != nil {
			return fmt.Errorf("inline bucket: element %d: %w", i, err)
		}
	}
	return nil
}
