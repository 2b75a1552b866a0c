package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/ckptdev/ckpt/layout"
)

// Drift settings of the next checkpoint the delta case pushes: every
// element of every tensor is multiplied by 1 + N(0, rel). For bf16, rel
// 1.5e-3 moves about 5% of the elements past half a unit in the last place,
// so they change by one (a pure bf16 fine-tune between checkpoints changes
// 4-5%); for fp32, rel
// 0.01 changes every element's low mantissa bits and rarely its exponent
// (an fp32 fine-tune at lr 2e-5).
const (
	driftBF16 = 1.5e-3
	driftF32  = 0.01
)

// driftFolder writes dst, the next checkpoint of the model folder src:
// every file copied, the tensors of its safetensors files drifted (seeded
// by seed, so runs repeat).
func driftFolder(src, dst string, seed uint64) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		if strings.HasSuffix(p, ".safetensors") {
			return driftSafetensors(p, out, seed)
		}
		return copyFile(p, out)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// driftSafetensors copies the safetensors file src to dst with its BF16
// and F32 tensors drifted, in pieces of 8 MiB.
func driftSafetensors(src, dst string, seed uint64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	h, err := layout.ParseSafetensorsHeader(in, fi.Size())
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	// Header and any padding as they are.
	if _, err := io.Copy(out, io.NewSectionReader(in, 0, h.DataOffset)); err != nil {
		out.Close()
		return err
	}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	buf := make([]byte, 8<<20)
	pos := h.DataOffset
	for _, t := range h.Tensors {
		lo, hi := h.DataOffset+t.Begin, h.DataOffset+t.End
		if lo > pos { // a gap between tensors: as it is
			if _, err := io.Copy(out, io.NewSectionReader(in, pos, lo-pos)); err != nil {
				out.Close()
				return err
			}
		}
		for off := lo; off < hi; off += int64(len(buf)) {
			b := buf[:min(int64(len(buf)), hi-off)]
			if _, err := in.ReadAt(b, off); err != nil {
				out.Close()
				return fmt.Errorf("%s: %w", src, err)
			}
			driftElems(b, t.Dtype, r)
			if _, err := out.Write(b); err != nil {
				out.Close()
				return err
			}
		}
		pos = max(pos, hi)
	}
	if pos < fi.Size() {
		if _, err := io.Copy(out, io.NewSectionReader(in, pos, fi.Size()-pos)); err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

// driftElems multiplies each element of b (dtype dt) by 1 + N(0, rel).
func driftElems(b []byte, dt layout.Dtype, r *rand.Rand) {
	switch dt {
	case layout.DtypeBF16:
		for i := 0; i+2 <= len(b); i += 2 {
			v := math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[i:])) << 16)
			v *= float32(1 + r.NormFloat64()*driftBF16)
			binary.LittleEndian.PutUint16(b[i:], bf16(v))
		}
	case layout.DtypeF32:
		for i := 0; i+4 <= len(b); i += 4 {
			v := math.Float32frombits(binary.LittleEndian.Uint32(b[i:]))
			v *= float32(1 + r.NormFloat64()*driftF32)
			binary.LittleEndian.PutUint32(b[i:], math.Float32bits(v))
		}
	}
}

// bf16 rounds v to bf16, to nearest even.
func bf16(v float32) uint16 {
	b := math.Float32bits(v)
	if b&0x7fff_ffff > 0x7f80_0000 {
		return 0x7fc0
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}
