package layout

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxSafetensorsHeader is the largest header JSON, in bytes, that the
// reference implementation (and therefore this package) accepts.
const MaxSafetensorsHeader = 100_000_000

// metadataKey is the header key holding free-form string metadata instead
// of a tensor.
const metadataKey = "__metadata__"

// Dtype is a safetensors element type as written in the header ("F32",
// "BF16", ...).
type Dtype string

// The dtypes the reference implementation knows.
const (
	DtypeBool   Dtype = "BOOL"
	DtypeF4     Dtype = "F4"
	DtypeF6E2M3 Dtype = "F6_E2M3"
	DtypeF6E3M2 Dtype = "F6_E3M2"
	DtypeU8     Dtype = "U8"
	DtypeI8     Dtype = "I8"
	DtypeF8E5M2 Dtype = "F8_E5M2"
	DtypeF8E4M3 Dtype = "F8_E4M3"
	DtypeF8E8M0 Dtype = "F8_E8M0"
	DtypeI16    Dtype = "I16"
	DtypeU16    Dtype = "U16"
	DtypeF16    Dtype = "F16"
	DtypeBF16   Dtype = "BF16"
	DtypeI32    Dtype = "I32"
	DtypeU32    Dtype = "U32"
	DtypeF32    Dtype = "F32"
	DtypeC64    Dtype = "C64"
	DtypeF64    Dtype = "F64"
	DtypeI64    Dtype = "I64"
	DtypeU64    Dtype = "U64"
)

var dtypeBits = map[Dtype]int{
	DtypeBool: 8, DtypeF4: 4, DtypeF6E2M3: 6, DtypeF6E3M2: 6,
	DtypeU8: 8, DtypeI8: 8, DtypeF8E5M2: 8, DtypeF8E4M3: 8, DtypeF8E8M0: 8,
	DtypeI16: 16, DtypeU16: 16, DtypeF16: 16, DtypeBF16: 16,
	DtypeI32: 32, DtypeU32: 32, DtypeF32: 32,
	DtypeC64: 64, DtypeF64: 64, DtypeI64: 64, DtypeU64: 64,
}

// BitSize returns the size of one element in bits, or 0 for an unknown dtype.
func (d Dtype) BitSize() int { return dtypeBits[d] }

// ElemSize returns the size of one element in bytes for byte-sized dtypes
// (1, 2, 4 or 8), and 0 for sub-byte (F4, F6_*) and unknown dtypes.
func (d Dtype) ElemSize() int {
	if b := d.BitSize(); b%8 == 0 {
		return b / 8
	}
	return 0
}

// Valid reports whether d is a dtype the reference implementation knows.
func (d Dtype) Valid() bool { return d.BitSize() > 0 }

// TensorInfo describes one tensor of a safetensors file.
type TensorInfo struct {
	Name  string
	Dtype Dtype
	Shape []int64
	// Begin and End are the header's data_offsets: the tensor's bytes are
	// [Begin, End) of the data buffer, which starts at
	// SafetensorsHeader.DataOffset in the file.
	Begin, End int64
}

// DataSize returns the number of bytes the tensor's shape and dtype call
// for. It fails if the dtype is unknown, a dimension is negative, the size
// overflows, or the size in bits is not a whole number of bytes.
func (t TensorInfo) DataSize() (int64, error) {
	bitSize := t.Dtype.BitSize()
	if bitSize == 0 {
		return 0, &SafetensorsError{Tensor: t.Name, Reason: fmt.Sprintf("unknown dtype %q", t.Dtype)}
	}
	elements := uint64(1)
	for _, dim := range t.Shape {
		if dim < 0 {
			return 0, &SafetensorsError{Tensor: t.Name, Reason: fmt.Sprintf("shape %v has a negative dimension", t.Shape)}
		}
		hi, lo := bits.Mul64(elements, uint64(dim))
		if hi != 0 {
			return 0, t.overflowError()
		}
		elements = lo
	}
	hi, totalBits := bits.Mul64(elements, uint64(bitSize))
	if hi != 0 {
		return 0, t.overflowError()
	}
	if totalBits%8 != 0 {
		return 0, &SafetensorsError{Tensor: t.Name, Reason: fmt.Sprintf(
			"shape %v of %s is %d bits, not a whole number of bytes", t.Shape, t.Dtype, totalBits)}
	}
	if totalBits/8 > math.MaxInt64 {
		return 0, t.overflowError()
	}
	return int64(totalBits / 8), nil
}

func (t TensorInfo) overflowError() error {
	return &SafetensorsError{Tensor: t.Name, Reason: fmt.Sprintf("size of shape %v of %s overflows", t.Shape, t.Dtype)}
}

// SafetensorsHeader is the validated header of a safetensors file.
type SafetensorsHeader struct {
	// JSONLen is N, the header JSON length stored in the first 8 bytes.
	JSONLen int64
	// DataOffset is 8 + N: where the data buffer starts in the file.
	DataOffset int64
	// Tensors are sorted by Begin; zero-size tensors sharing an offset are
	// ordered by name, before the non-empty tensor starting there.
	Tensors []TensorInfo
	// Metadata is the header's __metadata__, nil if absent.
	Metadata map[string]string
}

// DataSize returns the length of the data buffer the header describes.
func (h *SafetensorsHeader) DataSize() int64 {
	if len(h.Tensors) == 0 {
		return 0
	}
	return h.Tensors[len(h.Tensors)-1].End
}

// SafetensorsError reports a safetensors header that is malformed or breaks
// one of the format's rules. I/O failures are not SafetensorsErrors.
type SafetensorsError struct {
	// Tensor names the offending tensor, or is "" when the problem is not
	// about one tensor.
	Tensor string
	// Reason says what is wrong.
	Reason string
}

func (e *SafetensorsError) Error() string {
	if e.Tensor != "" {
		return fmt.Sprintf("safetensors: tensor %q: %s", e.Tensor, e.Reason)
	}
	return "safetensors: " + e.Reason
}

func headerError(format string, args ...any) error {
	return &SafetensorsError{Reason: fmt.Sprintf(format, args...)}
}

// ReadSafetensorsHeader opens the safetensors file at path and parses and
// validates its header. Errors name the path.
func ReadSafetensorsHeader(path string) (*SafetensorsHeader, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = file.Close() }() // read-only
	info, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	header, err := ParseSafetensorsHeader(file, info.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return header, nil
}

// ParseSafetensorsHeader reads and validates the header of a safetensors
// file of fileSize bytes, enforcing what the reference implementation
// (huggingface/safetensors) enforces:
//   - the first 8 bytes are the header length N, little-endian, with
//     N <= MaxSafetensorsHeader and 8+N <= fileSize;
//   - the N header bytes are UTF-8 JSON starting with '{': one object,
//     optionally followed by whitespace padding;
//   - every key but __metadata__ is a tensor with exactly dtype, shape and
//     data_offsets, a known dtype and no name used twice; __metadata__, if
//     present, maps strings to strings;
//   - sorted by offset the tensors are contiguous from 0, each extent is
//     exactly its shape times its dtype size (computed without overflow),
//     and the last one ends at the end of the file.
//
// It reads only the 8-byte prefix and the header, never tensor data, and
// allocates the header buffer only after checking N against the limit and
// the file size.
func ParseSafetensorsHeader(r io.ReaderAt, fileSize int64) (*SafetensorsHeader, error) {
	if fileSize < 8 {
		return nil, headerError("file too small for a header (size %d)", fileSize)
	}
	var prefix [8]byte
	if err := readFullAt(r, prefix[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: reading header length: %w", err)
	}
	headerLen := binary.LittleEndian.Uint64(prefix[:])
	if headerLen > MaxSafetensorsHeader {
		return nil, headerError("header too large: %d bytes (limit %d)", headerLen, MaxSafetensorsHeader)
	}
	if int64(headerLen) > fileSize-8 {
		return nil, headerError("header length %d past end of file (size %d)", headerLen, fileSize)
	}
	headerJSON := make([]byte, headerLen)
	if err := readFullAt(r, headerJSON, 8); err != nil {
		return nil, fmt.Errorf("safetensors: reading header: %w", err)
	}
	tensors, metadata, err := decodeHeaderJSON(headerJSON)
	if err != nil {
		return nil, err
	}
	dataOffset := 8 + int64(headerLen)
	if err := validateLayout(tensors, fileSize-dataOffset); err != nil {
		return nil, err
	}
	return &SafetensorsHeader{
		JSONLen:    int64(headerLen),
		DataOffset: dataOffset,
		Tensors:    tensors,
		Metadata:   metadata,
	}, nil
}

// readFullAt fills buf from r at off. A ReaderAt may return io.EOF along
// with a full read; a short read is io.ErrUnexpectedEOF.
func readFullAt(r io.ReaderAt, buf []byte, off int64) error {
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeHeaderJSON decodes the header JSON into tensors (in no particular
// order) and metadata, checking its syntax and the fields of every entry.
func decodeHeaderJSON(headerJSON []byte) ([]TensorInfo, map[string]string, error) {
	if !utf8.Valid(headerJSON) {
		return nil, nil, headerError("header is not valid UTF-8")
	}
	if len(headerJSON) == 0 || headerJSON[0] != '{' {
		return nil, nil, headerError("header does not start with '{'")
	}
	dec := json.NewDecoder(bytes.NewReader(headerJSON))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the '{' checked above
		return nil, nil, headerError("header is not valid JSON: %v", err)
	}
	var (
		tensors     []TensorInfo
		metadata    map[string]string
		seenNames   = map[string]bool{}
		hasMetadata bool
	)
	for dec.More() {
		keyToken, err := dec.Token()
		if err != nil {
			return nil, nil, headerError("header is not valid JSON: %v", err)
		}
		name, _ := keyToken.(string) // object keys are always strings
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, nil, headerError("header is not valid JSON: %v", err)
		}
		if name == metadataKey {
			if hasMetadata {
				return nil, nil, headerError("duplicate %s", metadataKey)
			}
			hasMetadata = true
			if metadata, err = decodeHeaderMetadata(value); err != nil {
				return nil, nil, err
			}
			continue
		}
		if seenNames[name] {
			return nil, nil, &SafetensorsError{Tensor: name, Reason: "duplicate tensor name"}
		}
		seenNames[name] = true
		tensor, err := decodeTensorEntry(name, value)
		if err != nil {
			return nil, nil, err
		}
		tensors = append(tensors, tensor)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, nil, headerError("header is not valid JSON: %v", err)
	}
	if rest := headerJSON[dec.InputOffset():]; len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return nil, nil, headerError("header has trailing data after the JSON object")
	}
	if err := checkSurrogateEscapes(headerJSON); err != nil {
		return nil, nil, err
	}
	return tensors, metadata, nil
}

// checkSurrogateEscapes rejects \u escapes of unpaired UTF-16 surrogates,
// which the reference's JSON parser refuses and encoding/json would quietly
// turn into U+FFFD. headerJSON is valid JSON, so every backslash is inside a
// string and starts an escape.
func checkSurrogateEscapes(headerJSON []byte) error {
	escapeAt := func(i int) (rune, bool) {
		if i+6 > len(headerJSON) || headerJSON[i] != '\\' || headerJSON[i+1] != 'u' {
			return 0, false
		}
		code, err := strconv.ParseUint(string(headerJSON[i+2:i+6]), 16, 16)
		return rune(code), err == nil
	}
	for i := 0; i < len(headerJSON); i++ {
		if headerJSON[i] != '\\' {
			continue
		}
		code, ok := escapeAt(i)
		if !ok {
			i++ // a two-byte escape such as \\ or \"
			continue
		}
		switch {
		case code >= 0xDC00 && code <= 0xDFFF:
			return headerError("header has an unpaired surrogate escape %s", headerJSON[i:i+6])
		case code >= 0xD800 && code <= 0xDBFF:
			low, ok := escapeAt(i + 6)
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return headerError("header has an unpaired surrogate escape %s", headerJSON[i:i+6])
			}
			i += 11
		default:
			i += 5
		}
	}
	return nil
}

func decodeHeaderMetadata(value json.RawMessage) (map[string]string, error) {
	if string(value) == "null" {
		return nil, nil // the reference reads a null __metadata__ as absent
	}
	if value[0] != '{' {
		return nil, headerError("%s is not an object", metadataKey)
	}
	var metadata map[string]string
	if err := json.Unmarshal(value, &metadata); err != nil {
		return nil, headerError("%s must map strings to strings: %v", metadataKey, err)
	}
	return metadata, nil
}

// decodeTensorEntry decodes {"dtype": ..., "shape": [...], "data_offsets":
// [begin, end]}, requiring exactly these three fields.
func decodeTensorEntry(name string, value json.RawMessage) (TensorInfo, error) {
	tensor := TensorInfo{Name: name}
	fail := func(format string, args ...any) (TensorInfo, error) {
		return TensorInfo{}, &SafetensorsError{Tensor: name, Reason: fmt.Sprintf(format, args...)}
	}
	if value[0] != '{' {
		return fail("entry is not an object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(value, &fields); err != nil {
		return fail("entry is not valid: %v", err)
	}
	if n, err := countObjectKeys(value); err != nil || n != len(fields) {
		return fail("entry has a duplicate field")
	}
	for key := range fields {
		if key != "dtype" && key != "shape" && key != "data_offsets" {
			return fail("unexpected field %q", key)
		}
	}
	for _, required := range []string{"dtype", "shape", "data_offsets"} {
		if _, ok := fields[required]; !ok {
			return fail("missing %s", required)
		}
	}

	var dtype string
	if err := json.Unmarshal(fields["dtype"], &dtype); err != nil {
		return fail("dtype is not a string: %s", fields["dtype"])
	}
	tensor.Dtype = Dtype(dtype)
	if !tensor.Dtype.Valid() {
		return fail("unknown dtype %q", dtype)
	}

	shape, err := decodeIntArray(fields["shape"])
	if err != nil {
		return fail("shape %s: %v", fields["shape"], err)
	}
	tensor.Shape = shape

	offsets, err := decodeIntArray(fields["data_offsets"])
	if err != nil {
		return fail("data_offsets %s: %v", fields["data_offsets"], err)
	}
	if len(offsets) != 2 {
		return fail("data_offsets %s: want [begin, end]", fields["data_offsets"])
	}
	tensor.Begin, tensor.End = offsets[0], offsets[1]
	return tensor, nil
}

// countObjectKeys counts the keys of a JSON object, duplicates included.
func countObjectKeys(object json.RawMessage) (int, error) {
	dec := json.NewDecoder(bytes.NewReader(object))
	if _, err := dec.Token(); err != nil {
		return 0, err
	}
	count := 0
	for dec.More() {
		if _, err := dec.Token(); err != nil {
			return 0, err
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return 0, err
		}
		count++
	}
	return count, nil
}

// decodeIntArray decodes a JSON array of non-negative integer literals, as
// the reference's usize fields require (no fractions, exponents, signs or
// quoted numbers), each fitting in an int64.
func decodeIntArray(value json.RawMessage) ([]int64, error) {
	if value[0] != '[' {
		return nil, errors.New("not an array")
	}
	var elements []json.RawMessage
	if err := json.Unmarshal(value, &elements); err != nil {
		return nil, err
	}
	out := make([]int64, 0, len(elements))
	for _, element := range elements {
		number, err := strconv.ParseUint(string(element), 10, 64)
		if err != nil || element[0] == '+' {
			if numErr := (*strconv.NumError)(nil); errors.As(err, &numErr) && errors.Is(numErr.Err, strconv.ErrRange) {
				return nil, fmt.Errorf("%s is too large", element)
			}
			return nil, fmt.Errorf("%s is not a non-negative integer", element)
		}
		if number > math.MaxInt64 {
			return nil, fmt.Errorf("%s is too large", element)
		}
		out = append(out, int64(number))
	}
	return out, nil
}

// sortTensors orders tensors by offsets, then by name: the order of
// SafetensorsHeader.Tensors.
func sortTensors(tensors []TensorInfo) {
	slices.SortFunc(tensors, func(a, b TensorInfo) int {
		if a.Begin != b.Begin {
			return cmp.Compare(a.Begin, b.Begin)
		}
		if a.End != b.End {
			return cmp.Compare(a.End, b.End)
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// validateLayout sorts tensors and checks that they tile [0, dataSize)
// exactly, each extent matching its shape and dtype. A negative dataSize
// skips the final coverage check.
func validateLayout(tensors []TensorInfo, dataSize int64) error {
	sortTensors(tensors)
	var next int64
	for _, tensor := range tensors {
		fail := func(format string, args ...any) error {
			return &SafetensorsError{Tensor: tensor.Name, Reason: fmt.Sprintf(format, args...)}
		}
		switch {
		case tensor.End < tensor.Begin:
			return fail("data_offsets [%d, %d] end before they begin", tensor.Begin, tensor.End)
		case tensor.Begin > next:
			return fail("data_offsets [%d, %d] leave a gap: the previous tensor ends at %d", tensor.Begin, tensor.End, next)
		case tensor.Begin < next:
			return fail("data_offsets [%d, %d] overlap the previous tensor, which ends at %d", tensor.Begin, tensor.End, next)
		}
		size, err := tensor.DataSize()
		if err != nil {
			return err
		}
		if tensor.End-tensor.Begin != size {
			return fail("data_offsets [%d, %d] do not match shape %v of %s (%d bytes)",
				tensor.Begin, tensor.End, tensor.Shape, tensor.Dtype, size)
		}
		next = tensor.End
	}
	if dataSize >= 0 && next != dataSize {
		return headerError("tensors cover %d bytes but the data buffer after the header is %d bytes", next, dataSize)
	}
	return nil
}

// PackTensors sets Begin and End of every tensor so that they lie back to
// back in slice order from offset 0, and returns the resulting data buffer
// size. It fails on an unknown dtype or a size that cannot be represented.
func PackTensors(tensors []TensorInfo) (int64, error) {
	var offset int64
	for i := range tensors {
		size, err := tensors[i].DataSize()
		if err != nil {
			return 0, err
		}
		if size > math.MaxInt64-offset {
			return 0, tensors[i].overflowError()
		}
		tensors[i].Begin, tensors[i].End = offset, offset+size
		offset += size
	}
	return offset, nil
}

// EncodeSafetensorsHeader returns the bytes a safetensors file starts with
// for these tensors and metadata: the 8-byte little-endian header length,
// then the JSON header padded with spaces to a multiple of 8, as the
// reference serializer pads it. The tensors keep their Begin and End (see
// PackTensors) and must form a valid layout; the data buffer that follows
// is max(End) bytes. The output is deterministic: __metadata__ first (if
// metadata is not nil) with sorted keys, then the tensors ordered by offset
// and name. ParseSafetensorsHeader accepts it.
func EncodeSafetensorsHeader(tensors []TensorInfo, metadata map[string]string) ([]byte, error) {
	sorted := slices.Clone(tensors)
	for _, tensor := range sorted {
		if tensor.Name == metadataKey {
			return nil, &SafetensorsError{Tensor: tensor.Name, Reason: "name is reserved for metadata"}
		}
		if !utf8.ValidString(tensor.Name) {
			return nil, &SafetensorsError{Tensor: tensor.Name, Reason: "name is not valid UTF-8"}
		}
		if !tensor.Dtype.Valid() {
			return nil, &SafetensorsError{Tensor: tensor.Name, Reason: fmt.Sprintf("unknown dtype %q", tensor.Dtype)}
		}
	}
	seen := make(map[string]bool, len(sorted))
	for _, tensor := range sorted {
		if seen[tensor.Name] {
			return nil, &SafetensorsError{Tensor: tensor.Name, Reason: "duplicate tensor name"}
		}
		seen[tensor.Name] = true
	}
	if err := validateLayout(sorted, -1); err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	buf.Write(make([]byte, 8)) // the length, filled in below
	buf.WriteByte('{')
	if metadata != nil {
		if err := writeMetadata(&buf, metadata); err != nil {
			return nil, err
		}
	}
	for i, tensor := range sorted {
		if i > 0 || metadata != nil {
			buf.WriteByte(',')
		}
		if err := writeJSONString(&buf, tensor.Name); err != nil {
			return nil, err
		}
		fmt.Fprintf(&buf, `:{"dtype":"%s","shape":[`, tensor.Dtype)
		for j, dim := range tensor.Shape {
			if j > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(strconv.FormatInt(dim, 10))
		}
		fmt.Fprintf(&buf, `],"data_offsets":[%d,%d]}`, tensor.Begin, tensor.End)
	}
	buf.WriteByte('}')
	for (buf.Len()-8)%8 != 0 {
		buf.WriteByte(' ')
	}
	out := buf.Bytes()
	headerLen := len(out) - 8
	if headerLen > MaxSafetensorsHeader {
		return nil, headerError("header too large: %d bytes (limit %d)", headerLen, MaxSafetensorsHeader)
	}
	binary.LittleEndian.PutUint64(out[:8], uint64(headerLen))
	return out, nil
}

func writeMetadata(buf *bytes.Buffer, metadata map[string]string) error {
	keys := make([]string, 0, len(metadata))
	for key := range metadata {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	buf.WriteString(`"` + metadataKey + `":{`)
	for i, key := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := writeJSONString(buf, key); err != nil {
			return err
		}
		buf.WriteByte(':')
		if err := writeJSONString(buf, metadata[key]); err != nil {
			return err
		}
	}
	buf.WriteByte('}')
	return nil
}

// writeJSONString writes s as a JSON string without HTML escaping, refusing
// invalid UTF-8 (which encoding/json would silently replace).
func writeJSONString(buf *bytes.Buffer, s string) error {
	if !utf8.ValidString(s) {
		return headerError("%q is not valid UTF-8", s)
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
	return nil
}
