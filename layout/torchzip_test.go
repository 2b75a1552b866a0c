package layout

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// torchSidecar is what scripts/gen-torch-fixtures.py recorded, from torch
// itself, about a fixture's storages.
type torchSidecar struct {
	File     string `json:"file"`
	Torch    string `json:"torch"`
	Size     int64  `json:"size"`
	Prefix   string `json:"prefix"`
	Records  int    `json:"records"`
	Storages []struct {
		Key        string `json:"key"`
		Record     string `json:"record"`
		Dtype      string `json:"dtype"`
		Size       int64  `json:"size"`
		DataOffset int64  `json:"data_offset"`
	} `json:"storages"`
}

func readSidecar(t *testing.T, path string) torchSidecar {
	t.Helper()
	data, err := os.ReadFile(path + ".json")
	require.NoError(t, err)
	var sidecar torchSidecar
	require.NoError(t, json.Unmarshal(data, &sidecar))
	return sidecar
}

func parseTorchFile(t testing.TB, path string) (*TorchZip, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return ParseTorchZip(bytes.NewReader(data), int64(len(data)))
}

// checkTiling asserts that storages and metadata extents tile [0, size).
func checkTiling(t *testing.T, tz *TorchZip, start, end int64) {
	t.Helper()
	var extents []Extent
	for _, s := range tz.Storages {
		extents = append(extents, s.Extent())
	}
	extents = append(extents, tz.Metadata...)
	sortExtents(extents)
	next := start
	for _, e := range extents {
		require.Equal(t, next, e.Offset, "extents leave a gap or overlap at %d", next)
		next = e.End()
	}
	require.Equal(t, end, next)
}

func sortExtents(extents []Extent) {
	for i := 1; i < len(extents); i++ {
		for j := i; j > 0 && extents[j].Offset < extents[j-1].Offset; j-- {
			extents[j], extents[j-1] = extents[j-1], extents[j]
		}
	}
}

// TestParseTorchZipRealFixtures compares the parser with what torch itself
// says about files torch.save wrote (testdata/torch, see its README).
func TestParseTorchZipRealFixtures(t *testing.T) {
	for _, name := range []string{"state_dict.pt", "optimizer.pt", "buffer.bin"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("..", "testdata", "torch", name)
			want := readSidecar(t, path)
			tz, err := parseTorchFile(t, path)
			require.NoError(t, err)
			assert.Equal(t, want.Prefix, tz.Prefix)
			assert.Len(t, tz.Records, want.Records)
			assert.Equal(t, want.Prefix+"/data.pkl", tz.Pickle.Name)
			assert.NotEmpty(t, tz.Version)
			require.Len(t, tz.Storages, len(want.Storages))
			for i, s := range tz.Storages {
				w := want.Storages[i]
				assert.Equal(t, w.Key, s.Key)
				assert.Equal(t, w.Record, s.Record)
				assert.Equal(t, w.DataOffset, s.DataOffset, "storage %s offset", s.Key)
				assert.Equal(t, w.Size, s.Size, "storage %s size", s.Key)
				assert.Equal(t, TorchDtype(w.Dtype), s.Dtype, "storage %s dtype", s.Key)
				assert.Equal(t, TorchDtype(w.Dtype).ScalarSize(), s.ElemSize)
				assert.NotZero(t, s.ElemSize)
			}
			checkTiling(t, tz, 0, want.Size)
		})
	}
}

// TestParseTorchZipSharedView: a view shares its base's storage, which is
// one record and one storage.
func TestParseTorchZipSharedView(t *testing.T) {
	tz, err := parseTorchFile(t, filepath.Join("..", "testdata", "torch", "state_dict.pt"))
	require.NoError(t, err)
	dtypes := map[TorchDtype]int{}
	for _, s := range tz.Storages {
		dtypes[s.Dtype]++
	}
	// fc.weight, fc.bias and the view of fc.weight: two float32 storages.
	assert.Equal(t, map[TorchDtype]int{"float32": 2, "bfloat16": 1, "float16": 1, "int64": 1, "bool": 1}, dtypes)
}

func TestParseTorchZipLegacyRefused(t *testing.T) {
	_, err := parseTorchFile(t, filepath.Join("..", "testdata", "torch", "legacy.pt"))
	require.ErrorIs(t, err, ErrLegacyTorchSave)
	assert.Contains(t, err.Error(), "legacy torch.save format")
}

func TestParseTorchZipRefusesConcatenation(t *testing.T) {
	_, err := parseTorchFile(t, filepath.Join("..", "testdata", "torch", "__0_0.distcp"))
	var zipErr *TorchZipError
	require.ErrorAs(t, err, &zipErr)
	assert.Contains(t, err.Error(), "not at the start of the file")
}

// Pickle building blocks for hand-made torch.save pickles (protocol 2).
func pickleStr(s string) []byte {
	return append(binary.LittleEndian.AppendUint32([]byte{pkBinUnicode}, uint32(len(s))), s...)
}

func pkGlobalOp(module, name string) []byte {
	return []byte("c" + module + "\n" + name + "\n")
}

func pickleInt(n uint32) []byte { return binary.LittleEndian.AppendUint32([]byte{pkBinInt}, n) }

// testTensor is one tensor of a hand-made pickle.
type testTensor struct {
	name, storageType, key string
	numel                  uint32
	// dtype, if set, makes the tensor a _rebuild_tensor_v3 of that dtype
	// over an untyped storage (storageType is then ignored).
	dtype string
}

// torchPickle returns a protocol 2 pickle of {name: tensor} as torch.save
// writes it (without memo).
func torchPickle(tensors ...testTensor) []byte {
	out := []byte{pkProto, 2, pkEmptyDict}
	for _, tt := range tensors {
		out = append(out, pickleStr(tt.name)...)
		rebuild, storageType := "_rebuild_tensor_v2", pkGlobalOp("torch", tt.storageType)
		if tt.dtype != "" {
			rebuild, storageType = "_rebuild_tensor_v3", pkGlobalOp("torch.storage", "UntypedStorage")
		}
		out = append(out, pkGlobalOp("torch._utils", rebuild)...)
		out = append(out, pkMark, pkMark)
		out = append(out, pickleStr("storage")...)
		out = append(out, storageType...)
		out = append(out, pickleStr(tt.key)...)
		out = append(out, pickleStr("cpu")...)
		out = append(out, pickleInt(tt.numel)...)
		out = append(out, pkTuple, pkBinPersID)
		out = append(out, pickleInt(0)...)                          // storage_offset
		out = append(out, append(pickleInt(tt.numel), pkTuple1)...) // size
		out = append(out, append(pickleInt(1), pkTuple1)...)        // stride
		out = append(out, pkNewFalse)                               // requires_grad
		out = append(out, pkGlobalOp("collections", "OrderedDict")...)
		out = append(out, pkEmptyTuple, pkReduce) // backward_hooks
		if tt.dtype != "" {
			out = append(out, pkGlobalOp("torch", tt.dtype)...)
		}
		out = append(out, pkTuple, pkReduce, pkSetItem)
	}
	return append(out, pkStop)
}

// testRecord is one record of a hand-made archive.
type testRecord struct {
	name   string
	data   []byte
	method uint16
}

// buildZip writes records as a stored zip the way torch.save lays them out
// (64-byte aligned data) with archive/zip.
func buildZip(t testing.TB, records ...testRecord) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, rec := range records {
		header := &zip.FileHeader{Name: rec.name, Method: rec.method}
		if rec.method == zip.Store {
			header.CRC32 = crc32.ChecksumIEEE(rec.data)
			header.CompressedSize64 = uint64(len(rec.data))
			header.UncompressedSize64 = uint64(len(rec.data))
			w, err := zw.CreateRaw(header)
			require.NoError(t, err)
			_, err = w.Write(rec.data)
			require.NoError(t, err)
			continue
		}
		w, err := zw.CreateHeader(header)
		require.NoError(t, err)
		_, err = w.Write(rec.data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// validTorchRecords is a small archive: an F32 storage of 4 elements and a
// bf16 one of 3 shared by two tensors.
func validTorchRecords() []testRecord {
	pickle := torchPickle(
		testTensor{name: "w", storageType: "FloatStorage", key: "0", numel: 4},
		testTensor{name: "b", storageType: "BFloat16Storage", key: "1", numel: 3},
		testTensor{name: "b2", storageType: "BFloat16Storage", key: "1", numel: 3},
	)
	return []testRecord{
		{name: "archive/data.pkl", data: pickle},
		{name: "archive/byteorder", data: []byte("little")},
		{name: "archive/data/0", data: make([]byte, 16)},
		{name: "archive/data/1", data: make([]byte, 6)},
		{name: "archive/version", data: []byte("3\n")},
	}
}

func TestParseTorchZipHandMade(t *testing.T) {
	file := buildZip(t, validTorchRecords()...)
	tz, err := ParseTorchZip(bytes.NewReader(file), int64(len(file)))
	require.NoError(t, err)
	assert.Equal(t, ByteOrderLittle, tz.ByteOrder)
	assert.Equal(t, "3", tz.Version)
	require.Len(t, tz.Storages, 2)
	assert.Equal(t, TorchDtype("float32"), tz.Storages[0].Dtype)
	assert.Equal(t, 4, tz.Storages[0].ElemSize)
	assert.Equal(t, TorchDtype("bfloat16"), tz.Storages[1].Dtype)
	assert.Equal(t, 2, tz.Storages[1].ElemSize)
	checkTiling(t, tz, 0, int64(len(file)))

	// The offsets are the ones archive/zip computes.
	archive, err := zip.NewReader(bytes.NewReader(file), int64(len(file)))
	require.NoError(t, err)
	for _, f := range archive.File {
		off, err := f.DataOffset()
		require.NoError(t, err)
		for _, s := range tz.Storages {
			if s.Record == f.Name {
				assert.Equal(t, off, s.DataOffset, f.Name)
			}
		}
	}
}

// TestParseTorchZipV3Dtype: dtypes without a legacy storage class are
// saved as an untyped storage and a dtype argument of _rebuild_tensor_v3.
func TestParseTorchZipV3Dtype(t *testing.T) {
	pickle := torchPickle(
		testTensor{name: "f8", key: "0", numel: 8, dtype: "float8_e4m3fn"},
		testTensor{name: "u16", key: "1", numel: 8, dtype: "uint16"},
		testTensor{name: "odd", key: "2", numel: 8, dtype: "no_such_dtype"},
		// An untyped storage nothing names a dtype for stays unknown.
		testTensor{name: "raw", storageType: "UntypedStorage", key: "3", numel: 5},
	)
	file := buildZip(t,
		testRecord{name: "a/data.pkl", data: pickle},
		testRecord{name: "a/data/0", data: make([]byte, 8)},
		testRecord{name: "a/data/1", data: make([]byte, 8)},
		testRecord{name: "a/data/2", data: make([]byte, 8)},
		testRecord{name: "a/data/3", data: make([]byte, 5)},
	)
	tz, err := ParseTorchZip(bytes.NewReader(file), int64(len(file)))
	require.NoError(t, err)
	got := map[string]TorchDtype{}
	elem := map[string]int{}
	for _, s := range tz.Storages {
		got[s.Key], elem[s.Key] = s.Dtype, s.ElemSize
	}
	assert.Equal(t, map[string]TorchDtype{"0": "float8_e4m3fn", "1": "uint16", "2": "", "3": ""}, got)
	assert.Equal(t, map[string]int{"0": 1, "1": 2, "2": 0, "3": 0}, elem)
	assert.Equal(t, ByteOrderUnspecified, tz.ByteOrder)
}

// mutateZip parses file with archive/zip-independent helpers: it returns
// the offsets of the central directory entries and of the end record.
func zipOffsets(t testing.TB, file []byte) (central []int, end int) {
	t.Helper()
	end = len(file) - zipEndLen
	cd := int(binary.LittleEndian.Uint32(file[end+16:]))
	for i := cd; i < end; {
		require.Equal(t, uint32(zipCentralHeaderSig), binary.LittleEndian.Uint32(file[i:]))
		central = append(central, i)
		n := binary.LittleEndian.Uint16(file[i+28:])
		m := binary.LittleEndian.Uint16(file[i+30:])
		k := binary.LittleEndian.Uint16(file[i+32:])
		i += zipCentralHeaderLen + int(n) + int(m) + int(k)
	}
	return central, end
}

func TestParseTorchZipHostile(t *testing.T) {
	valid := buildZip(t, validTorchRecords()...)
	central, end := zipOffsets(t, valid)
	patch := func(at int, value uint32, width int) []byte {
		out := bytes.Clone(valid)
		switch width {
		case 2:
			binary.LittleEndian.PutUint16(out[at:], uint16(value))
		case 4:
			binary.LittleEndian.PutUint32(out[at:], value)
		}
		return out
	}
	withRecords := func(edit func([]testRecord) []testRecord) []byte {
		return buildZip(t, edit(validTorchRecords())...)
	}
	tests := []struct {
		name     string
		file     []byte
		sentinel error
		reason   string
	}{
		{"empty", nil, ErrNotTorchZip, ""},
		{"not a zip", []byte("hello, this is text and not a zip archive"), ErrNotTorchZip, ""},
		{"truncated end record", valid[:len(valid)-5], ErrNotTorchZip, ""},
		{"truncated in the middle", valid[:len(valid)/2], ErrNotTorchZip, ""},
		{"comment after the end record", append(patch(end+20, 3, 2), "abc"...), ErrNotTorchZip, ""},
		{"prefixed by other bytes", append([]byte("PK\x03\x04junkjunk"), valid...), nil, "not at the start of the file"},
		{"absurd entry count", patch16(patch(end+8, 0xfff0, 2), end+10, 0xfff0), nil, "cannot hold"},
		{"disagreeing counts", patch(end+10, 2, 2), nil, "on this disk"},
		{"multi-disk", patch(end+4, 1, 2), nil, "multi-disk"},
		{"saturated without zip64", patch16(patch(end+8, 0xffff, 2), end+10, 0xffff), nil, "no zip64 locator"},
		{"directory larger than the file", patch(end+12, 1<<30, 4), nil, "does not fit"},
		{"directory offset past the directory", patch(end+16, uint32(len(valid)), 4), nil, "lies past"},
		{"local header offset beyond the directory", patch(central[1]+42, uint32(end+100), 4), nil, "past the central directory"},
		{"overlapping records", patch(central[2]+42, binary.LittleEndian.Uint32(valid[central[1]+42:]), 4), nil, "overlaps"},
		{"no local header there", patch(central[1]+42, 7, 4), nil, "overlaps"},
		{"size runs into the directory", patch(central[3]+20, 1<<20, 4), nil, "stored record has compressed size"},
		{"sizes run into the directory", patch2(patch2(valid, central[3]+24, 1<<20), central[3]+20, 1<<20), nil, "past the central directory"},
		{"encrypted", patch(central[2]+8, 1, 2), nil, "encrypted"},
		{"bad central signature", patch(central[1], 0x12345678, 4), nil, "malformed"},
		{"missing pickle", withRecords(func(r []testRecord) []testRecord { return r[1:] }), nil, "no archive/data.pkl"},
		{"mixed folders", withRecords(func(r []testRecord) []testRecord {
			r[1].name = "other/byteorder"
			return r
		}), nil, "not in the archive folder"},
		{"record outside any folder", withRecords(func(r []testRecord) []testRecord {
			r[4].name = "version"
			return r
		}), nil, "not in the archive folder"},
		{"duplicate name", withRecords(func(r []testRecord) []testRecord { return append(r, r[2]) }), nil, "duplicate"},
		{"compressed storage", withRecords(func(r []testRecord) []testRecord {
			r[2].method = zip.Deflate
			return r
		}), nil, "storage is compressed"},
		{"compressed pickle", withRecords(func(r []testRecord) []testRecord {
			r[0].method = zip.Deflate
			return r
		}), nil, "pickle is compressed"},
		{"missing storage record", withRecords(func(r []testRecord) []testRecord { return append(r[:2], r[3:]...) }), nil, `storage "0", which has no record`},
		{"storage size disagrees", withRecords(func(r []testRecord) []testRecord {
			r[2].data = make([]byte, 15)
			return r
		}), nil, "the record holds 15 bytes"},
		{"bad byte order", withRecords(func(r []testRecord) []testRecord {
			r[1].data = []byte("middle")
			return r
		}), nil, "neither little nor big"},
		{"huge version record", withRecords(func(r []testRecord) []testRecord {
			r[4].data = make([]byte, 1000)
			return r
		}), nil, "limit"},
		{"empty storage key", withRecords(func(r []testRecord) []testRecord {
			r[2].name = "archive/data/a/b"
			return r
		}), nil, "storage key"},
		{"pickle without STOP", withRecords(func(r []testRecord) []testRecord {
			r[0].data = r[0].data[:len(r[0].data)-1]
			return r
		}), nil, "no STOP"},
		{"pickle with an unknown opcode", withRecords(func(r []testRecord) []testRecord {
			r[0].data = []byte{pkProto, 2, 0xff, pkStop}
			return r
		}), nil, "unknown opcode"},
		{"pickle with a bad storage id", withRecords(func(r []testRecord) []testRecord {
			bad := []byte{pkProto, 2, pkMark}
			bad = append(bad, pickleStr("storage")...)
			bad = append(bad, pickleInt(1)...)
			bad = append(bad, pickleStr("0")...)
			bad = append(bad, pickleStr("cpu")...)
			bad = append(bad, pickleInt(4)...)
			r[0].data = append(bad, pkTuple, pkBinPersID, pkStop)
			return r
		}), nil, "storage persistent id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tz, err := ParseTorchZip(bytes.NewReader(tt.file), int64(len(tt.file)))
			require.Error(t, err)
			require.Nil(t, tz)
			if tt.sentinel != nil {
				require.ErrorIs(t, err, tt.sentinel)
				return
			}
			var zipErr *TorchZipError
			require.ErrorAs(t, err, &zipErr, "error %v", err)
			assert.Contains(t, err.Error(), tt.reason)
			assert.False(t, errors.Is(err, ErrNotTorchZip))
		})
	}
}

func patch16(file []byte, at int, value uint16) []byte {
	out := bytes.Clone(file)
	binary.LittleEndian.PutUint16(out[at:], value)
	return out
}

func patch2(file []byte, at int, value uint32) []byte {
	out := bytes.Clone(file)
	binary.LittleEndian.PutUint32(out[at:], value)
	return out
}

// TestParseTorchZipTooManyEntries: the zip64 entry count is checked against
// the cap before the directory is read.
func TestParseTorchZipTooManyEntries(t *testing.T) {
	file := buildZip(t, validTorchRecords()...)
	_, end := zipOffsets(t, file)
	entries := binary.LittleEndian.Uint16(file[end+8:])
	cdSize := binary.LittleEndian.Uint32(file[end+12:])
	cdOffset := binary.LittleEndian.Uint32(file[end+16:])
	// Rebuild the tail with zip64 records claiming 2^40 entries.
	out := bytes.Clone(file[:end])
	z64 := binary.LittleEndian.AppendUint32(nil, zip64EndSig)
	z64 = binary.LittleEndian.AppendUint64(z64, zip64EndLen-12)
	z64 = binary.LittleEndian.AppendUint16(z64, 45)
	z64 = binary.LittleEndian.AppendUint16(z64, 45)
	z64 = binary.LittleEndian.AppendUint32(z64, 0)
	z64 = binary.LittleEndian.AppendUint32(z64, 0)
	z64 = binary.LittleEndian.AppendUint64(z64, 1<<40)
	z64 = binary.LittleEndian.AppendUint64(z64, 1<<40)
	z64 = binary.LittleEndian.AppendUint64(z64, uint64(cdSize))
	z64 = binary.LittleEndian.AppendUint64(z64, uint64(cdOffset))
	loc := binary.LittleEndian.AppendUint32(nil, zip64LocatorSig)
	loc = binary.LittleEndian.AppendUint32(loc, 0)
	loc = binary.LittleEndian.AppendUint64(loc, uint64(cdOffset)+uint64(cdSize))
	loc = binary.LittleEndian.AppendUint32(loc, 1)
	eocd := bytes.Clone(file[end:])
	binary.LittleEndian.PutUint16(eocd[8:], 0xffff)
	binary.LittleEndian.PutUint16(eocd[10:], 0xffff)
	out = append(append(append(out, z64...), loc...), eocd...)
	_ = entries

	_, err := ParseTorchZip(bytes.NewReader(out), int64(len(out)))
	require.ErrorContains(t, err, "entries (limit 1048576)")

	// The same tail with the true count parses: zip64 end records are read.
	binary.LittleEndian.PutUint64(out[end+24:], uint64(entries))
	binary.LittleEndian.PutUint64(out[end+32:], uint64(entries))
	tz, err := ParseTorchZip(bytes.NewReader(out), int64(len(out)))
	require.NoError(t, err)
	assert.Len(t, tz.Records, int(entries))
}

// TestPickleReaderOpcodes runs the symbolic reader over pickles Python
// wrote at every protocol (see testdata/torch/README.md for how they were
// made) and over hand-written edge cases.
func TestPickleReaderEdgeCases(t *testing.T) {
	tests := []struct {
		name   string
		pickle string
		err    string
	}{
		{"protocol 0 text opcodes", "(lp0\nI1\naI01\naL12345678901234567890L\naF1.5\naS'abc'\naVxyz\nag0\na.", ""},
		{"memo get of a missing key", "\x80\x02h\x05.", "never stored"},
		{"stack underflow", "\x80\x02R.", "stack underflow"},
		{"mark misuse", "\x80\x02(\x85.", "unexpected mark"},
		{"odd setitems", "\x80\x02}(K\x01u.", "odd number"},
		{"negative length", "\x80\x02X\xff\xff\xff\xff.", "negative length"},
		{"length past the end", "\x80\x02X\x00\x00\x00\x10abc.", "past the end"},
		{"future protocol", "\x80\x06N.", "unsupported protocol"},
		{"extension codes", "\x80\x02\x82\x01.", "extension registry"},
		{"out-of-band buffer", "\x80\x05\x97.", "out-of-band"},
		{"empty", "", "no STOP"},
		{"only a mark", "(.", "unexpected mark"},
		{"long1 big and small", "\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01\x8a\x02\xff\x7f\x86.", ""},
		{"stack global of non-strings", "\x80\x04K\x01K\x02\x93.", "non-strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newPickleReader([]byte(tt.pickle)).run()
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.err)
			require.ErrorIs(t, err, errPickle)
		})
	}
}

func TestLongFromBytes(t *testing.T) {
	tests := []struct {
		in   []byte
		want any
	}{
		{nil, int64(0)},
		{[]byte{0xff}, int64(-1)},
		{[]byte{0x7f}, int64(127)},
		{[]byte{0x80, 0x00}, int64(128)},
		{[]byte{0x00, 0x80}, int64(-32768)},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, int64(1<<63 - 1)},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00}, int64(1<<63 - 1)},
		{[]byte{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00}, pyBigInt{}},
		{[]byte{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0xff}, int64(-1 << 63)},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 0, 1}, pyBigInt{}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, longFromBytes(tt.in), "% x", tt.in)
	}
}

// heapAllocated returns the bytes f allocates: the least of up to three runs
// when one is over limit, since the counter is process-wide and the fuzzing
// engine allocates concurrently (f must be deterministic).
func heapAllocated(limit uint64, f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		// runtime/metrics reads the counter without stopping the world
		// (ReadMemStats does), which keeps fuzzing fast.
		sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
		metrics.Read(sample)
		before := sample[0].Value.Uint64()
		f()
		metrics.Read(sample)
		least = min(least, sample[0].Value.Uint64()-before)
		if least <= limit {
			break
		}
	}
	return least
}

// Memory bound of the parsers: allocations are at most a small multiple of
// the input size plus a constant (the pickle reader's worst case,
// pickleAllocPerByte, dominates).
const (
	allocPerInputByte = pickleAllocPerByte
	allocConstant     = 256 << 10
)

func FuzzParseTorchZip(f *testing.F) {
	for _, name := range []string{"state_dict.pt", "optimizer.pt", "buffer.bin", "legacy.pt"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "torch", name))
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add(buildZip(f, validTorchRecords()...))
	f.Add([]byte("PK\x03\x04"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var tz *TorchZip
		var err error
		limit := uint64(allocPerInputByte*len(data) + allocConstant)
		allocated := heapAllocated(limit, func() {
			tz, err = ParseTorchZip(bytes.NewReader(data), int64(len(data)))
		})
		require.LessOrEqual(t, allocated, limit,
			"allocated %d bytes for %d bytes of input", allocated, len(data))
		if err != nil {
			require.Nil(t, tz)
			return
		}
		// Accepted: storages are stored records inside the file, and with
		// the metadata extents they tile it.
		checkTiling(t, tz, 0, int64(len(data)))
		records := map[string]ZipRecord{}
		for _, rec := range tz.Records {
			records[rec.Name] = rec
			require.True(t, strings.HasPrefix(rec.Name, tz.Prefix+"/"))
		}
		for _, s := range tz.Storages {
			rec := records[s.Record]
			require.Equal(t, rec.DataOffset, s.DataOffset)
			require.Equal(t, s.Dtype.ScalarSize(), s.ElemSize)
		}
	})
}
