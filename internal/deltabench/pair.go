package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ckptdev/ckpt/store/planes"
)

// coded is a file's chunks coded standalone, computed once per file.
type coded struct {
	sizes []int    // stored size of each chunk
	enc   [][]byte // the planes payload, when that is what is stored
}

func codeStandalone(f *file) coded {
	c := coded{sizes: make([]int, len(f.chunks)), enc: make([][]byte, len(f.chunks))}
	for i, ch := range f.chunks {
		c.sizes[i], c.enc[i] = standalone(f.bytesOf(ch), ch.elem, ch.text)
	}
	return c
}

// chunkDelta is one chunk coded against its reference.
type chunkDelta struct {
	has     bool // the chunk has a reference
	same    bool // and equals it (deduplicated: stores nothing)
	size    int  // stored size of the delta object (auto op)
	xorSize int  // with the op forced (0 when not measured)
	subSize int
	v1Size  int    // issue 12's measurement: content XOR reference coded by Encode (version 1 planes)
	payload []byte // auto op, kept when asked
	form    planes.RefForm
}

// Stats sums what one file costs against one reference, in bytes.
type Stats struct {
	Raw        int64 `json:"raw"`
	Standalone int64 `json:"standalone"`
	// Delta is every chunk that has a reference stored as a delta (or
	// nothing if it is identical), the others standalone; XOR and Sub the
	// same with the op forced.
	Delta int64 `json:"delta"`
	XOR   int64 `json:"xor,omitempty"`
	Sub   int64 `json:"sub,omitempty"`
	// XORv1 is how issue 12 measured: content XOR reference, coded by
	// today's planes codec (no sparse blocks, no subtraction).
	XORv1 int64 `json:"xor_v1,omitempty"`
	// BestChunk keeps, per chunk, the smaller of standalone and delta;
	// BestTensor decides once per tensor (all its chunks one way).
	BestChunk  int64 `json:"best_chunk"`
	BestTensor int64 `json:"best_tensor"`
	// TensorChunked and TensorWhole are the deltas of the tensors of at
	// least one chunk coded per chunk and as one payload per tensor.
	TensorChunked int64 `json:"tensor_chunked,omitempty"`
	TensorWhole   int64 `json:"tensor_whole,omitempty"`
	// Chunks counts all chunks, Referenced those with a reference,
	// Deduped those equal to it, DeltaWins those where a delta is smaller.
	Chunks     int `json:"chunks"`
	Referenced int `json:"referenced"`
	Deduped    int `json:"deduped"`
	DeltaWins  int `json:"delta_wins"`
	// DecodeStandalone and DecodeDelta are CPU times of decoding the
	// planes chunks both ways (best of a few runs), over DecodedBytes.
	DecodeStandalone time.Duration `json:"decode_standalone_ns"`
	DecodeDelta      time.Duration `json:"decode_delta_ns"`
	DecodedBytes     int64         `json:"decoded_bytes"`
}

func (s *Stats) add(o Stats) {
	s.Raw += o.Raw
	s.Standalone += o.Standalone
	s.Delta += o.Delta
	s.XOR += o.XOR
	s.Sub += o.Sub
	s.XORv1 += o.XORv1
	s.BestChunk += o.BestChunk
	s.BestTensor += o.BestTensor
	s.TensorChunked += o.TensorChunked
	s.TensorWhole += o.TensorWhole
	s.Chunks += o.Chunks
	s.Referenced += o.Referenced
	s.Deduped += o.Deduped
	s.DeltaWins += o.DeltaWins
	s.DecodeStandalone += o.DecodeStandalone
	s.DecodeDelta += o.DecodeDelta
	s.DecodedBytes += o.DecodedBytes
}

// pairOptions says what compare measures beyond the auto-op deltas.
type pairOptions struct {
	ops       bool // also force each op
	perTensor bool // also code whole tensors
	timing    int  // decode timing repetitions, 0 for none
	keep      bool // keep the payloads
}

// compare codes every chunk of cur against ref (nil: no reference) and sums
// the costs. std is cur coded standalone.
func compare(cur, ref *file, std coded, opt pairOptions) (Stats, []chunkDelta, error) {
	var st Stats
	deltas := make([]chunkDelta, len(cur.chunks))
	unitStd := map[int]int64{}
	unitDelta := map[int]int64{}
	for i, c := range cur.chunks {
		content := cur.bytesOf(c)
		st.Raw += c.size
		st.Standalone += int64(std.sizes[i])
		st.Chunks++
		d := &deltas[i]
		if ref != nil {
			if refBytes, form, ok := reference(cur, ref, c); ok {
				d.has, d.form = true, form
				st.Referenced++
				if form == planes.RefSame && bytes.Equal(content, refBytes) {
					d.same = true
					st.Deduped++
				} else if err := codeChunk(d, content, refBytes, c, std.enc[i], &st, opt); err != nil {
					return st, nil, fmt.Errorf("%s chunk at %d: %w", cur.path, c.off, err)
				}
			}
		}
		s := int64(std.sizes[i])
		dsz, xsz, ssz, vsz := s, s, s, s
		switch {
		case d.same:
			dsz, xsz, ssz, vsz = 0, 0, 0, 0
		case d.has:
			dsz = int64(d.size)
			if d.xorSize > 0 {
				xsz, ssz, vsz = int64(d.xorSize), int64(d.subSize), int64(d.v1Size)
			}
		}
		st.Delta += dsz
		st.XOR += xsz
		st.Sub += ssz
		st.XORv1 += vsz
		best := min(s, dsz)
		if best < s {
			st.DeltaWins++
		}
		st.BestChunk += best
		unitStd[c.unit] += s
		unitDelta[c.unit] += dsz
	}
	for u, s := range unitStd {
		st.BestTensor += min(s, unitDelta[u])
	}
	if !opt.ops {
		st.XOR, st.Sub, st.XORv1 = 0, 0, 0
	}
	if opt.perTensor && ref != nil {
		if err := perTensor(cur, ref, deltas, &st); err != nil {
			return st, nil, err
		}
	}
	return st, deltas, nil
}

// codeChunk codes content against refBytes into d and, if asked, times
// decoding it both ways.
func codeChunk(d *chunkDelta, content, refBytes []byte, c chunk, stdEnc []byte, st *Stats, opt pairOptions) error {
	payload, err := encodeDelta(content, refBytes, d.form, c.elem, planes.OpAuto)
	if err != nil {
		return err
	}
	d.size = deltaObject(len(payload), len(refBytes))
	if opt.keep {
		d.payload = payload
	}
	if opt.ops {
		for _, op := range []planes.DeltaOp{planes.OpXOR, planes.OpSub} {
			p, err := encodeDelta(content, refBytes, d.form, c.elem, op)
			if err != nil {
				return err
			}
			if op == planes.OpXOR {
				d.xorSize = deltaObject(len(p), len(refBytes))
			} else {
				d.subSize = deltaObject(len(p), len(refBytes))
			}
		}
		x := make([]byte, len(content))
		r := refBytes
		if d.form == planes.RefF32ToBF16 {
			r = roundToBF16(refBytes)
		}
		for i := range x {
			x[i] = content[i] ^ r[i]
		}
		v1, err := planes.Encode(nil, x, max(c.elem, 1))
		if err != nil {
			return err
		}
		d.v1Size = deltaObject(len(v1), len(refBytes))
	}
	if timed := opt.timing > 0 && c.elem >= 2 && stdEnc != nil; timed {
		ts, err := timedDecode(stdEnc, nil, content, opt.timing)
		if err != nil {
			return fmt.Errorf("standalone decode: %w", err)
		}
		td, err := timedDecode(payload, refBytes, content, opt.timing)
		if err != nil {
			return fmt.Errorf("delta decode: %w", err)
		}
		st.DecodeStandalone += ts
		st.DecodeDelta += td
		st.DecodedBytes += int64(len(content))
	} else {
		// Still prove the delta decodes to the content.
		out, err := planes.DecodeDelta(nil, payload, refBytes, len(content))
		if err != nil {
			return fmt.Errorf("delta decode: %w", err)
		}
		if !bytes.Equal(out, content) {
			return fmt.Errorf("delta decodes to other bytes")
		}
	}
	return nil
}

// perTensor codes each tensor that spans whole chunks of its own as one
// delta payload, for comparison with its per-chunk deltas.
func perTensor(cur, ref *file, deltas []chunkDelta, st *Stats) error {
	chunked := map[int]int64{}
	complete := map[int]bool{}
	for i, c := range cur.chunks {
		if c.unit < 0 {
			continue
		}
		if _, seen := complete[c.unit]; !seen {
			complete[c.unit] = true
		}
		d := deltas[i]
		if !d.has || d.same {
			complete[c.unit] = false
			continue
		}
		chunked[c.unit] += int64(d.size)
	}
	for t, ok := range complete {
		if !ok {
			continue
		}
		ri, found := refTensor(cur, ref, t)
		if !found {
			continue
		}
		content, refBytes := cur.tensorBytes(t), ref.tensorBytes(ri)
		form := planes.RefSame
		if len(refBytes) == 2*len(content) {
			form = planes.RefF32ToBF16
		}
		payload, err := encodeDelta(content, refBytes, form, cur.tensors[t].elem, planes.OpAuto)
		if err != nil {
			return fmt.Errorf("%s tensor %s: %w", cur.path, cur.tensors[t].name, err)
		}
		st.TensorChunked += chunked[t]
		st.TensorWhole += int64(deltaObject(len(payload), len(refBytes)))
	}
	return nil
}

// roundToBF16 returns the bf16 roundings of fp32 values as PyTorch casts
// (nearest even; NaN to 0x7fc0), as a delta of form RefF32ToBF16 does.
func roundToBF16(f32 []byte) []byte {
	out := make([]byte, len(f32)/2)
	for i := 0; i+4 <= len(f32); i += 4 {
		b := binary.LittleEndian.Uint32(f32[i:])
		v := uint16((b + 0x7fff + (b>>16)&1) >> 16)
		if b&0x7fff_ffff > 0x7f80_0000 {
			v = 0x7fc0
		}
		binary.LittleEndian.PutUint16(out[i/2:], v)
	}
	return out
}
