package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/planes"
)

// This file estimates what ZipLLM (NSDI '26) would store for a model
// family's weights files: identical tensors are stored once across the
// whole family (by content hash); every other tensor of a fine-tune is
// coded as its XOR with the same-name, same-dtype, same-shape tensor of the
// family's base checkpoint when one exists, the XOR split into byte planes
// and compressed (their BitX), and kept only where smaller than the
// tensor's standalone coding; tensors of the base run itself are coded
// standalone. Both codings here are store/planes' byte-plane codec (byte
// grouping + zstd, as BitX), so the estimate isolates the scheme (dedupe
// plus XOR against the base only) from the entropy coder. The bytes of a
// file outside its tensors (a safetensors header, a torch zip's pickle and
// zip records) are counted raw, deduplicated by content like tensors.
//
// pytorch_model.bin: the layout package's torch zip reader gives every
// storage's dtype but not the names of the tensors built on it, so a
// storage is paired with the base tensor of the same dtype and byte size
// whose bytes are nearest (most leading bits in common per element, on a
// sample). On the family bench's frozen run every storage so paired is the
// same-name tensor (all 52 storages of its last checkpoint checked
// against the names its data.pkl gives them, read with Python's
// pickletools); the output counts pairings won by less than
// ambiguousMargin bits per element.

// weightsFiles are the weights file names the estimate codes, in the
// order they are looked for in a checkpoint folder.
var weightsFiles = []string{"model.safetensors", "pytorch_model.bin"}

// zipTensor is one tensor of a safetensors file or one storage of a torch
// zip.
type zipTensor struct {
	// name is the tensor's name; "" for a torch zip storage (unnamed).
	name  string
	dtype string
	// shape is the tensor's shape; a storage's is its element count.
	shape []int64
	// elem is the element width the planes split the bytes by.
	elem int
	data []byte
}

// weightsFile is a weights file read for the estimate.
type weightsFile struct {
	path    string
	size    int64
	tensors []zipTensor
	// meta are the bytes outside every tensor, concatenated.
	meta []byte
}

// readWeights reads the weights file of a checkpoint folder
// (model.safetensors or pytorch_model.bin); nil if it has neither.
func readWeights(dir string) (*weightsFile, error) {
	for _, name := range weightsFiles {
		p := filepath.Join(dir, name)
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if filepath.Ext(name) == ".safetensors" {
			return parseSafetensorsWeights(p, data)
		}
		return parseTorchWeights(p, data)
	}
	return nil, nil
}

func parseSafetensorsWeights(p string, data []byte) (*weightsFile, error) {
	h, err := layout.ParseSafetensorsHeader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	w := &weightsFile{path: p, size: int64(len(data)), meta: data[:h.DataOffset]}
	next := h.DataOffset
	for _, t := range h.Tensors {
		begin, end := h.DataOffset+t.Begin, h.DataOffset+t.End
		if begin > next {
			w.meta = append(slices.Clip(w.meta), data[next:begin]...)
		}
		next = max(next, end)
		elem := t.Dtype.ElemSize()
		if elem == 0 || elem > 8 {
			elem = 1
		}
		w.tensors = append(w.tensors, zipTensor{name: t.Name, dtype: string(t.Dtype), shape: t.Shape, elem: elem, data: data[begin:end]})
	}
	if int64(len(data)) > next {
		w.meta = append(slices.Clip(w.meta), data[next:]...)
	}
	return w, nil
}

// torchDtypeNames maps torch dtype names to safetensors' spelling, so that
// a torch storage and a safetensors tensor of one dtype compare equal.
var torchDtypeNames = map[layout.TorchDtype]string{
	"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
	"int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
}

func parseTorchWeights(p string, data []byte) (*weightsFile, error) {
	tz, err := layout.ParseTorchZip(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	w := &weightsFile{path: p, size: int64(len(data))}
	for _, m := range tz.Metadata {
		w.meta = append(w.meta, data[m.Offset:m.End()]...)
	}
	for _, s := range tz.Storages {
		dtype, ok := torchDtypeNames[s.Dtype]
		if !ok {
			dtype = "torch:" + string(s.Dtype)
		}
		elem := s.ElemSize
		if elem == 0 || elem > 8 {
			elem = 1
		}
		w.tensors = append(w.tensors, zipTensor{dtype: dtype, shape: []int64{s.Size / int64(elem)}, elem: elem, data: data[s.DataOffset:s.Extent().End()]})
	}
	return w, nil
}

// zipEntry is one tensor (or a file's metadata) occurrence: its content
// hash and the bytes its coding takes where this occurrence is the first.
type zipEntry struct {
	key   [32]byte
	coded int64
	// xor: the coding is the XOR against the base.
	xor bool
}

// zipFile is one weights file as the estimate codes it.
type zipFile struct {
	run     string
	version string
	raw     int64
	entries []zipEntry
}

// zipLLM accumulates the estimate over a family's weights files, added in
// push order.
type zipLLM struct {
	base       []zipTensor
	baseByName map[string]*zipTensor
	// standalone and xorCoded cache codings by content (and reference).
	standalone map[[32]byte]int64
	xorCoded   map[[2][32]byte]int64
	files      []zipFile
	// paired counts fine-tune tensors that found a reference, by how
	// (named, nearest); unpaired those that did not.
	paired   map[string]int
	unpaired int
	// ambiguous counts storages paired by nearest content whose nearest
	// base tensor was not clearly nearer than the next: less than
	// ambiguousMargin more leading bits in common per element.
	ambiguous int
}

// ambiguousMargin is the mean number of leading bits per element by which
// the nearest base tensor must beat the next for a pairing by content to
// count as clear.
const ambiguousMargin = 1

func newZipLLM() *zipLLM {
	return &zipLLM{standalone: map[[32]byte]int64{}, xorCoded: map[[2][32]byte]int64{}, paired: map[string]int{}}
}

// setBase makes w the family's base: the reference of every fine-tune
// tensor added later. w's bytes must stay unchanged while z is used.
func (z *zipLLM) setBase(w *weightsFile) {
	z.base = w.tensors
	z.baseByName = map[string]*zipTensor{}
	for i := range z.base {
		if t := &z.base[i]; t.name != "" {
			z.baseByName[t.name] = t
		}
	}
}

// add codes the weights file w of a checkpoint; fineTune says whether its
// tensors may be XOR-ed against the base (the base run's may not).
func (z *zipLLM) add(run, version string, w *weightsFile, fineTune bool) error {
	f := zipFile{run: run, version: version, raw: w.size}
	f.entries = append(f.entries, zipEntry{key: sha256.Sum256(w.meta), coded: int64(len(w.meta))})
	for i := range w.tensors {
		t := &w.tensors[i]
		e := zipEntry{key: sha256.Sum256(t.data)}
		alone, err := z.codeStandalone(e.key, t)
		if err != nil {
			return fmt.Errorf("%s: tensor %d (%s): %w", w.path, i, t.name, err)
		}
		e.coded = alone
		if fineTune {
			ref := z.reference(t)
			if ref == nil {
				z.unpaired++
			} else {
				xored, err := z.codeXOR(e.key, t, ref)
				if err != nil {
					return fmt.Errorf("%s: tensor %d (%s): %w", w.path, i, t.name, err)
				}
				if xored < alone {
					e.coded, e.xor = xored, true
				}
			}
		}
		f.entries = append(f.entries, e)
	}
	z.files = append(z.files, f)
	return nil
}

func (z *zipLLM) codeStandalone(key [32]byte, t *zipTensor) (int64, error) {
	if n, ok := z.standalone[key]; ok {
		return n, nil
	}
	enc, err := planes.Encode(nil, t.data, t.elem)
	if err != nil {
		return 0, err
	}
	z.standalone[key] = int64(len(enc))
	return int64(len(enc)), nil
}

func (z *zipLLM) codeXOR(key [32]byte, t, ref *zipTensor) (int64, error) {
	k := [2][32]byte{key, sha256.Sum256(ref.data)}
	if n, ok := z.xorCoded[k]; ok {
		return n, nil
	}
	x := make([]byte, len(t.data))
	for i := range x {
		x[i] = t.data[i] ^ ref.data[i]
	}
	enc, err := planes.Encode(nil, x, t.elem)
	if err != nil {
		return 0, err
	}
	z.xorCoded[k] = int64(len(enc))
	return int64(len(enc)), nil
}

// reference returns the base tensor t is XOR-ed against: the same-name one
// of the same dtype and shape; for an unnamed storage, the nearest of the
// base tensors of its dtype and byte size. nil if there is none.
func (z *zipLLM) reference(t *zipTensor) *zipTensor {
	if t.name != "" {
		ref := z.baseByName[t.name]
		if ref == nil || ref.dtype != t.dtype || !slices.Equal(ref.shape, t.shape) {
			return nil
		}
		z.paired["named"]++
		return ref
	}
	var best *zipTensor
	bestScore, second, n := -1, -1, 0
	for i := range z.base {
		c := &z.base[i]
		if c.dtype != t.dtype || len(c.data) != len(t.data) {
			continue
		}
		s, m := nearness(t.data, c.data, t.elem)
		n = m
		if s > bestScore {
			best, bestScore, second = c, s, bestScore
		} else if s > second {
			second = s
		}
	}
	if best != nil {
		z.paired["nearest"]++
		if second >= 0 && bestScore-second < ambiguousMargin*n {
			z.ambiguous++
		}
	}
	return best
}

// nearnessSample is how many elements nearness looks at.
const nearnessSample = 1 << 14

// nearness sums, over an evenly spread sample of elements, the number of
// leading bits an element shares with the reference's (the leading zeros
// of their XOR as a little-endian integer of the element's width), and
// returns it with the number of elements looked at. A fine-tuned tensor
// shares sign, exponent and leading mantissa bits with its own base tensor
// (11 to 19 of 32 bits per element in the frozen run of the family bench,
// 300 steps at lr 2e-5) and fewer with any other (3 to 4 for weight
// matrices; layer norm weights, all near 1, share up to 14, their own base
// tensor's 16 to 19).
func nearness(a, b []byte, elem int) (score, n int) {
	count := len(a) / elem
	if count == 0 || len(b) < len(a) {
		return 0, 0
	}
	stride := max(1, count/nearnessSample)
	for i := 0; i < count; i += stride {
		e := i * elem
		switch elem {
		case 8:
			score += bits.LeadingZeros64(binary.LittleEndian.Uint64(a[e:]) ^ binary.LittleEndian.Uint64(b[e:]))
		case 4:
			score += bits.LeadingZeros32(binary.LittleEndian.Uint32(a[e:]) ^ binary.LittleEndian.Uint32(b[e:]))
		case 2:
			score += bits.LeadingZeros16(binary.LittleEndian.Uint16(a[e:]) ^ binary.LittleEndian.Uint16(b[e:]))
		default:
			score += bits.LeadingZeros8(a[e] ^ b[e])
		}
		n++
	}
	return score, n
}

// zipTotals are the estimate's stored and raw bytes by run and for the
// family, each distinct tensor counted once, for the first file (in push
// order) that holds it.
type zipTotals struct {
	runs   map[string]*tally
	family tally
	// xorTensors and tensors count the distinct tensors stored, and those
	// stored as XOR against the base.
	xorTensors, tensors int
}

// totals sums the files include selects; countRaw says whether a file's
// raw bytes count (a base that retention deleted but fine-tunes still
// need is stored, not kept).
func (z *zipLLM) totals(include func(f zipFile) (in, countRaw bool)) zipTotals {
	out := zipTotals{runs: map[string]*tally{}}
	seen := map[[32]byte]bool{}
	for _, f := range z.files {
		in, countRaw := include(f)
		if !in {
			continue
		}
		t := out.runs[f.run]
		if t == nil {
			t = &tally{}
			out.runs[f.run] = t
		}
		if countRaw {
			t.raw += f.raw
			out.family.raw += f.raw
		}
		for i, e := range f.entries {
			if seen[e.key] {
				continue
			}
			seen[e.key] = true
			t.stored += e.coded
			out.family.stored += e.coded
			if i > 0 {
				out.tensors++
				if e.xor {
					out.xorTensors++
				}
			}
		}
	}
	return out
}
