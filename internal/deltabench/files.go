package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/planes"
)

const (
	// maxChunk and smallTensor mirror store/chunk.go (chunk plan version 1):
	// tensors of at least smallTensor bytes are cut every maxChunk bytes,
	// smaller neighbours grouped up to maxChunk.
	maxChunk    = 8 << 20
	smallTensor = 1 << 20
)

// tensor is a tensor of a safetensors file or a storage of a torch zip: a
// run of same-typed elements in the file.
type tensor struct {
	name  string
	dtype string // safetensors dtype ("F32", "BF16"), "" if unknown
	elem  int    // element size in bytes, 0 if unknown
	off   int64  // where its bytes start in the file
	size  int64
}

// seg is the byte range [lo, hi) of tensor t that a chunk holds.
type seg struct {
	t      int
	lo, hi int64
}

// chunk is one extent of a file that the store would code as one object.
type chunk struct {
	off, size int64
	elem      int  // planes element size; 0: zstd (fast, or default for text)
	text      bool // structured header: zstd at the default level
	// segs are the tensor bytes the chunk holds, in file order; they
	// cover the chunk exactly when tiled is set (tensor data only).
	segs  []seg
	tiled bool
	// unit groups the chunks of one tensor (its index); chunks that are
	// groups or metadata get a negative unit of their own.
	unit int
}

// file is a checkpoint file read into memory with its chunk plan.
type file struct {
	path    string
	torch   bool // a torch.save zip (storages), not safetensors
	data    []byte
	tensors []tensor
	byName  map[string]int
	chunks  []chunk
	// rank is, for a torch zip, each storage's position in key order
	// (torch.save numbers storages 0, 1, ... as it pickles them, in the
	// state dict's order; the zip holds them in name order, 0, 1, 10, ...).
	rank []int
}

func (f *file) bytesOf(c chunk) []byte { return f.data[c.off : c.off+c.size] }

// readSafetensors reads a safetensors file and plans its chunks the way
// store/chunk.go does.
func readSafetensors(path string) (*file, error) {
	h, err := layout.ReadSafetensorsHeader(path)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &file{path: path, data: data, byName: map[string]int{}}
	for _, t := range h.Tensors {
		f.byName[t.Name] = len(f.tensors)
		f.tensors = append(f.tensors, tensor{
			name: t.Name, dtype: string(t.Dtype), elem: t.Dtype.ElemSize(),
			off: h.DataOffset + t.Begin, size: t.End - t.Begin,
		})
	}
	f.chunks = planTensors(f.tensors, h.DataOffset, int64(len(data)))
	f.chunks = append([]chunk{{off: 0, size: h.DataOffset, text: true, unit: -1}}, f.chunks...)
	return f, nil
}

// planTensors cuts the bytes [start, end) of a file, whose tensors (in
// file order) lie in it, into chunks: a tensor of at least smallTensor
// bytes gets chunks of its own (cut every maxChunk bytes from its start);
// runs of smaller tensors and of the bytes between tensors are grouped up
// to maxChunk. For safetensors (no bytes between tensors) this is
// store/chunk.go's planChunks; for a torch zip it is storage-aligned
// chunking as issue 12 item 1 asks (zip headers and the pickle grouped
// with the small storages around them).
func planTensors(tensors []tensor, start, end int64) []chunk {
	var out []chunk
	var group *chunk
	groupElem := -1
	groups := 0
	flush := func() {
		if group != nil && group.size > 0 {
			if groupElem > 0 && group.off%int64(groupElem) == 0 {
				group.elem = groupElem
			}
			group.tiled = segsTile(*group, tensors)
			out = append(out, *group)
		}
		group, groupElem = nil, -1
	}
	// add adds n bytes at off to the group; elem -1 (bytes between
	// tensors) leaves the group's element size alone.
	add := func(off, n int64, s *seg, elem int) {
		if group != nil && group.size+n > maxChunk {
			flush()
		}
		if group == nil {
			groups++
			group = &chunk{off: off, unit: -1 - groups}
			groupElem = -1
		}
		switch {
		case elem < 0:
		case groupElem == -1:
			groupElem = elem
		case elem != groupElem:
			groupElem = 0
		}
		group.size += n
		if s != nil {
			group.segs = append(group.segs, *s)
		}
	}
	pos := start
	for i, t := range tensors {
		if t.off > pos { // bytes between tensors (zip headers, padding)
			add(pos, t.off-pos, nil, -1)
		}
		if t.size >= smallTensor {
			flush()
			for off := int64(0); off < t.size; off += maxChunk {
				n := min(maxChunk, t.size-off)
				out = append(out, chunk{off: t.off + off, size: n, elem: t.elem, segs: []seg{{i, off, off + n}}, tiled: true, unit: i})
			}
		} else if t.size > 0 {
			add(t.off, t.size, &seg{i, 0, t.size}, t.elem)
		}
		pos = max(pos, t.off+t.size)
	}
	if end > pos {
		add(pos, end-pos, nil, -1)
	}
	flush()
	return out
}

// segsTile reports whether c's segments cover it exactly, back to back.
func segsTile(c chunk, tensors []tensor) bool {
	pos := c.off
	for _, s := range c.segs {
		if tensors[s.t].off+s.lo != pos {
			return false
		}
		pos += s.hi - s.lo
	}
	return pos == c.off+c.size
}

// readTorchZip reads a torch.save zip. storageAligned plans chunks at
// storage boundaries (planTensors); otherwise the file is cut every
// maxChunk bytes, as the store does today, with element size elem (4 for
// optimizer state, 0 for weights files: zstd).
func readTorchZip(path string, storageAligned bool, elem int) (*file, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tz, err := layout.ParseTorchZip(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := &file{path: path, torch: true, data: data, byName: map[string]int{}}
	for _, s := range tz.Storages {
		f.byName[s.Key] = len(f.tensors)
		f.tensors = append(f.tensors, tensor{
			name: s.Key, dtype: torchToSafetensors(s.Dtype), elem: s.ElemSize,
			off: s.DataOffset, size: s.Size,
		})
	}
	order := make([]int, len(f.tensors))
	for i := range order {
		order[i] = i
	}
	key := func(i int) int {
		n, err := strconv.Atoi(f.tensors[i].name)
		if err != nil {
			return math.MaxInt
		}
		return n
	}
	sort.SliceStable(order, func(a, b int) bool { return key(order[a]) < key(order[b]) })
	f.rank = make([]int, len(order))
	for r, i := range order {
		f.rank[i] = r
	}
	if storageAligned {
		f.chunks = planTensors(f.tensors, 0, int64(len(data)))
		return f, nil
	}
	for off, i := int64(0), 0; off < int64(len(data)); off, i = off+maxChunk, i+1 {
		f.chunks = append(f.chunks, chunk{off: off, size: min(maxChunk, int64(len(data))-off), elem: elem, unit: -1 - i})
	}
	return f, nil
}

func torchToSafetensors(d layout.TorchDtype) string {
	switch d {
	case "float32":
		return "F32"
	case "bfloat16":
		return "BF16"
	case "float16":
		return "F16"
	case "":
		return ""
	}
	return strings.ToUpper(string(d))
}

// refTensor returns the tensor of ref that tensor t of cur is coded
// against: the same name; for a torch zip against a safetensors file (a
// pytorch_model.bin against its base), the tensor at the same position,
// since torch.save numbers a state dict's storages in its order, which is
// the order train.py's safetensors writer lays them out in (a heuristic
// that holds for these files; the caller checks sizes).
func refTensor(cur, ref *file, t int) (int, bool) {
	if cur.torch && !ref.torch {
		r := cur.rank[t]
		return r, r < len(ref.tensors)
	}
	i, ok := ref.byName[cur.tensors[t].name]
	return i, ok
}

// reference returns the reference bytes chunk c of cur codes against in
// ref and their form: the same element ranges of the matching tensors, of
// the same dtype (RefSame), or fp32 for bf16 content (RefF32ToBF16). A
// chunk that is not tensor data alone (headers, groups with zip records)
// codes against the chunk with the same extent in ref, when ref has one.
// The reference must be whole chunks of ref, at most maxRefBlobs of them
// (what the proposed envelope can name), unless looseRefs is set.
func reference(cur, ref *file, c chunk) ([]byte, planes.RefForm, bool) {
	b, form, ok := referenceBytes(cur, ref, c)
	if !ok || looseRefs {
		return b, form, ok
	}
	if _, whole := wholeBlobs(ref, refRanges(cur, ref, c)); !whole {
		return nil, 0, false
	}
	return b, form, true
}

// looseRefs lets a reference be any bytes of the reference file, not only
// whole chunks (-loose-refs): what an envelope naming byte ranges of blobs
// could code.
var looseRefs bool

// maxRefBlobs is how many blobs the proposed envelope lets one delta
// reference (store/planes doc.go).
const maxRefBlobs = 2

// refRanges returns the byte ranges of ref that reference(cur, ref, c)
// reads, in order.
func refRanges(cur, ref *file, c chunk) [][2]int64 {
	if !c.tiled {
		return [][2]int64{{c.off, c.off + c.size}}
	}
	var out [][2]int64
	for _, s := range c.segs {
		ri, _ := refTensor(cur, ref, s.t)
		rt := ref.tensors[ri]
		lo, hi := s.lo, s.hi
		if rt.size == 2*cur.tensors[s.t].size {
			lo, hi = 2*lo, 2*hi
		}
		a, b := rt.off+lo, rt.off+hi
		if n := len(out); n > 0 && out[n-1][1] == a {
			out[n-1][1] = b
		} else {
			out = append(out, [2]int64{a, b})
		}
	}
	return out
}

// wholeBlobs reports whether ranges are exactly a sequence of whole chunks
// of ref, at most maxRefBlobs of them, and returns how many.
func wholeBlobs(ref *file, ranges [][2]int64) (int, bool) {
	n := 0
	for _, r := range ranges {
		pos := r[0]
		for pos < r[1] {
			i := sort.Search(len(ref.chunks), func(i int) bool { return ref.chunks[i].off >= pos })
			if i == len(ref.chunks) || ref.chunks[i].off != pos || pos+ref.chunks[i].size > r[1] {
				return n, false
			}
			pos += ref.chunks[i].size
			n++
		}
	}
	return n, n <= maxRefBlobs
}

// referenceBytes is reference without the whole-blob rule.
func referenceBytes(cur, ref *file, c chunk) ([]byte, planes.RefForm, bool) {
	if !c.tiled {
		for _, rc := range ref.chunks {
			if rc.off == c.off && rc.size == c.size {
				return ref.bytesOf(rc), planes.RefSame, true
			}
		}
		return nil, 0, false
	}
	var out []byte
	form := planes.RefForm(255)
	for _, s := range c.segs {
		ct := cur.tensors[s.t]
		ri, ok := refTensor(cur, ref, s.t)
		if !ok {
			return nil, 0, false
		}
		rt := ref.tensors[ri]
		var f planes.RefForm
		var lo, hi int64
		switch {
		case rt.size == ct.size && (rt.dtype == ct.dtype || rt.dtype == "" || ct.dtype == ""):
			f, lo, hi = planes.RefSame, s.lo, s.hi
		case ct.dtype == "BF16" && rt.dtype == "F32" && rt.size == 2*ct.size:
			f, lo, hi = planes.RefF32ToBF16, 2*s.lo, 2*s.hi
		default:
			return nil, 0, false
		}
		if form != 255 && f != form {
			return nil, 0, false
		}
		form = f
		if len(c.segs) == 1 {
			return ref.data[rt.off+lo : rt.off+hi], form, true
		}
		out = append(out, ref.data[rt.off+lo:rt.off+hi]...)
	}
	return out, form, form != 255
}

// tensorBytes returns tensor t's bytes.
func (f *file) tensorBytes(t int) []byte {
	x := f.tensors[t]
	return f.data[x.off : x.off+x.size]
}
