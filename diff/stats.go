package diff

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/manifest"
)

// DefaultMaxRead is how many bytes of a tensor Stats reads at a time per
// side: the registry's chunk size, so that a piece is one blob.
const DefaultMaxRead = 8 << 20

// TensorStats measures how much a Changed tensor moved, element by element.
// Elements where either side is NaN or ±Inf are counted in NonFinite and
// left out of every other number.
type TensorStats struct {
	Elements  int64 `json:"elements"`
	Differing int64 `json:"differing"` // finite elements whose values differ
	NonFinite int64 `json:"non_finite"`
	// MaxAbsDelta is max |b - a|.
	MaxAbsDelta float64 `json:"max_abs_delta"`
	// NormA and NormDelta are the L2 norms ||a|| and ||b - a||.
	NormA     float64 `json:"norm_a"`
	NormDelta float64 `json:"norm_delta"`
	// RelL2 is ||b - a|| / ||a||. When ||a|| is 0 it is 0 if b is too, and
	// otherwise undefined: nil, with a Note.
	RelL2 *float64 `json:"rel_l2"`
	// Skipped says why no statistics were computed (a dtype other than
	// BF16, F16, F32 or F64); every other field is then zero.
	Skipped string `json:"skipped,omitempty"`
	Note    string `json:"note,omitempty"`
}

// elementDecoders turn little-endian element bytes into float64.
var elementDecoders = map[string]func([]byte) float64{
	string(layout.DtypeBF16): func(b []byte) float64 {
		return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16))
	},
	string(layout.DtypeF16): func(b []byte) float64 { return halfToFloat(binary.LittleEndian.Uint16(b)) },
	string(layout.DtypeF32): func(b []byte) float64 { return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))) },
	string(layout.DtypeF64): func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) },
}

// torchDtypes are the safetensors names of the torch dtypes a torch.save
// tensor table names (manifest.FormatTorchZip).
var torchDtypes = map[string]layout.Dtype{
	"bfloat16": layout.DtypeBF16, "float16": layout.DtypeF16, "float32": layout.DtypeF32, "float64": layout.DtypeF64,
}

// statsDtype is the safetensors name of a tensor table's dtype: torch's
// names mapped, GGUF's and safetensors' as they are.
func statsDtype(dtype string) string {
	if d, ok := torchDtypes[dtype]; ok {
		return string(d)
	}
	return dtype
}

// halfToFloat converts IEEE 754 binary16 bits to float64.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, frac := int(h>>10)&0x1f, float64(h&0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	}
	return sign * math.Ldexp(1024+frac, exp-25)
}

// computeStats fills Stats of every Changed tensor, reading both sides in
// pieces of at most maxRead bytes. Tensors are visited in A's file order,
// so that small tensors sharing a chunk are read with one fetch.
func computeStats(ctx context.Context, a, b *Side, changes []TensorChange, maxRead int64) error {
	ta, _ := tensorsOf(a)
	tb, _ := tensorsOf(b)
	var todo []int
	for i, c := range changes {
		if c.Kind == Changed {
			todo = append(todo, i)
		}
	}
	sort.SliceStable(todo, func(i, j int) bool {
		x, y := ta[changes[todo[i]].Name], ta[changes[todo[j]].Name]
		if x.file.Path != y.file.Path {
			return x.file.Path < y.file.Path
		}
		return x.tensor.Begin < y.tensor.Begin
	})
	ra, rb := &pieceReader{side: a, max: maxRead}, &pieceReader{side: b, max: maxRead}
	for _, i := range todo {
		c := &changes[i]
		st, err := tensorStats(ctx, ra, rb, ta[c.Name], tb[c.Name], maxRead)
		if err != nil {
			return fmt.Errorf("stats of tensor %s: %w", c.Name, err)
		}
		c.Stats = st
	}
	return nil
}

// tensorStats compares one tensor of equal dtype and shape on both sides.
func tensorStats(ctx context.Context, ra, rb *pieceReader, x, y tensorRef, maxRead int64) (*TensorStats, error) {
	dtype := statsDtype(x.tensor.Dtype)
	if x.bigEndian || y.bigEndian {
		return &TensorStats{Skipped: "big-endian file: statistics only for little-endian ones"}, nil
	}
	decode, ok := elementDecoders[dtype]
	if !ok {
		return &TensorStats{Skipped: fmt.Sprintf("dtype %s: statistics only for BF16, F16, F32 and F64", dtype)}, nil
	}
	elem := int64(layout.Dtype(dtype).ElemSize())
	size := x.tensor.End - x.tensor.Begin
	if size != y.tensor.End-y.tensor.Begin || size%elem != 0 {
		return nil, fmt.Errorf("sizes %d and %d do not hold whole %s elements", size, y.tensor.End-y.tensor.Begin, dtype)
	}
	piece := max(maxRead/elem, 1) * elem
	st := &TensorStats{Elements: size / elem}
	var normA, normDelta scaledNorm
	overflow := false
	for off := int64(0); off < size; off += piece {
		n := min(piece, size-off)
		var pa, pb []byte
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() (err error) {
			pa, err = ra.read(gctx, x.file, x.start+off, n)
			return err
		})
		g.Go(func() (err error) {
			pb, err = rb.read(gctx, y.file, y.start+off, n)
			return err
		})
		if err := g.Wait(); err != nil {
			return nil, err
		}
		for k := int64(0); k < n; k += elem {
			va, vb := decode(pa[k:k+elem]), decode(pb[k:k+elem])
			if !finite(va) || !finite(vb) {
				st.NonFinite++
				continue
			}
			delta := vb - va
			if math.IsInf(delta, 0) {
				delta, overflow = math.Copysign(math.MaxFloat64, delta), true
			}
			if delta != 0 {
				st.Differing++
			}
			st.MaxAbsDelta = max(st.MaxAbsDelta, math.Abs(delta))
			normA.add(va)
			normDelta.add(delta)
		}
	}
	st.NormA, st.NormDelta = normA.value(), normDelta.value()
	switch {
	case normA.scale != 0:
		rel := normDelta.ratio(normA)
		st.RelL2 = &rel
	case normDelta.scale == 0:
		rel := 0.0
		st.RelL2 = &rel
	default:
		st.Note = "A is all zeros: relative change undefined"
	}
	if overflow {
		st.Note = "some differences overflow float64 and were counted as the largest float64"
	}
	return st, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// scaledNorm accumulates an L2 norm as scale * sqrt(ssq) so that it never
// overflows, as LAPACK's dnrm2 does.
type scaledNorm struct{ scale, ssq float64 }

func (s *scaledNorm) add(x float64) {
	if x == 0 {
		return
	}
	ax := math.Abs(x)
	if s.scale < ax {
		r := s.scale / ax
		s.ssq = 1 + s.ssq*r*r
		s.scale = ax
		return
	}
	r := ax / s.scale
	s.ssq += r * r
}

func (s scaledNorm) value() float64 { return s.scale * math.Sqrt(s.ssq) }

// ratio is s / d without overflow; d.scale must not be 0.
func (s scaledNorm) ratio(d scaledNorm) float64 {
	return s.scale / d.scale * math.Sqrt(s.ssq/d.ssq)
}

// pieceReader reads tensor pieces of one side. A piece that lies inside a
// single chunk of at most max bytes is served from that whole chunk, which
// it keeps until the next read outside it: small tensors packed into one
// chunk cost one fetch, not one each.
type pieceReader struct {
	side   *Side
	max    int64
	file   *manifest.File
	offset int64 // of the kept chunk in file
	data   []byte
}

func (p *pieceReader) read(ctx context.Context, f *manifest.File, off, n int64) ([]byte, error) {
	if p.file == f && off >= p.offset && off+n <= p.offset+int64(len(p.data)) {
		return p.data[off-p.offset : off-p.offset+n], nil
	}
	if c, ok := chunkCovering(f, off, n); ok && c.Size <= p.max {
		data, err := p.side.Data.ReadRange(ctx, f, c.Offset, c.Size)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.side.Label, err)
		}
		p.file, p.offset, p.data = f, c.Offset, data
		return data[off-c.Offset : off-c.Offset+n], nil
	}
	data, err := p.side.Data.ReadRange(ctx, f, off, n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.side.Label, err)
	}
	return data, nil
}

// chunkCovering returns the chunk of f that holds all of [off, off+n).
func chunkCovering(f *manifest.File, off, n int64) (manifest.Chunk, bool) {
	i := sort.Search(len(f.Chunks), func(i int) bool { return f.Chunks[i].Offset+f.Chunks[i].Size > off })
	if i < len(f.Chunks) && f.Chunks[i].Offset <= off && off+n <= f.Chunks[i].Offset+f.Chunks[i].Size {
		return f.Chunks[i], true
	}
	return manifest.Chunk{}, false
}
