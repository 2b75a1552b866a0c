package diff

import (
	"fmt"
	"slices"
	"sort"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/store/manifest"
)

// TensorChange compares one tensor name across the weights files of both
// sides that have a tensor table in their manifest (safetensors files, and
// since manifest version 2 torch.save zips and GGUF files), from the
// manifests alone.
type TensorChange struct {
	Name string `json:"name"`
	// Kind: Same (equal digests), Changed (same dtype and shape, other
	// bytes), DtypeChanged, ShapeChanged, Added or Removed.
	Kind   Kind    `json:"kind"`
	FileA  string  `json:"file_a,omitempty"` // the weights file holding it
	FileB  string  `json:"file_b,omitempty"`
	DtypeA string  `json:"dtype_a,omitempty"`
	DtypeB string  `json:"dtype_b,omitempty"`
	ShapeA []int64 `json:"shape_a"` // null when only in B
	ShapeB []int64 `json:"shape_b"` // null when only in A
	BytesA int64   `json:"bytes_a"`
	BytesB int64   `json:"bytes_b"`
	// Stats is set for Changed tensors when Options.Stats is.
	Stats *TensorStats `json:"stats,omitempty"`
}

// tensorRef locates a tensor in a side's manifest.
type tensorRef struct {
	file   *manifest.File
	tensor *manifest.Tensor
	// start is where the tensor's bytes start in the file: Begin plus the
	// safetensors data offset, or Begin for a manifest.TensorTable.
	start int64
	// bigEndian: the file stores its numbers big-endian.
	bigEndian bool
}

// tensorsOf indexes every tensor of every file of s that has a tensor
// table (safetensors, torch.save zip, GGUF) by name. A name held by two
// files is an error of the checkpoint: the first (by path) is kept, with a
// note.
func tensorsOf(s *Side) (map[string]tensorRef, []string) {
	out := map[string]tensorRef{}
	var notes []string
	add := func(f *manifest.File, t *manifest.Tensor, start int64, bigEndian bool) {
		if prev, dup := out[t.Name]; dup {
			notes = append(notes, fmt.Sprintf("%s: tensor %q is in %s and %s; the first is compared", textsafe.Name(s.Label), t.Name, textsafe.Name(prev.file.Path), textsafe.Name(f.Path)))
			return
		}
		out[t.Name] = tensorRef{file: f, tensor: t, start: start, bigEndian: bigEndian}
	}
	for i := range s.Manifest.Files {
		f := &s.Manifest.Files[i]
		switch {
		case f.Safetensors != nil:
			for j := range f.Safetensors.Tensors {
				t := &f.Safetensors.Tensors[j]
				add(f, t, f.Safetensors.DataOffset+t.Begin, false)
			}
		case f.Tensors != nil:
			for j := range f.Tensors.Tensors {
				t := &f.Tensors.Tensors[j]
				add(f, t, t.Begin, f.Tensors.BigEndian)
			}
		}
	}
	return out, notes
}

// diffTensors matches tensors by name, whatever file (shard) holds them,
// and compares dtype, shape and digest. The result is in natural name order
// (h.2 before h.10).
func diffTensors(a, b *Side) ([]TensorChange, []string) {
	ta, notes := tensorsOf(a)
	tb, notesB := tensorsOf(b)
	notes = append(notes, notesB...)
	names := make([]string, 0, len(ta)+len(tb))
	for n := range ta {
		names = append(names, n)
	}
	for n := range tb {
		if _, ok := ta[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool { return naturalLess(names[i], names[j]) })

	out := make([]TensorChange, 0, len(names))
	for _, n := range names {
		c := TensorChange{Name: n}
		ra, inA := ta[n]
		rb, inB := tb[n]
		if inA {
			c.FileA, c.DtypeA, c.ShapeA, c.BytesA = ra.file.Path, ra.tensor.Dtype, ra.tensor.Shape, ra.tensor.End-ra.tensor.Begin
		}
		if inB {
			c.FileB, c.DtypeB, c.ShapeB, c.BytesB = rb.file.Path, rb.tensor.Dtype, rb.tensor.Shape, rb.tensor.End-rb.tensor.Begin
		}
		switch {
		case !inB:
			c.Kind = Removed
		case !inA:
			c.Kind = Added
		case c.DtypeA != c.DtypeB:
			c.Kind = DtypeChanged
		case !slices.Equal(c.ShapeA, c.ShapeB):
			c.Kind = ShapeChanged
		case ra.tensor.Digest == rb.tensor.Digest:
			c.Kind = Same
		default:
			c.Kind = Changed
		}
		out = append(out, c)
	}
	return out, notes
}

// naturalLess orders strings with runs of digits compared as numbers, so
// that "h.2.mlp" sorts before "h.10.mlp". Ties fall back to byte order.
func naturalLess(x, y string) bool {
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		if isDigit(x[i]) && isDigit(y[j]) {
			ei, ej := digitsEnd(x, i), digitsEnd(y, j)
			nx, ny := trimZeros(x[i:ei]), trimZeros(y[j:ej])
			if len(nx) != len(ny) {
				return len(nx) < len(ny)
			}
			if nx != ny {
				return nx < ny
			}
			i, j = ei, ej
			continue
		}
		if x[i] != y[j] {
			return x[i] < y[j]
		}
		i++
		j++
	}
	if len(x)-i != len(y)-j {
		return len(x)-i < len(y)-j
	}
	return x < y
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitsEnd(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

func trimZeros(digits string) string {
	for len(digits) > 1 && digits[0] == '0' {
		digits = digits[1:]
	}
	return digits
}
