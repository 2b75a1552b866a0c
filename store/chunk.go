package store

import (
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/object"
)

// smallTensor is the size under which neighbouring tensors share a chunk
// (layer norms, biases), so a checkpoint is not thousands of tiny blobs.
// Chunks are at most object.MaxChunkSize.
const smallTensor = 1 << 20

// extent is a byte range of a file that becomes one chunk.
type extent struct {
	off, size int64
	hint      object.EncodeHint
	// tensors lists the tensors wholly inside a grouped extent; their
	// digests are computed from the extent's bytes.
	tensors []int
}

// planChunks cuts a file into extents. A safetensors file (st != nil) is cut
// at tensor boundaries: the header is one extent, a tensor of at least
// smallTensor bytes gets extents of its own (split every MaxChunkSize bytes
// from its start), and runs of smaller tensors are grouped up to
// MaxChunkSize. Any other file is one extent, or fixed MaxChunkSize extents.
// The plan depends only on the header and the file size, so unchanged
// tensors produce identical chunks in every checkpoint.
func planChunks(size int64, st *layout.SafetensorsHeader, hint object.EncodeHint) []extent {
	if st == nil {
		var out []extent
		for off := int64(0); off < size; off += object.MaxChunkSize {
			out = append(out, extent{off: off, size: min(object.MaxChunkSize, size-off), hint: hint})
		}
		return out
	}
	out := []extent{{off: 0, size: st.DataOffset, hint: object.EncodeHint{Text: true}}}
	var group *extent
	groupElem := -1
	flush := func() {
		if group != nil && group.size > 0 {
			if groupElem > 0 {
				group.hint.ElemSize = groupElem
			}
			out = append(out, *group)
		} else if group != nil && len(group.tensors) > 0 {
			// Only empty tensors: nothing to store, but their digests
			// must still be set; attach them to an empty extent handled
			// by the caller.
			out = append(out, *group)
		}
		group, groupElem = nil, -1
	}
	for i, t := range st.Tensors {
		n := t.End - t.Begin
		elem := t.Dtype.ElemSize()
		if n >= smallTensor {
			flush()
			for off := int64(0); off < n; off += object.MaxChunkSize {
				out = append(out, extent{off: st.DataOffset + t.Begin + off, size: min(object.MaxChunkSize, n-off), hint: object.EncodeHint{ElemSize: elem}})
			}
			continue
		}
		if group != nil && group.size+n > object.MaxChunkSize {
			flush()
		}
		if group == nil {
			group = &extent{off: st.DataOffset + t.Begin}
			groupElem = elem
		}
		if elem != groupElem {
			groupElem = 0
		}
		group.size += n
		group.tensors = append(group.tensors, i)
	}
	flush()
	return out
}
