package store

import (
	"cmp"
	"math"
	"os"
	"path"
	"slices"
	"sync"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/manifest"
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
	// trial: the element width of the bytes is unknown (a storage whose
	// dtype the pickle does not tell, tensors of several widths, or a
	// small file of several kinds of records); the codec is chosen by
	// trying the candidates on a sample (trialHint).
	trial bool
	// tensors lists the tensors wholly inside a grouped extent; their
	// digests are computed from the extent's bytes.
	tensors []int
}

// fileLayout is what the chunk planner knows of a file's structure, from
// its header alone: a safetensors header, the directory and pickle of a
// torch.save zip (or of each archive of a .distcp file), or a GGUF header.
// A nil *fileLayout is a file of opaque bytes.
type fileLayout struct {
	// st is set for a safetensors file; the fields below are then unused.
	st *layout.SafetensorsHeader
	// tensors are the tensors (torch storages) in file order, not
	// overlapping, at offsets in the file.
	tensors []layoutTensor
	// format is the manifest.TensorTable format of the tensors; "" when
	// the manifest records no table (resume state, .distcp files).
	format    string
	bigEndian bool
}

// layoutTensor is one tensor of a fileLayout.
type layoutTensor struct {
	name, dtype string
	shape       []int64
	off, size   int64
	// elem is the element width the byte-plane codec splits the tensor by;
	// 0 for bytes that are not split (quantized blocks: zstd or raw);
	// elemUnknown when the width is not known (tried, see trialHint).
	elem int
}

// elemUnknown marks a tensor whose element width is not known.
const elemUnknown = -1

// span returns where tensor i lies in the file.
func (l *fileLayout) span(i int) (off, size int64) {
	if l.st != nil {
		t := l.st.Tensors[i]
		return l.st.DataOffset + t.Begin, t.End - t.Begin
	}
	t := l.tensors[i]
	return t.off, t.size
}

// readLayout reads the structure of the file at abs (size bytes) that its
// name says it may have. A safetensors file of role weights must parse: a
// malformed one fails the push, as before. Other files are the user's
// business: a .bin/.pt/.pth file that is no torch.save zip (a legacy
// pickle, anything else), a .distcp or .gguf file that does not parse, is
// opaque bytes, cut at fixed offsets without a word; only a file that
// cannot be opened is an error.
func readLayout(abs string, e layout.Entry, size int64) (*fileLayout, error) {
	ext := path.Ext(e.Path)
	if e.Role == layout.RoleWeights && ext == ".safetensors" {
		st, err := layout.ReadSafetensorsHeader(abs)
		if err != nil {
			return nil, err
		}
		return &fileLayout{st: st}, nil
	}
	switch ext {
	case ".bin", ".pt", ".pth", ".distcp", ".gguf":
	default:
		return nil, nil
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read-only: its header is parsed
	switch ext {
	case ".gguf":
		g, err := layout.ParseGGUF(f, size)
		if err != nil {
			return nil, nil
		}
		return checked(ggufLayout(g), size), nil
	case ".distcp":
		d, err := layout.ParseDistCP(f, size)
		if err != nil {
			return nil, nil
		}
		return checked(torchLayout(d.Storages(), false, ""), size), nil
	default:
		tz, err := layout.ParseTorchZip(f, size)
		if err != nil {
			return nil, nil
		}
		format := ""
		if e.Role == layout.RoleWeights {
			format = manifest.FormatTorchZip
		}
		return checked(torchLayout(tz.Storages, tz.ByteOrder == layout.ByteOrderBig, format), size), nil
	}
}

// checked returns l if its tensors tile a file of size bytes, else nil
// (opaque bytes, and no tensor table in the manifest).
func checked(l *fileLayout, size int64) *fileLayout {
	if l == nil || !tensorsTile(size, l.tensors) {
		return nil
	}
	return l
}

// torchLayout is the layout of torch.save storages, named "data/<key>"
// after their records (whose folder differs between files).
func torchLayout(storages []layout.TorchStorage, bigEndian bool, format string) *fileLayout {
	l := &fileLayout{format: format, bigEndian: bigEndian, tensors: make([]layoutTensor, len(storages))}
	for i, s := range storages {
		elem := s.ElemSize
		if elem == 0 {
			elem = elemUnknown
		}
		l.tensors[i] = layoutTensor{name: "data/" + s.Key, dtype: string(s.Dtype), off: s.DataOffset, size: s.Size, elem: elem}
	}
	return l
}

// ggufLayout is the layout of a GGUF file, its tensors in file order; nil
// if a dimension does not fit an int64. The
// byte-plane codec is for F32, F16 and BF16 tensors only; the blocks of
// quantized types, and integers, get zstd when it pays, else are stored
// raw.
func ggufLayout(g *layout.GGUF) *fileLayout {
	l := &fileLayout{format: manifest.FormatGGUF, bigEndian: g.BigEndian, tensors: make([]layoutTensor, len(g.Tensors))}
	for i, t := range g.Tensors {
		elem := 0
		switch t.Type {
		case layout.GGMLF32, layout.GGMLF16, layout.GGMLBF16:
			elem = t.ElemSize
		}
		shape := make([]int64, len(t.Dims))
		for d, n := range t.Dims {
			if n > math.MaxInt64 {
				return nil // ParseGGUF refuses such dimensions; never trust it blindly
			}
			shape[d] = int64(n)
		}
		l.tensors[i] = layoutTensor{name: t.Name, dtype: t.Type.String(), shape: shape, off: t.Offset, size: t.Size, elem: elem}
	}
	slices.SortStableFunc(l.tensors, func(a, b layoutTensor) int {
		return cmp.Or(cmp.Compare(a.off, b.off), cmp.Compare(a.size, b.size))
	})
	return l
}

// planChunks cuts a file into extents. The plan depends only on the file's
// header (lay) and size, so unchanged tensors produce identical chunks in
// every checkpoint.
//
// A safetensors file is cut at tensor boundaries: the header is one
// extent, a tensor of at least smallTensor bytes gets extents of its own
// (split every MaxChunkSize bytes from its start), and runs of smaller
// tensors are grouped up to MaxChunkSize. A torch.save zip, a .distcp file
// and a GGUF file are cut the same way around their tensors (planTensors).
// Any other file (lay == nil) is one extent, or fixed MaxChunkSize extents,
// encoded by hint.
func planChunks(size int64, lay *fileLayout, hint object.EncodeHint) []extent {
	switch {
	case lay == nil:
		var out []extent
		for off := int64(0); off < size; off += object.MaxChunkSize {
			out = append(out, extent{off: off, size: min(object.MaxChunkSize, size-off), hint: hint})
		}
		return out
	case lay.st == nil:
		if !tensorsTile(size, lay.tensors) {
			return planChunks(size, nil, hint)
		}
		return planTensors(size, lay.tensors)
	}
	st := lay.st
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

// tensorsTile reports whether tensors are in file order, not overlapping,
// and inside [0, size): what planTensors needs. The parsers promise it; a
// layout that breaks it is treated as opaque bytes, never trusted.
func tensorsTile(size int64, tensors []layoutTensor) bool {
	next := int64(0)
	for _, t := range tensors {
		if t.off < next || t.size < 0 || t.off > size || t.size > size-t.off {
			return false
		}
		next = t.off + t.size
	}
	return true
}

// ownTensor is the smallest tensor of a torch.save zip or GGUF file that
// gets extents of its own; smaller ones share extents of up to smallTensor
// bytes. Frozen and trained tensors alternate in such files (the frozen
// blocks of a backbone, then the trained ones), so a shared extent that
// holds one trained tensor is stored again at every save: keeping shared
// extents to tiny tensors (norms, biases) keeps that loss to a few KiB.
const ownTensor = 64 << 10

// planTensors cuts a file whose tensors lie at known offsets, with other
// bytes around them (metadata: zip headers, the pickle and the central
// directory of a torch.save zip, the header of a GGUF file, alignment
// padding), much as safetensors files are cut:
//
//   - a tensor of at least ownTensor bytes gets extents of its own, cut
//     every MaxChunkSize bytes from its start, with exactly its bytes: a
//     tensor that did not change gives the same chunks wherever the file
//     puts it;
//   - consecutive smaller tensors share an extent of up to smallTensor
//     bytes, which holds the metadata between them (zip local headers,
//     padding);
//   - the metadata elsewhere (before the first tensor, between a tensor
//     with extents of its own and its neighbours, after the last) gets
//     extents of its own, cut every MaxChunkSize bytes, encoded as
//     structured data;
//   - a file smaller than smallTensor is one extent.
//
// An extent of tensors of one element width gets the byte-plane codec with
// that width; of quantized blocks, zstd or raw; of several widths or of an
// unknown one, the codec a trial on its bytes picks. tensors must tile the
// file (tensorsTile).
func planTensors(size int64, tensors []layoutTensor) []extent {
	if size < smallTensor {
		all := make([]int, len(tensors))
		for i := range all {
			all[i] = i
		}
		if size == 0 {
			return []extent{{tensors: all}}
		}
		return []extent{{off: 0, size: size, trial: true, tensors: all}}
	}
	var out []extent
	metadata := func(off, end int64) {
		for ; off < end; off += object.MaxChunkSize {
			out = append(out, extent{off: off, size: min(object.MaxChunkSize, end-off), hint: object.EncodeHint{Text: true}})
		}
	}
	var group *extent
	groupElem := 0
	flush := func() {
		if group == nil {
			return
		}
		if groupElem == elemUnknown {
			group.trial = true
		} else {
			group.hint.ElemSize = groupElem
		}
		out = append(out, *group)
		group = nil
	}
	next := int64(0) // the end of what the extents so far cover
	for i, t := range tensors {
		end := t.off + t.size
		if t.size >= ownTensor {
			flush()
			metadata(next, t.off)
			hint, trial := object.EncodeHint{ElemSize: max(t.elem, 0)}, t.elem == elemUnknown
			for off := t.off; off < end; off += object.MaxChunkSize {
				out = append(out, extent{off: off, size: min(object.MaxChunkSize, end-off), hint: hint, trial: trial})
			}
			next = end
			continue
		}
		if group == nil || end-group.off > smallTensor {
			flush()
			metadata(next, t.off)
			group = &extent{off: t.off}
			groupElem = t.elem
		} else if t.elem != groupElem {
			groupElem = elemUnknown
		}
		group.size = end - group.off
		group.tensors = append(group.tensors, i)
		next = end
	}
	flush()
	metadata(next, size)
	return out
}

// trialSample is how many bytes of an extent trialHint encodes with each
// candidate codec.
const trialSample = 1 << 20

// trialScratch holds the encoded samples of trialHint.
var trialScratch = sync.Pool{New: func() any {
	b := make([]byte, 0, object.StoredCap(trialSample))
	return &b
}}

// trialHint picks the codec for bytes of unknown element width: it encodes
// their first trialSample bytes with the byte-plane codec for 2- and 4-byte
// elements and with zstd, and returns the hint of the smallest (zstd on a
// tie; Encode itself falls back to raw when nothing pays).
func trialHint(content []byte) object.EncodeHint {
	sample := content[:min(len(content), trialSample)]
	bp := trialScratch.Get().(*[]byte)
	defer trialScratch.Put(bp)
	best := object.EncodeHint{}
	bestLen := len(object.Encode((*bp)[:0], sample, best))
	for _, elem := range []int{2, 4} {
		hint := object.EncodeHint{ElemSize: elem}
		if n := len(object.Encode((*bp)[:0], sample, hint)); n < bestLen {
			best, bestLen = hint, n
		}
	}
	return best
}

// tensorTable builds the manifest's tensor table of a file whose layout
// has a format, from its chunks and the digests of grouped tensors.
func tensorTable(l *fileLayout, chunks []manifest.Chunk, grouped map[int]string) *manifest.TensorTable {
	tt := &manifest.TensorTable{Format: l.format, BigEndian: l.bigEndian, Tensors: make([]manifest.Tensor, len(l.tensors))}
	for i, t := range l.tensors {
		tt.Tensors[i] = manifest.Tensor{Name: t.name, Dtype: t.dtype, Shape: t.shape, Begin: t.off, End: t.off + t.size,
			Digest: tensorDigest(t.off, t.off+t.size, chunks, grouped, i)}
	}
	return tt
}

// tensorDigest is the digest of the tensor i at [begin, end) of a file: the
// one computed from its bytes when it shares a chunk, else the digest of
// the chunks that cover exactly it.
func tensorDigest(begin, end int64, chunks []manifest.Chunk, grouped map[int]string, i int) string {
	if d, ok := grouped[i]; ok {
		return d
	}
	var own []manifest.Chunk
	for _, c := range chunks {
		if c.Offset >= begin && c.Offset+c.Size <= end && c.Size > 0 {
			own = append(own, c)
		}
	}
	switch len(own) {
	case 0:
		return manifest.SHA256Digest(object.Hash(nil))
	case 1:
		return manifest.SHA256Digest(own[0].ID)
	}
	return manifest.ChunksDigest(own)
}
