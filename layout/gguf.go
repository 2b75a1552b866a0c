package layout

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
)

// Limits on the GGUF headers ParseGGUF reads. Counts are checked before
// anything is allocated for them, and nothing is preallocated from a count:
// memory grows only with bytes actually read.
const (
	// MaxGGUFTensors is the most tensors a GGUF file may describe.
	MaxGGUFTensors = 1 << 20
	// MaxGGUFMetadata is the most key-value pairs of metadata.
	MaxGGUFMetadata = 1 << 20
	// MaxGGUFString is the longest string (key, value or tensor name).
	MaxGGUFString = 16 << 20
	// MaxGGUFArray is the most elements of one metadata array.
	MaxGGUFArray = 1 << 26
	// MaxGGUFArrayDepth is how deeply arrays may nest.
	MaxGGUFArrayDepth = 4
	// MaxGGUFHeader is the largest header (magic to the end of the tensor
	// infos) read, in bytes.
	MaxGGUFHeader = 1 << 30
	// GGUFMaxDims is the most dimensions of a tensor (GGML_MAX_DIMS).
	GGUFMaxDims = 4
	// GGUFDefaultAlignment is the data alignment when general.alignment is
	// absent.
	GGUFDefaultAlignment = 32
)

// GGUFAlignmentKey is the metadata key that sets the data alignment.
const GGUFAlignmentKey = "general.alignment"

// ggufMagic is "GGUF".
var ggufMagic = [4]byte{'G', 'G', 'U', 'F'}

// GGUFValueType is the type of a GGUF metadata value.
type GGUFValueType uint32

// The GGUF metadata value types.
const (
	GGUFUint8 GGUFValueType = iota
	GGUFInt8
	GGUFUint16
	GGUFInt16
	GGUFUint32
	GGUFInt32
	GGUFFloat32
	GGUFBool
	GGUFString
	GGUFArray
	GGUFUint64
	GGUFInt64
	GGUFFloat64
)

var ggufValueTypeNames = [...]string{"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32", "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"}

func (t GGUFValueType) String() string {
	if int(t) < len(ggufValueTypeNames) {
		return ggufValueTypeNames[t]
	}
	return fmt.Sprintf("GGUFValueType(%d)", uint32(t))
}

// ggufScalarSize is the encoded size of a fixed-size value type, 0 for
// strings, arrays and unknown types.
func (t GGUFValueType) scalarSize() int {
	switch t {
	case GGUFUint8, GGUFInt8, GGUFBool:
		return 1
	case GGUFUint16, GGUFInt16:
		return 2
	case GGUFUint32, GGUFInt32, GGUFFloat32:
		return 4
	case GGUFUint64, GGUFInt64, GGUFFloat64:
		return 8
	}
	return 0
}

// GGMLType is a tensor element type of ggml (enum ggml_type).
type GGMLType uint32

// The ggml types GGUF files use. The gaps are types ggml removed from
// GGUF files (4, 5, 31-33, 36-38), which ParseGGUF refuses.
const (
	GGMLF32     GGMLType = 0
	GGMLF16     GGMLType = 1
	GGMLQ4_0    GGMLType = 2
	GGMLQ4_1    GGMLType = 3
	GGMLQ5_0    GGMLType = 6
	GGMLQ5_1    GGMLType = 7
	GGMLQ8_0    GGMLType = 8
	GGMLQ8_1    GGMLType = 9
	GGMLQ2_K    GGMLType = 10
	GGMLQ3_K    GGMLType = 11
	GGMLQ4_K    GGMLType = 12
	GGMLQ5_K    GGMLType = 13
	GGMLQ6_K    GGMLType = 14
	GGMLQ8_K    GGMLType = 15
	GGMLIQ2_XXS GGMLType = 16
	GGMLIQ2_XS  GGMLType = 17
	GGMLIQ3_XXS GGMLType = 18
	GGMLIQ1_S   GGMLType = 19
	GGMLIQ4_NL  GGMLType = 20
	GGMLIQ3_S   GGMLType = 21
	GGMLIQ2_S   GGMLType = 22
	GGMLIQ4_XS  GGMLType = 23
	GGMLI8      GGMLType = 24
	GGMLI16     GGMLType = 25
	GGMLI32     GGMLType = 26
	GGMLI64     GGMLType = 27
	GGMLF64     GGMLType = 28
	GGMLIQ1_M   GGMLType = 29
	GGMLBF16    GGMLType = 30
	GGMLTQ1_0   GGMLType = 34
	GGMLTQ2_0   GGMLType = 35
	GGMLMXFP4   GGMLType = 39
	GGMLNVFP4   GGMLType = 40
	GGMLQ1_0    GGMLType = 41
	GGMLQ2_0    GGMLType = 42
)

// ggmlTypeTraits is a type's name, block size (elements per block) and
// type size (bytes per block), as in ggml.c's type_traits (sizeof of the
// block structs of ggml-common.h). qk is QK_K, the super-block of the
// k-quants.
type ggmlTypeTraits struct {
	name      string
	blockSize int64
	typeSize  int64
}

const qk = 256

var ggmlTypes = map[GGMLType]ggmlTypeTraits{
	GGMLF32:     {"F32", 1, 4},
	GGMLF16:     {"F16", 1, 2},
	GGMLQ4_0:    {"Q4_0", 32, 2 + 16},
	GGMLQ4_1:    {"Q4_1", 32, 2 + 2 + 16},
	GGMLQ5_0:    {"Q5_0", 32, 2 + 4 + 16},
	GGMLQ5_1:    {"Q5_1", 32, 2 + 2 + 4 + 16},
	GGMLQ8_0:    {"Q8_0", 32, 2 + 32},
	GGMLQ8_1:    {"Q8_1", 32, 2 + 2 + 32}, // two halves since 2023; gguf-py still says 4 + 4 + 32
	GGMLQ2_K:    {"Q2_K", qk, 2 + 2 + qk/16 + qk/4},
	GGMLQ3_K:    {"Q3_K", qk, 2 + qk/4 + qk/8 + 12},
	GGMLQ4_K:    {"Q4_K", qk, 2 + 2 + qk/2 + 12},
	GGMLQ5_K:    {"Q5_K", qk, 2 + 2 + qk/2 + qk/8 + 12},
	GGMLQ6_K:    {"Q6_K", qk, 2 + qk/2 + qk/4 + qk/16},
	GGMLQ8_K:    {"Q8_K", qk, 4 + qk + qk/8},
	GGMLIQ2_XXS: {"IQ2_XXS", qk, 2 + qk/4},
	GGMLIQ2_XS:  {"IQ2_XS", qk, 2 + qk/4 + qk/32},
	GGMLIQ3_XXS: {"IQ3_XXS", qk, 2 + qk/4 + qk/8},
	GGMLIQ1_S:   {"IQ1_S", qk, 2 + qk/8 + qk/16},
	GGMLIQ4_NL:  {"IQ4_NL", 32, 2 + 16},
	GGMLIQ3_S:   {"IQ3_S", qk, 2 + qk/4 + qk/8 + qk/32 + 4},
	GGMLIQ2_S:   {"IQ2_S", qk, 2 + qk/4 + qk/16},
	GGMLIQ4_XS:  {"IQ4_XS", qk, 2 + 2 + qk/2 + qk/64},
	GGMLI8:      {"I8", 1, 1},
	GGMLI16:     {"I16", 1, 2},
	GGMLI32:     {"I32", 1, 4},
	GGMLI64:     {"I64", 1, 8},
	GGMLF64:     {"F64", 1, 8},
	GGMLIQ1_M:   {"IQ1_M", qk, qk/8 + qk/16 + qk/32},
	GGMLBF16:    {"BF16", 1, 2},
	GGMLTQ1_0:   {"TQ1_0", qk, 2 + 4*13},
	GGMLTQ2_0:   {"TQ2_0", qk, 2 + 64},
	GGMLMXFP4:   {"MXFP4", 32, 1 + 16},
	GGMLNVFP4:   {"NVFP4", 64, 4 + 32},
	GGMLQ1_0:    {"Q1_0", 128, 2 + 16},
	GGMLQ2_0:    {"Q2_0", 64, 2 + 16},
}

// String returns the type's name as gguf-py spells it ("Q4_K"), or
// GGMLType(N) for an unknown type.
func (t GGMLType) String() string {
	if traits, ok := ggmlTypes[t]; ok {
		return traits.name
	}
	return fmt.Sprintf("GGMLType(%d)", uint32(t))
}

// Known reports whether ParseGGUF knows the type's block layout.
func (t GGMLType) Known() bool { _, ok := ggmlTypes[t]; return ok }

// BlockSize returns the elements per block (1 for plain types), 0 if
// unknown.
func (t GGMLType) BlockSize() int64 { return ggmlTypes[t].blockSize }

// TypeSize returns the bytes per block, 0 if unknown.
func (t GGMLType) TypeSize() int64 { return ggmlTypes[t].typeSize }

// ElemSize returns the element size in bytes of the plain (unquantized)
// types F32, F16, BF16, F64 and I8 to I64, and 0 for block-quantized and
// unknown types.
func (t GGMLType) ElemSize() int {
	if traits := ggmlTypes[t]; traits.blockSize == 1 {
		return int(traits.typeSize)
	}
	return 0
}

// TensorSize returns the bytes a tensor of this type and dims occupies:
// the element count divided into blocks times the block size. It fails
// for an unknown type, a first dimension that is not a whole number of
// blocks, or a size that overflows an int64.
func (t GGMLType) TensorSize(dims []uint64) (int64, error) {
	traits, ok := ggmlTypes[t]
	if !ok {
		return 0, fmt.Errorf("unknown ggml type %d", uint32(t))
	}
	elements := uint64(1)
	for _, d := range dims {
		if d > math.MaxInt64 {
			return 0, fmt.Errorf("dimension %d is too large", d)
		}
		hi, lo := bits.Mul64(elements, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("dims %v overflow", dims)
		}
		elements = lo
	}
	if len(dims) > 0 && dims[0]%uint64(traits.blockSize) != 0 {
		return 0, fmt.Errorf("first dimension %d is not a multiple of %s's block size %d", dims[0], traits.name, traits.blockSize)
	}
	hi, size := bits.Mul64(elements/uint64(traits.blockSize), uint64(traits.typeSize))
	if hi != 0 || size > math.MaxInt64 {
		return 0, fmt.Errorf("size of dims %v of %s overflows", dims, traits.name)
	}
	return int64(size), nil
}

// GGUFKV is one metadata key-value pair. Value holds, by Type: uint8,
// int8, uint16, int16, uint32, int32, float32, bool, string, uint64, int64,
// float64; for an ARRAY, a slice of the element type ([]uint8, ...,
// []string) and ArrayType tells the element type, except arrays of arrays,
// which are []any of such slices.
type GGUFKV struct {
	Key       string
	Type      GGUFValueType
	ArrayType GGUFValueType
	Value     any
}

// GGUFTensor is one tensor of a GGUF file.
type GGUFTensor struct {
	Name string
	Type GGMLType
	// Dims are as the file stores them: fastest-varying first (ggml's ne).
	Dims []uint64
	// Offset is where the tensor's bytes start in the file (the data
	// section start plus the tensor info's offset); Size is their length.
	Offset, Size int64
	// ElemSize is Type.ElemSize(): the element size of plain types, 0 for
	// block-quantized ones.
	ElemSize int
}

// Extent returns the tensor's bytes as an extent.
func (t GGUFTensor) Extent() Extent { return Extent{Offset: t.Offset, Size: t.Size} }

// GGUF is the layout of a GGUF file.
type GGUF struct {
	// Version is 2 or 3.
	Version uint32
	// BigEndian: the file's numbers are big-endian (GGUF files for
	// big-endian hosts); little-endian otherwise.
	BigEndian bool
	// Metadata are the key-value pairs in file order.
	Metadata []GGUFKV
	// Alignment is general.alignment, or GGUFDefaultAlignment.
	Alignment int64
	// DataOffset is where the data section starts: the end of the tensor
	// infos, rounded up to Alignment.
	DataOffset int64
	// Tensors are in the order of the file's tensor infos.
	Tensors []GGUFTensor
}

// Lookup returns the metadata pair with the key.
func (g *GGUF) Lookup(key string) (GGUFKV, bool) {
	for _, kv := range g.Metadata {
		if kv.Key == key {
			return kv, true
		}
	}
	return GGUFKV{}, false
}

// ErrNotGGUF is wrapped by the error of ParseGGUF for input that does not
// start with the GGUF magic.
var ErrNotGGUF = errors.New("not a GGUF file")

// GGUFError reports a GGUF file that is malformed, breaks one of the
// format's rules or one of ParseGGUF's limits. I/O failures are not
// GGUFErrors.
type GGUFError struct {
	// Tensor or Key names what the problem is about; both are "" when it
	// is about the file as a whole.
	Tensor, Key string
	// Reason says what is wrong.
	Reason string
}

func (e *GGUFError) Error() string {
	switch {
	case e.Tensor != "":
		return fmt.Sprintf("gguf: tensor %q: %s", e.Tensor, e.Reason)
	case e.Key != "":
		return fmt.Sprintf("gguf: metadata %q: %s", e.Key, e.Reason)
	}
	return "gguf: " + e.Reason
}

func ggufError(format string, args ...any) error {
	return &GGUFError{Reason: fmt.Sprintf(format, args...)}
}

// ggufReader reads the header sequentially, bounding every read by the
// file size and MaxGGUFHeader.
type ggufReader struct {
	r     *bufio.Reader
	order binary.ByteOrder
	pos   int64
	limit int64 // min(file size, MaxGGUFHeader)
	// version 1 used 32-bit counts and lengths; 2 and 3 use 64-bit ones.
	scratch [8]byte
}

func (g *ggufReader) read(n int) ([]byte, error) {
	if int64(n) > g.limit-g.pos {
		return nil, g.eof()
	}
	buf := g.scratch[:n]
	if _, err := io.ReadFull(g.r, buf); err != nil {
		return nil, g.ioError(err)
	}
	g.pos += int64(n)
	return buf, nil
}

func (g *ggufReader) eof() error {
	return ggufError("header runs past the end of the file or the %d-byte header limit at byte %d", MaxGGUFHeader, g.pos)
}

func (g *ggufReader) ioError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return g.eof()
	}
	return fmt.Errorf("gguf: reading the header at byte %d: %w", g.pos, err)
}

func (g *ggufReader) u8() (uint8, error) {
	b, err := g.read(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (g *ggufReader) u16() (uint16, error) {
	b, err := g.read(2)
	if err != nil {
		return 0, err
	}
	return g.order.Uint16(b), nil
}

func (g *ggufReader) u32() (uint32, error) {
	b, err := g.read(4)
	if err != nil {
		return 0, err
	}
	return g.order.Uint32(b), nil
}

func (g *ggufReader) u64() (uint64, error) {
	b, err := g.read(8)
	if err != nil {
		return 0, err
	}
	return g.order.Uint64(b), nil
}

// str reads a string: a 64-bit length, then the bytes.
func (g *ggufReader) str() (string, error) {
	n, err := g.u64()
	if err != nil {
		return "", err
	}
	if n > MaxGGUFString {
		return "", ggufError("string of %d bytes at byte %d (limit %d)", n, g.pos-8, MaxGGUFString)
	}
	if int64(n) > g.limit-g.pos {
		return "", g.eof()
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(g.r, buf); err != nil {
		return "", g.ioError(err)
	}
	g.pos += int64(n)
	return string(buf), nil
}

// scalar reads one value of a fixed-size type.
func (g *ggufReader) scalar(t GGUFValueType) (any, error) {
	switch t {
	case GGUFUint8:
		return g.u8()
	case GGUFInt8:
		v, err := g.u8()
		return int8(v), err
	case GGUFBool:
		v, err := g.u8()
		if err == nil && v > 1 {
			return nil, ggufError("bool value %d at byte %d", v, g.pos-1)
		}
		return v == 1, err
	case GGUFUint16:
		return g.u16()
	case GGUFInt16:
		v, err := g.u16()
		return int16(v), err
	case GGUFUint32:
		return g.u32()
	case GGUFInt32:
		v, err := g.u32()
		return int32(v), err
	case GGUFFloat32:
		v, err := g.u32()
		return math.Float32frombits(v), err
	case GGUFUint64:
		return g.u64()
	case GGUFInt64:
		v, err := g.u64()
		return int64(v), err
	case GGUFFloat64:
		v, err := g.u64()
		return math.Float64frombits(v), err
	case GGUFString:
		return g.str()
	}
	return nil, ggufError("unknown value type %d at byte %d", uint32(t), g.pos-4)
}

// value reads a value of type t; for arrays it returns the element type.
func (g *ggufReader) value(t GGUFValueType, depth int) (any, GGUFValueType, error) {
	if t != GGUFArray {
		v, err := g.scalar(t)
		return v, 0, err
	}
	if depth >= MaxGGUFArrayDepth {
		return nil, 0, ggufError("arrays nested deeper than %d at byte %d", MaxGGUFArrayDepth, g.pos)
	}
	elemType, err := g.u32()
	if err != nil {
		return nil, 0, err
	}
	count, err := g.u64()
	if err != nil {
		return nil, 0, err
	}
	if count > MaxGGUFArray {
		return nil, 0, ggufError("array of %d elements at byte %d (limit %d)", count, g.pos-8, MaxGGUFArray)
	}
	// Every element takes at least one byte (an empty nested array 12),
	// so a count the rest of the header cannot hold is refused before any
	// element is read; slices grow with what is read, never from count.
	if minSize := max(GGUFValueType(elemType).scalarSize(), 1); count > uint64(g.limit-g.pos)/uint64(minSize) {
		return nil, 0, g.eof()
	}
	et := GGUFValueType(elemType)
	switch et {
	case GGUFUint8:
		return readArray[uint8](g, et, count)
	case GGUFInt8:
		return readArray[int8](g, et, count)
	case GGUFBool:
		return readArray[bool](g, et, count)
	case GGUFUint16:
		return readArray[uint16](g, et, count)
	case GGUFInt16:
		return readArray[int16](g, et, count)
	case GGUFUint32:
		return readArray[uint32](g, et, count)
	case GGUFInt32:
		return readArray[int32](g, et, count)
	case GGUFFloat32:
		return readArray[float32](g, et, count)
	case GGUFUint64:
		return readArray[uint64](g, et, count)
	case GGUFInt64:
		return readArray[int64](g, et, count)
	case GGUFFloat64:
		return readArray[float64](g, et, count)
	case GGUFString:
		return readArray[string](g, et, count)
	case GGUFArray:
		var out []any
		for range count {
			v, _, err := g.value(GGUFArray, depth+1)
			if err != nil {
				return nil, 0, err
			}
			out = append(out, v)
		}
		return out, et, nil
	}
	return nil, 0, ggufError("unknown array element type %d at byte %d", elemType, g.pos-12)
}

func readArray[T any](g *ggufReader, t GGUFValueType, count uint64) (any, GGUFValueType, error) {
	out := make([]T, 0, min(count, 1024))
	for range count {
		v, err := g.scalar(t)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, v.(T))
	}
	return out, t, nil
}

// ParseGGUF reads the header of a GGUF file of size bytes (llama.cpp's
// export format): magic, version, metadata and tensor infos, and computes
// where each tensor's bytes lie.
//
// It checks: the magic; version 2 or 3 (little- or big-endian); counts,
// string lengths, array lengths and nesting, and the header size against
// the Max* limits, and every length against the bytes left, before
// reading; value types known, bools 0 or 1, no key or tensor name twice;
// general.alignment, if present, a UINT32 power of two; at most
// GGUFMaxDims dimensions; a known ggml type whose block size divides the
// first dimension; each tensor's offset aligned, and its bytes inside the
// file after the data section start and overlapping no other tensor's. It
// reads only the header and never tensor data, whose contents it trusts.
//
// Input without the magic fails with ErrNotGGUF, anything else it refuses
// with a *GGUFError.
func ParseGGUF(r io.ReaderAt, size int64) (*GGUF, error) {
	var head [8]byte
	if size < int64(len(head)) {
		return nil, fmt.Errorf("%w: only %d bytes", ErrNotGGUF, size)
	}
	if err := readFullAt(r, head[:], 0); err != nil {
		return nil, fmt.Errorf("gguf: reading the magic: %w", err)
	}
	if [4]byte(head[:4]) != ggufMagic {
		return nil, fmt.Errorf("%w: no GGUF magic", ErrNotGGUF)
	}
	// A version is small: read little-endian, a big-endian file's has
	// its low 16 bits zero.
	order := binary.ByteOrder(binary.LittleEndian)
	version := binary.LittleEndian.Uint32(head[4:])
	if version&0xffff == 0 {
		order, version = binary.BigEndian, binary.BigEndian.Uint32(head[4:])
	}
	if version != 2 && version != 3 {
		return nil, ggufError("unsupported version %d (2 and 3 are supported)", version)
	}
	g := &ggufReader{
		r:     bufio.NewReaderSize(io.NewSectionReader(r, 8, size-8), 64<<10),
		order: order,
		pos:   8,
		limit: min(size, MaxGGUFHeader),
	}
	tensorCount, err := g.u64()
	if err != nil {
		return nil, err
	}
	kvCount, err := g.u64()
	if err != nil {
		return nil, err
	}
	if tensorCount > MaxGGUFTensors {
		return nil, ggufError("%d tensors (limit %d)", tensorCount, MaxGGUFTensors)
	}
	if kvCount > MaxGGUFMetadata {
		return nil, ggufError("%d metadata pairs (limit %d)", kvCount, MaxGGUFMetadata)
	}

	// A tensor info takes at least 24 bytes, a key-value pair 13.
	if tensorCount*24+kvCount*13 > uint64(g.limit-g.pos) {
		return nil, ggufError("%d tensors and %d metadata pairs cannot fit in the %d bytes after the counts", tensorCount, kvCount, g.limit-g.pos)
	}

	out := &GGUF{Version: version, BigEndian: order == binary.BigEndian, Alignment: GGUFDefaultAlignment}
	keys := map[string]bool{}
	for range kvCount {
		key, err := g.str()
		if err != nil {
			return nil, err
		}
		if keys[key] {
			return nil, &GGUFError{Key: key, Reason: "duplicate key"}
		}
		keys[key] = true
		valueType, err := g.u32()
		if err != nil {
			return nil, err
		}
		value, arrayType, err := g.value(GGUFValueType(valueType), 0)
		if err != nil {
			var gerr *GGUFError
			if errors.As(err, &gerr) && gerr.Key == "" {
				gerr.Key = key
			}
			return nil, err
		}
		kv := GGUFKV{Key: key, Type: GGUFValueType(valueType), ArrayType: arrayType, Value: value}
		if key == GGUFAlignmentKey {
			alignment, ok := value.(uint32)
			if !ok {
				return nil, &GGUFError{Key: key, Reason: fmt.Sprintf("type %s, not UINT32", kv.Type)}
			}
			if alignment == 0 || alignment&(alignment-1) != 0 {
				return nil, &GGUFError{Key: key, Reason: fmt.Sprintf("%d is not a power of two", alignment)}
			}
			out.Alignment = int64(alignment)
		}
		out.Metadata = append(out.Metadata, kv)
	}

	names := map[string]bool{}
	for range tensorCount {
		name, err := g.str()
		if err != nil {
			return nil, err
		}
		fail := func(format string, args ...any) error {
			return &GGUFError{Tensor: name, Reason: fmt.Sprintf(format, args...)}
		}
		if names[name] {
			return nil, fail("duplicate tensor name")
		}
		names[name] = true
		nDims, err := g.u32()
		if err != nil {
			return nil, err
		}
		if nDims > GGUFMaxDims {
			return nil, fail("%d dimensions (limit %d)", nDims, GGUFMaxDims)
		}
		dims := make([]uint64, nDims)
		for i := range dims {
			if dims[i], err = g.u64(); err != nil {
				return nil, err
			}
		}
		typ, err := g.u32()
		if err != nil {
			return nil, err
		}
		offset, err := g.u64()
		if err != nil {
			return nil, err
		}
		tensorSize, err := GGMLType(typ).TensorSize(dims)
		if err != nil {
			return nil, fail("%v", err)
		}
		if offset > math.MaxInt64 {
			return nil, fail("offset %d is too large", offset)
		}
		out.Tensors = append(out.Tensors, GGUFTensor{
			Name: name, Type: GGMLType(typ), Dims: dims,
			Offset: int64(offset), Size: tensorSize, ElemSize: GGMLType(typ).ElemSize(),
		})
	}

	// The data section starts at the end of the infos, aligned.
	out.DataOffset = (g.pos + out.Alignment - 1) / out.Alignment * out.Alignment
	if out.DataOffset > size {
		return nil, ggufError("data section at %d starts past the end of the file (%d bytes)", out.DataOffset, size)
	}
	dataSize := size - out.DataOffset
	for i := range out.Tensors {
		t := &out.Tensors[i]
		if t.Offset%out.Alignment != 0 {
			return nil, &GGUFError{Tensor: t.Name, Reason: fmt.Sprintf("offset %d is not a multiple of the alignment %d", t.Offset, out.Alignment)}
		}
		if t.Offset > dataSize || t.Size > dataSize-t.Offset {
			return nil, &GGUFError{Tensor: t.Name, Reason: fmt.Sprintf("bytes [%d, +%d) of the data section run past the end of the file (%d bytes of data)", t.Offset, t.Size, dataSize)}
		}
		t.Offset += out.DataOffset
	}
	byOffset := slices.Clone(out.Tensors)
	slices.SortFunc(byOffset, func(a, b GGUFTensor) int {
		return cmp.Or(cmp.Compare(a.Offset, b.Offset), cmp.Compare(a.Size, b.Size))
	})
	for i := 1; i < len(byOffset); i++ {
		prev, t := byOffset[i-1], byOffset[i]
		if t.Offset < prev.Offset+prev.Size {
			return nil, &GGUFError{Tensor: t.Name, Reason: fmt.Sprintf("bytes at %d overlap tensor %q, which ends at %d", t.Offset, prev.Name, prev.Offset+prev.Size)}
		}
	}
	return out, nil
}
