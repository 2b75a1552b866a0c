package layout

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// safetensorsFile returns a whole file: the 8-byte length, headerJSON as
// is, then dataLen zero bytes.
func safetensorsFile(headerJSON string, dataLen int) []byte {
	file := binary.LittleEndian.AppendUint64(nil, uint64(len(headerJSON)))
	file = append(file, headerJSON...)
	return append(file, make([]byte, dataLen)...)
}

// encodedSafetensorsFile packs tensors in order and returns a valid file
// with zeroed data.
func encodedSafetensorsFile(t testing.TB, tensors []TensorInfo, metadata map[string]string) []byte {
	t.Helper()
	dataLen, err := PackTensors(tensors)
	require.NoError(t, err)
	header, err := EncodeSafetensorsHeader(tensors, metadata)
	require.NoError(t, err)
	return append(header, make([]byte, dataLen)...)
}

func parseBytes(file []byte) (*SafetensorsHeader, error) {
	return ParseSafetensorsHeader(bytes.NewReader(file), int64(len(file)))
}

func TestDtypeSizes(t *testing.T) {
	tests := []struct {
		dtype    Dtype
		bits     int
		elemSize int
	}{
		{DtypeBool, 8, 1}, {DtypeU8, 8, 1}, {DtypeI8, 8, 1},
		{DtypeF8E5M2, 8, 1}, {DtypeF8E4M3, 8, 1}, {DtypeF8E8M0, 8, 1},
		{DtypeI16, 16, 2}, {DtypeU16, 16, 2}, {DtypeF16, 16, 2}, {DtypeBF16, 16, 2},
		{DtypeI32, 32, 4}, {DtypeU32, 32, 4}, {DtypeF32, 32, 4},
		{DtypeF64, 64, 8}, {DtypeI64, 64, 8}, {DtypeU64, 64, 8}, {DtypeC64, 64, 8},
		{DtypeF4, 4, 0}, {DtypeF6E2M3, 6, 0}, {DtypeF6E3M2, 6, 0},
		{"F128", 0, 0}, {"f32", 0, 0}, {"", 0, 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.dtype), func(t *testing.T) {
			assert.Equal(t, tt.bits, tt.dtype.BitSize())
			assert.Equal(t, tt.elemSize, tt.dtype.ElemSize())
			assert.Equal(t, tt.bits > 0, tt.dtype.Valid())
		})
	}
}

func TestParseSafetensorsHeaderValid(t *testing.T) {
	tests := []struct {
		name     string
		file     []byte
		want     []TensorInfo
		metadata map[string]string
	}{
		{
			name: "empty file of the reference serializer",
			file: []byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '},
		},
		{
			name: "reference serializer output, one F32 tensor",
			file: safetensorsFile(`{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`, 24),
			want: []TensorInfo{{Name: "attn.0", Dtype: DtypeF32, Shape: []int64{1, 2, 3}, Begin: 0, End: 24}},
		},
		{
			name: "out of order in the JSON, sorted by offset, metadata, space padding",
			file: safetensorsFile(`{"b":{"dtype":"I64","shape":[2],"data_offsets":[4,20]},`+
				`"__metadata__":{"format":"pt"},`+
				`"a":{"shape":[2],"data_offsets":[0,4],"dtype":"BF16"}}    `, 20),
			want: []TensorInfo{
				{Name: "a", Dtype: DtypeBF16, Shape: []int64{2}, Begin: 0, End: 4},
				{Name: "b", Dtype: DtypeI64, Shape: []int64{2}, Begin: 4, End: 20},
			},
			metadata: map[string]string{"format": "pt"},
		},
		{
			name: "zero-size tensors ordered by name before the tensor at their offset",
			file: safetensorsFile(`{"w":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},`+
				`"z":{"dtype":"F32","shape":[0,5],"data_offsets":[3,3]},`+
				`"y":{"dtype":"F32","shape":[0],"data_offsets":[3,3]},`+
				`"x":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}}`, 4),
			want: []TensorInfo{
				{Name: "w", Dtype: DtypeU8, Shape: []int64{3}, Begin: 0, End: 3},
				{Name: "y", Dtype: DtypeF32, Shape: []int64{0}, Begin: 3, End: 3},
				{Name: "z", Dtype: DtypeF32, Shape: []int64{0, 5}, Begin: 3, End: 3},
				{Name: "x", Dtype: DtypeU8, Shape: []int64{1}, Begin: 3, End: 4},
			},
		},
		{
			name: "scalar, sub-byte dtypes filling whole bytes, null metadata",
			file: safetensorsFile(`{"__metadata__":null,"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},`+
				`"q":{"dtype":"F4","shape":[2,3],"data_offsets":[8,11]},`+
				`"r":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[11,14]}}`, 14),
			want: []TensorInfo{
				{Name: "s", Dtype: DtypeF64, Shape: []int64{}, Begin: 0, End: 8},
				{Name: "q", Dtype: DtypeF4, Shape: []int64{2, 3}, Begin: 8, End: 11},
				{Name: "r", Dtype: DtypeF6E2M3, Shape: []int64{4}, Begin: 11, End: 14},
			},
		},
		{
			name:     "escapes, including a surrogate pair and an escaped backslash before u",
			file:     safetensorsFile(`{"__metadata__":{"k":"\ud83d\ude00 \\ud800 \"\u00e9"}}`, 0),
			metadata: map[string]string{"k": "😀 \\ud800 \"é"},
		},
		{
			name:     "empty metadata object is kept, not nil",
			file:     safetensorsFile(`{"__metadata__":{}}`, 0),
			metadata: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header, err := parseBytes(tt.file)
			require.NoError(t, err)
			jsonLen := int64(binary.LittleEndian.Uint64(tt.file))
			assert.Equal(t, jsonLen, header.JSONLen)
			assert.Equal(t, 8+jsonLen, header.DataOffset)
			assert.Equal(t, tt.want, header.Tensors)
			assert.Equal(t, tt.metadata, header.Metadata)
			assert.Equal(t, int64(len(tt.file))-header.DataOffset, header.DataSize())
		})
	}
}

func TestParseSafetensorsHeaderInvalid(t *testing.T) {
	tooLarge := binary.LittleEndian.AppendUint64(nil, MaxSafetensorsHeader+1)
	maxUint := binary.LittleEndian.AppendUint64(nil, ^uint64(0))
	entry := func(name, dtype, shape, offsets string) string {
		return fmt.Sprintf(`%q:{"dtype":%q,"shape":%s,"data_offsets":%s}`, name, dtype, shape, offsets)
	}
	tests := []struct {
		name    string
		file    []byte
		tensor  string // the tensor the error names, if any
		wantErr string
	}{
		{"shorter than the length prefix", []byte{1, 2, 3}, "", "file too small for a header (size 3)"},
		{"header too large", append(tooLarge, "{}"...), "", "header too large: 100000001 bytes"},
		{"header length near 2^64", append(maxUint, "{}"...), "", "header too large"},
		{"header past end of file", append(binary.LittleEndian.AppendUint64(nil, 123456), make([]byte, 92)...), "",
			"header length 123456 past end of file (size 100)"},
		{"empty header", safetensorsFile("", 0), "", "does not start with '{'"},
		{"leading whitespace", safetensorsFile(` {}`, 0), "", "does not start with '{'"},
		{"JSON array", safetensorsFile(`[]`, 0), "", "does not start with '{'"},
		{"truncated JSON", safetensorsFile(`{"a":{"dtype":"U8"`, 0), "", "not valid JSON"},
		{"trailing data after the object", safetensorsFile(`{}  x`, 0), "", "trailing data"},
		{"two objects", safetensorsFile(`{}{}`, 0), "", "trailing data"},
		{"invalid UTF-8", safetensorsFile("{\"\xff\":{}}", 0), "", "not valid UTF-8"},
		{"lone high surrogate escape", safetensorsFile(`{"\ud800":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, 0), "", `unpaired surrogate escape \ud800`},
		{"lone low surrogate escape", safetensorsFile(`{"__metadata__":{"k":"x\uDC00"}}`, 0), "", `unpaired surrogate escape \uDC00`},
		{"high surrogate then a non-surrogate", safetensorsFile(`{"__metadata__":{"k":"\ud800\u0041"}}`, 0), "", "unpaired surrogate"},
		{"tensor entry not an object", safetensorsFile(`{"a":1}`, 0), "a", "entry is not an object"},
		{"unknown dtype", safetensorsFile("{"+entry("a", "F128", "[1]", "[0,16]")+"}", 16), "a", `unknown dtype "F128"`},
		{"lower-case dtype", safetensorsFile("{"+entry("a", "f32", "[1]", "[0,4]")+"}", 4), "a", `unknown dtype "f32"`},
		{"dtype not a string", safetensorsFile(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, 4), "a", "dtype is not a string"},
		{"missing dtype", safetensorsFile(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, 4), "a", "missing dtype"},
		{"missing shape", safetensorsFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, 4), "a", "missing shape"},
		{"missing data_offsets", safetensorsFile(`{"a":{"dtype":"F32","shape":[1]}}`, 4), "a", "missing data_offsets"},
		{"unexpected field", safetensorsFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, 4), "a", `unexpected field "x"`},
		{"duplicate field", safetensorsFile(`{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4), "a", "duplicate field"},
		{"shape not an array", safetensorsFile("{"+entry("a", "F32", "1", "[0,4]")+"}", 4), "a", "not an array"},
		{"shape null", safetensorsFile("{"+entry("a", "F32", "null", "[0,4]")+"}", 4), "a", "not an array"},
		{"negative dimension", safetensorsFile("{"+entry("a", "F32", "[-1]", "[0,4]")+"}", 4), "a", "-1 is not a non-negative integer"},
		{"fractional dimension", safetensorsFile("{"+entry("a", "F32", "[1.0]", "[0,4]")+"}", 4), "a", "1.0 is not a non-negative integer"},
		{"exponent dimension", safetensorsFile("{"+entry("a", "F32", "[1e0]", "[0,4]")+"}", 4), "a", "not a non-negative integer"},
		{"quoted dimension", safetensorsFile("{"+entry("a", "F32", `["1"]`, "[0,4]")+"}", 4), "a", "not a non-negative integer"},
		{"dimension beyond uint64", safetensorsFile("{"+entry("a", "F32", "[18446744073709551616]", "[0,4]")+"}", 4), "a", "too large"},
		{"dimension beyond int64", safetensorsFile("{"+entry("a", "F32", "[9223372036854775808]", "[0,4]")+"}", 4), "a", "too large"},
		{"one data offset", safetensorsFile("{"+entry("a", "F32", "[1]", "[4]")+"}", 4), "a", "want [begin, end]"},
		{"three data offsets", safetensorsFile("{"+entry("a", "F32", "[1]", "[0,4,8]")+"}", 4), "a", "want [begin, end]"},
		{"negative data offset", safetensorsFile("{"+entry("a", "F32", "[1]", "[-4,0]")+"}", 4), "a", "not a non-negative integer"},
		{"end before begin", safetensorsFile("{"+entry("a", "U8", "[0]", "[4,0]")+"}", 4), "a", "data_offsets [4, 0] end before they begin"},
		{"gap at the start", safetensorsFile("{"+entry("a", "F32", "[1]", "[4,8]")+"}", 8), "a", "leave a gap: the previous tensor ends at 0"},
		{"gap between tensors", safetensorsFile("{"+entry("a", "F32", "[1]", "[0,4]")+","+entry("b", "F32", "[1]", "[8,12]")+"}", 12), "b", "leave a gap"},
		{"overlap", safetensorsFile("{"+entry("a", "F32", "[2]", "[0,8]")+","+entry("b", "F32", "[1]", "[4,8]")+"}", 8), "b", "overlap the previous tensor, which ends at 8"},
		{"same extent twice", safetensorsFile("{"+entry("a", "F32", "[1]", "[0,4]")+","+entry("b", "F32", "[1]", "[0,4]")+"}", 4), "b", "overlap"},
		{"size mismatch", safetensorsFile("{"+entry("h.0.attn.c_attn.weight", "F32", "[10,10]", "[0,100]")+"}", 100),
			"h.0.attn.c_attn.weight", "data_offsets [0, 100] do not match shape [10 10] of F32 (400 bytes)"},
		{"element count wraps to zero in 64 bits", safetensorsFile("{"+entry("a", "U8", "[4611686018427387904,4]", "[0,0]")+"}", 0), "a", "overflows"},
		{"bit count wraps in 64 bits", safetensorsFile("{"+entry("a", "F64", "[2305843009213693952]", "[0,0]")+"}", 0), "a", "overflows"},
		{"sub-byte tensor not a whole number of bytes", safetensorsFile("{"+entry("a", "F4", "[3]", "[0,1]")+"}", 1), "a", "12 bits, not a whole number of bytes"},
		{"trailing bytes after the last tensor", safetensorsFile("{"+entry("a", "F32", "[1]", "[0,4]")+"}", 5), "", "tensors cover 4 bytes but the data buffer after the header is 5 bytes"},
		{"data buffer shorter than the tensors", safetensorsFile("{"+entry("a", "F32", "[2]", "[0,8]")+"}", 4), "", "tensors cover 8 bytes but the data buffer after the header is 4 bytes"},
		{"no tensors but data", safetensorsFile(`{}`, 1), "", "tensors cover 0 bytes"},
		{"duplicate tensor name", safetensorsFile("{"+entry("a", "U8", "[1]", "[0,1]")+","+entry("a", "U8", "[1]", "[1,2]")+"}", 2), "a", "duplicate tensor name"},
		{"duplicate metadata", safetensorsFile(`{"__metadata__":{},"__metadata__":{}}`, 0), "", "duplicate __metadata__"},
		{"metadata not an object", safetensorsFile(`{"__metadata__":["x"]}`, 0), "", "__metadata__ is not an object"},
		{"metadata with a number value", safetensorsFile(`{"__metadata__":{"n":1}}`, 0), "", "__metadata__ must map strings to strings"},
		{"metadata with a nested object", safetensorsFile(`{"__metadata__":{"n":{}}}`, 0), "", "__metadata__ must map strings to strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header, err := parseBytes(tt.file)
			require.Error(t, err)
			assert.Nil(t, header)
			var stErr *SafetensorsError
			require.ErrorAs(t, err, &stErr)
			assert.Equal(t, tt.tensor, stErr.Tensor)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.True(t, strings.HasPrefix(err.Error(), "safetensors: "), err.Error())
		})
	}
}

func TestSafetensorsErrorMessage(t *testing.T) {
	file := safetensorsFile(`{"h.0.attn.c_attn.weight":{"dtype":"F32","shape":[10,10],"data_offsets":[0,100]}}`, 100)
	_, err := parseBytes(file)
	require.EqualError(t, err,
		`safetensors: tensor "h.0.attn.c_attn.weight": data_offsets [0, 100] do not match shape [10 10] of F32 (400 bytes)`)
}

// recordingReaderAt serves a virtual file (contents followed by zeros up to
// size) and records the furthest byte any read asked for.
type recordingReaderAt struct {
	contents []byte
	size     int64
	maxEnd   int64
	reads    int
}

func (r *recordingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	r.reads++
	if end := off + int64(len(p)); end > r.maxEnd {
		r.maxEnd = end
	}
	if off >= r.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off+int64(n) < r.size {
		if i := off + int64(n); i < int64(len(r.contents)) {
			p[n] = r.contents[i]
		} else {
			p[n] = 0
		}
		n++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestParseSafetensorsHeaderReadsOnlyTheHeader(t *testing.T) {
	// A 1 TiB file: reading its data would be noticed.
	file := safetensorsFile(`{"w":{"dtype":"U8","shape":[1099511627776],"data_offsets":[0,1099511627776]}}`, 0)
	reader := &recordingReaderAt{contents: file, size: int64(len(file)) + 1<<40}
	header, err := ParseSafetensorsHeader(reader, reader.size)
	require.NoError(t, err)
	assert.Equal(t, int64(1)<<40, header.DataSize())
	assert.Equal(t, header.DataOffset, reader.maxEnd, "read beyond the header")
	assert.Equal(t, 2, reader.reads, "the length prefix, then the header")
}

func TestParseSafetensorsHeaderChecksLengthBeforeAllocating(t *testing.T) {
	tests := []struct {
		name      string
		headerLen uint64
		fileSize  int64
		wantErr   string
	}{
		{"length at the cap, file too short", MaxSafetensorsHeader, 1000, "past end of file"},
		{"length above the cap, file large enough", MaxSafetensorsHeader + 1, 1 << 40, "header too large"},
		{"huge length", 1 << 62, 1 << 62, "header too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reader := &recordingReaderAt{contents: binary.LittleEndian.AppendUint64(nil, tt.headerLen), size: tt.fileSize}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := ParseSafetensorsHeader(reader, tt.fileSize)
			runtime.ReadMemStats(&after)
			require.ErrorContains(t, err, tt.wantErr)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "allocated a header buffer before checking its length")
			assert.Equal(t, int64(8), reader.maxEnd, "read past the length prefix")
		})
	}
}

func TestParseSafetensorsHeaderReadErrors(t *testing.T) {
	file := safetensorsFile(`{}`, 0)
	t.Run("file shorter than its stated size", func(t *testing.T) {
		_, err := ParseSafetensorsHeader(bytes.NewReader(file[:9]), int64(len(file)))
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		var stErr *SafetensorsError
		assert.False(t, errors.As(err, &stErr), "an I/O failure is not a format error")
	})
	t.Run("reader failure", func(t *testing.T) {
		boom := errors.New("disk on fire")
		_, err := ParseSafetensorsHeader(failingReaderAt{boom}, 100)
		require.ErrorIs(t, err, boom)
	})
}

type failingReaderAt struct{ err error }

func (f failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, f.err }

func TestReadSafetensorsHeader(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "model.safetensors")
	require.NoError(t, os.WriteFile(good, encodedSafetensorsFile(t, []TensorInfo{
		{Name: "wte.weight", Dtype: DtypeF16, Shape: []int64{8, 4}},
	}, map[string]string{"format": "pt"}), 0o644))
	header, err := ReadSafetensorsHeader(good)
	require.NoError(t, err)
	assert.Equal(t, []TensorInfo{{Name: "wte.weight", Dtype: DtypeF16, Shape: []int64{8, 4}, Begin: 0, End: 64}}, header.Tensors)
	assert.Equal(t, map[string]string{"format": "pt"}, header.Metadata)

	bad := filepath.Join(dir, "bad.safetensors")
	require.NoError(t, os.WriteFile(bad, append(binary.LittleEndian.AppendUint64(nil, 123456), make([]byte, 92)...), 0o644))
	_, err = ReadSafetensorsHeader(bad)
	require.EqualError(t, err, bad+": safetensors: header length 123456 past end of file (size 100)")
	var stErr *SafetensorsError
	assert.ErrorAs(t, err, &stErr)

	_, err = ReadSafetensorsHeader(filepath.Join(dir, "absent.safetensors"))
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, "absent.safetensors")

	_, err = ReadSafetensorsHeader(dir)
	require.ErrorContains(t, err, dir+": not a regular file")
}

func TestEncodeSafetensorsHeader(t *testing.T) {
	t.Run("matches the reference serializer byte for byte", func(t *testing.T) {
		// safetensors' own test_serialization and test_empty vectors.
		encoded, err := EncodeSafetensorsHeader([]TensorInfo{
			{Name: "attn.0", Dtype: DtypeF32, Shape: []int64{1, 2, 3}, Begin: 0, End: 24},
		}, nil)
		require.NoError(t, err)
		want := append([]byte{64, 0, 0, 0, 0, 0, 0, 0},
			`{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`...)
		assert.Equal(t, want, encoded)

		encoded, err = EncodeSafetensorsHeader(nil, nil)
		require.NoError(t, err)
		assert.Equal(t, []byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}, encoded)

		encoded, err = EncodeSafetensorsHeader(nil, map[string]string{"framework": "pt"})
		require.NoError(t, err)
		assert.Equal(t, append([]byte{40, 0, 0, 0, 0, 0, 0, 0}, `{"__metadata__":{"framework":"pt"}}     `...), encoded)
	})

	t.Run("round trip through the parser, deterministic", func(t *testing.T) {
		tensors := []TensorInfo{
			{Name: "z<&>\"quoted\"", Dtype: DtypeBF16, Shape: []int64{3, 5}},
			{Name: "empty", Dtype: DtypeF32, Shape: []int64{0}},
			{Name: "scalar", Dtype: DtypeI64, Shape: []int64{}},
			{Name: "nibbles", Dtype: DtypeF4, Shape: []int64{6}},
			{Name: "ünïcode", Dtype: DtypeC64, Shape: []int64{2}},
		}
		metadata := map[string]string{"format": "pt", "b": "x\ny", "a": ""}
		file := encodedSafetensorsFile(t, tensors, metadata)
		again := encodedSafetensorsFile(t, tensors, metadata)
		assert.Equal(t, file, again)

		header, err := parseBytes(file)
		require.NoError(t, err)
		assert.Equal(t, int64(0), header.DataOffset%8, "data must start 8-byte aligned")
		assert.Equal(t, metadata, header.Metadata)
		sortTensors(tensors)
		assert.Equal(t, tensors, header.Tensors)
	})

	t.Run("rejects what the parser would reject", func(t *testing.T) {
		tests := []struct {
			name    string
			tensors []TensorInfo
			wantErr string
		}{
			{"unknown dtype", []TensorInfo{{Name: "a", Dtype: "F128", Shape: []int64{1}, End: 16}}, "unknown dtype"},
			{"reserved name", []TensorInfo{{Name: "__metadata__", Dtype: DtypeU8, Shape: []int64{1}, End: 1}}, "reserved"},
			{"invalid UTF-8 name", []TensorInfo{{Name: "\xff", Dtype: DtypeU8, Shape: []int64{1}, End: 1}}, "not valid UTF-8"},
			{"duplicate name", []TensorInfo{
				{Name: "a", Dtype: DtypeU8, Shape: []int64{1}, Begin: 0, End: 1},
				{Name: "a", Dtype: DtypeU8, Shape: []int64{1}, Begin: 1, End: 2},
			}, "duplicate tensor name"},
			{"gap", []TensorInfo{{Name: "a", Dtype: DtypeU8, Shape: []int64{1}, Begin: 1, End: 2}}, "gap"},
			{"size mismatch", []TensorInfo{{Name: "a", Dtype: DtypeU16, Shape: []int64{1}, End: 1}}, "do not match"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := EncodeSafetensorsHeader(tt.tensors, nil)
				require.ErrorContains(t, err, tt.wantErr)
			})
		}
		_, err := EncodeSafetensorsHeader(nil, map[string]string{"k": "\xff"})
		require.ErrorContains(t, err, "not valid UTF-8")
	})
}

func TestPackTensors(t *testing.T) {
	tensors := []TensorInfo{
		{Name: "a", Dtype: DtypeF32, Shape: []int64{2, 2}},
		{Name: "b", Dtype: DtypeU8, Shape: []int64{3}},
		{Name: "c", Dtype: DtypeF6E3M2, Shape: []int64{4}},
	}
	size, err := PackTensors(tensors)
	require.NoError(t, err)
	assert.Equal(t, int64(22), size)
	assert.Equal(t, [][2]int64{{0, 16}, {16, 19}, {19, 22}},
		[][2]int64{{tensors[0].Begin, tensors[0].End}, {tensors[1].Begin, tensors[1].End}, {tensors[2].Begin, tensors[2].End}})

	_, err = PackTensors([]TensorInfo{
		{Name: "big", Dtype: DtypeU8, Shape: []int64{1 << 62}},
		{Name: "bigger", Dtype: DtypeU8, Shape: []int64{1 << 62}},
	})
	require.ErrorContains(t, err, "overflows")
}

func TestTensorInfoDataSize(t *testing.T) {
	tests := []struct {
		name    string
		tensor  TensorInfo
		want    int64
		wantErr string
	}{
		{"matrix", TensorInfo{Dtype: DtypeBF16, Shape: []int64{3, 4}}, 24, ""},
		{"scalar", TensorInfo{Dtype: DtypeF64, Shape: nil}, 8, ""},
		{"empty", TensorInfo{Dtype: DtypeF64, Shape: []int64{5, 0}}, 0, ""},
		{"F4 pair", TensorInfo{Dtype: DtypeF4, Shape: []int64{2}}, 1, ""},
		{"F4 odd", TensorInfo{Dtype: DtypeF4, Shape: []int64{1}}, 0, "not a whole number of bytes"},
		{"negative", TensorInfo{Dtype: DtypeU8, Shape: []int64{-1}}, 0, "negative dimension"},
		{"large", TensorInfo{Dtype: DtypeU8, Shape: []int64{1 << 60}}, 1 << 60, ""},
		// Like the reference, the size is counted in bits first.
		{"bits beyond uint64", TensorInfo{Dtype: DtypeU8, Shape: []int64{1<<63 - 1}}, 0, "overflows"},
		{"bytes beyond int64", TensorInfo{Dtype: DtypeU16, Shape: []int64{1 << 62}}, 0, "overflows"},
		{"unknown dtype", TensorInfo{Dtype: "X", Shape: []int64{1}}, 0, "unknown dtype"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.tensor.DataSize()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// bigDataSize computes a tensor's size with unbounded integers, as an
// independent check of DataSize; ok is false if it is not whole bytes.
func bigDataSize(tensor TensorInfo) (size *big.Int, ok bool) {
	bitsTotal := big.NewInt(int64(tensor.Dtype.BitSize()))
	for _, dim := range tensor.Shape {
		bitsTotal.Mul(bitsTotal, big.NewInt(dim))
	}
	quotient, remainder := new(big.Int).QuoRem(bitsTotal, big.NewInt(8), new(big.Int))
	return quotient, remainder.Sign() == 0
}

func FuzzParseSafetensorsHeader(f *testing.F) {
	// Valid files, with and without trailing declared data.
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}, uint32(0))
	f.Add(encodedSafetensorsFile(f, []TensorInfo{
		{Name: "a", Dtype: DtypeF32, Shape: []int64{2, 2}},
		{Name: "b", Dtype: DtypeF4, Shape: []int64{2}},
		{Name: "c", Dtype: DtypeU8, Shape: []int64{0}},
	}, map[string]string{"format": "pt"}), uint32(0))
	f.Add(safetensorsFile(`{"w":{"dtype":"BF16","shape":[1024,1024],"data_offsets":[0,2097152]}}`, 0), uint32(2097152))
	// Each kind of bad input.
	entry := `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`
	for _, bad := range []string{
		"", " {}", "[]", `{"a":1}`, `{}x`, "{\"\xff\":1}", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`,
		`{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`,
		`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`,
		`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`,
		`{"a":{"dtype":"U8","shape":[4611686018427387904,4],"data_offsets":[0,0]}}`,
		`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}`,
		`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`,
		`{"__metadata__":{"n":1}}`, `{"__metadata__":{},"__metadata__":{}}`, `{"__metadata__":{"k":"\ud800"}}`,
	} {
		f.Add(safetensorsFile(bad, 4), uint32(0))
	}
	f.Add(safetensorsFile(entry, 0), uint32(4))
	f.Add(safetensorsFile(entry, 0), uint32(5))
	f.Add(binary.LittleEndian.AppendUint64(nil, MaxSafetensorsHeader+1), uint32(1<<31))
	f.Add(binary.LittleEndian.AppendUint64(nil, 1<<20), uint32(0))
	f.Add([]byte{1, 2}, uint32(0))

	f.Fuzz(func(t *testing.T, contents []byte, extraZeros uint32) {
		reader := &recordingReaderAt{contents: contents, size: int64(len(contents)) + int64(extraZeros)}
		var header *SafetensorsHeader
		var err error
		n := allocs(func() { header, err = ParseSafetensorsHeader(reader, reader.size) })
		// At most the header it reads, and the JSON's expansion of the
		// bytes that are not padding.
		require.LessOrEqual(t, n, uint64(reader.maxEnd)+jsonExpansion*uint64(len(contents))+parseOverhead, "allocated %d bytes", n)

		// Never reads beyond the header, which is never beyond the cap.
		if len(contents) >= 8 {
			headerEnd := 8 + binary.LittleEndian.Uint64(contents)
			require.LessOrEqual(t, uint64(reader.maxEnd), max(headerEnd, 8))
		}
		require.LessOrEqual(t, reader.maxEnd, int64(8+MaxSafetensorsHeader))
		if err != nil {
			require.Nil(t, header)
			return
		}

		// Accepted: the invariants hold.
		require.LessOrEqual(t, header.JSONLen, int64(MaxSafetensorsHeader))
		require.Equal(t, 8+header.JSONLen, header.DataOffset)
		require.Equal(t, header.DataOffset, reader.maxEnd)
		dataSize := reader.size - header.DataOffset
		var next int64
		names := map[string]bool{}
		for i, tensor := range header.Tensors {
			require.False(t, names[tensor.Name], "duplicate name %q", tensor.Name)
			names[tensor.Name] = true
			require.NotEqual(t, metadataKey, tensor.Name)
			require.True(t, tensor.Dtype.Valid())
			require.Equal(t, next, tensor.Begin, "tensor %d not contiguous", i)
			require.GreaterOrEqual(t, tensor.End, tensor.Begin)
			size, whole := bigDataSize(tensor)
			require.True(t, whole)
			require.Equal(t, size, big.NewInt(tensor.End-tensor.Begin), "tensor %q size", tensor.Name)
			if i > 0 && tensor.Begin == header.Tensors[i-1].Begin {
				previous := header.Tensors[i-1]
				require.Equal(t, previous.Begin, previous.End, "only zero-size tensors share an offset")
				if tensor.Begin == tensor.End {
					require.Less(t, previous.Name, tensor.Name)
				}
			}
			next = tensor.End
		}
		require.Equal(t, dataSize, next, "tensors must cover the data buffer exactly")
		require.Equal(t, dataSize, header.DataSize())

		// What was accepted re-encodes to a header that is accepted again.
		encoded, err := EncodeSafetensorsHeader(header.Tensors, header.Metadata)
		require.NoError(t, err)
		again, err := ParseSafetensorsHeader(&recordingReaderAt{contents: encoded, size: int64(len(encoded)) + dataSize}, int64(len(encoded))+dataSize)
		require.NoError(t, err)
		require.Equal(t, header.Tensors, again.Tensors)
		require.Equal(t, header.Metadata, again.Metadata)
	})
}
