package layout

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"io"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sparseFile is a virtual file of size bytes: zeros except for segments.
type sparseFile struct {
	size     int64
	segments map[int64][]byte
}

func (s *sparseFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	n := int64(len(p))
	if off+n > s.size {
		n = s.size - off
	}
	clear(p[:n])
	for at, data := range s.segments {
		lo, hi := max(at, off), min(at+int64(len(data)), off+n)
		if lo < hi {
			copy(p[lo-off:hi-off], data[lo-at:hi-at])
		}
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// zip64Record is one record of a hand-built zip64 archive.
type zip64Record struct {
	name   string
	offset int64  // of the local header
	data   []byte // nil: size zeros
	size   int64
}

// buildZip64 lays out records as torch's miniz does for archives past
// 4 GiB: local headers with a data descriptor flag and zero sizes, the
// 64-byte "FB" padding, zip64 data descriptors, central entries whose
// saturated fields are in zip64 extra fields, and zip64 end records.
func buildZip64(t *testing.T, records []zip64Record) *sparseFile {
	t.Helper()
	le := binary.LittleEndian
	file := &sparseFile{segments: map[int64][]byte{}}
	var central []byte
	var end int64
	for i := range records {
		rec := &records[i]
		if rec.data != nil {
			rec.size = int64(len(rec.data))
		}
		require.GreaterOrEqual(t, rec.offset, end, "records in order")
		start := rec.offset + zipLocalHeaderLen + int64(len(rec.name)) + 4
		pad := (64 - start%64) % 64
		extra := append([]byte{'F', 'B', byte(pad), byte(pad >> 8)}, bytes.Repeat([]byte{'Z'}, int(pad))...)
		local := le.AppendUint32(nil, zipLocalHeaderSig)
		local = le.AppendUint16(local, 45)
		local = le.AppendUint16(local, zipFlagDescriptor)
		local = le.AppendUint16(local, 0) // stored
		local = le.AppendUint32(local, 0) // time, date
		local = le.AppendUint32(local, 0) // crc (in the descriptor)
		local = le.AppendUint64(local, 0) // sizes (in the descriptor)
		local = le.AppendUint16(local, uint16(len(rec.name)))
		local = le.AppendUint16(local, uint16(len(extra)))
		local = append(append(local, rec.name...), extra...)
		file.segments[rec.offset] = local
		dataAt := rec.offset + int64(len(local))
		if rec.data != nil {
			file.segments[dataAt] = rec.data
		}
		desc := le.AppendUint32(nil, 0x08074b50)
		desc = le.AppendUint32(desc, 0)
		desc = le.AppendUint64(desc, uint64(rec.size))
		desc = le.AppendUint64(desc, uint64(rec.size))
		file.segments[dataAt+rec.size] = desc
		end = dataAt + rec.size + int64(len(desc))

		var z64 []byte
		size32, offset32 := uint32(rec.size), uint32(rec.offset)
		if rec.size >= zipSaturated32 {
			size32 = zipSaturated32
			z64 = le.AppendUint64(le.AppendUint64(z64, uint64(rec.size)), uint64(rec.size))
		}
		if rec.offset >= zipSaturated32 {
			offset32 = zipSaturated32
			z64 = le.AppendUint64(z64, uint64(rec.offset))
		}
		var cextra []byte
		if z64 != nil {
			cextra = append(le.AppendUint16(le.AppendUint16(nil, zip64ExtraID), uint16(len(z64))), z64...)
		}
		c := le.AppendUint32(nil, zipCentralHeaderSig)
		c = le.AppendUint16(c, 45)
		c = le.AppendUint16(c, 45)
		c = le.AppendUint16(c, zipFlagDescriptor)
		c = le.AppendUint16(c, 0)
		c = le.AppendUint32(c, 0)
		c = le.AppendUint32(c, 0) // crc
		c = le.AppendUint32(c, size32)
		c = le.AppendUint32(c, size32)
		c = le.AppendUint16(c, uint16(len(rec.name)))
		c = le.AppendUint16(c, uint16(len(cextra)))
		c = le.AppendUint16(c, 0) // comment
		c = le.AppendUint16(c, 0) // disk
		c = le.AppendUint16(c, 0)
		c = le.AppendUint32(c, 0)
		c = le.AppendUint32(c, offset32)
		central = append(append(append(central, c...), rec.name...), cextra...)
	}
	cdAt := end
	file.segments[cdAt] = central
	z64At := cdAt + int64(len(central))
	tail := le.AppendUint32(nil, zip64EndSig)
	tail = le.AppendUint64(tail, zip64EndLen-12)
	tail = le.AppendUint16(tail, 45)
	tail = le.AppendUint16(tail, 45)
	tail = le.AppendUint64(tail, 0) // disks
	tail = le.AppendUint64(tail, uint64(len(records)))
	tail = le.AppendUint64(tail, uint64(len(records)))
	tail = le.AppendUint64(tail, uint64(len(central)))
	tail = le.AppendUint64(tail, uint64(cdAt))
	tail = le.AppendUint32(tail, zip64LocatorSig)
	tail = le.AppendUint32(tail, 0)
	tail = le.AppendUint64(tail, uint64(z64At))
	tail = le.AppendUint32(tail, 1)
	tail = le.AppendUint32(tail, zipEndSig)
	tail = le.AppendUint32(tail, 0)
	tail = le.AppendUint16(tail, uint16(len(records)))
	tail = le.AppendUint16(tail, uint16(len(records)))
	tail = le.AppendUint32(tail, uint32(len(central)))
	tail = le.AppendUint32(tail, zipSaturated32)
	tail = le.AppendUint16(tail, 0)
	file.segments[z64At] = tail
	file.size = z64At + int64(len(tail))
	return file
}

// TestParseTorchZip64: a checkpoint past 4 GiB, as torch writes it: a
// 5 GiB storage whose sizes and a record past 4 GiB whose offset only the
// zip64 extra fields hold. Offsets agree with archive/zip's.
func TestParseTorchZip64(t *testing.T) {
	const big = 5 << 30
	pickle := torchPickle(testTensor{name: "w", storageType: "FloatStorage", key: "0", numel: big / 4})
	records := []zip64Record{
		{name: "model/data.pkl", offset: 0, data: pickle},
		{name: "model/data/0", offset: 512, size: big},
		{name: "model/version", offset: 512 + 128 + big + 24 + 1000, data: []byte("3\n")},
	}
	file := buildZip64(t, records)
	tz, err := ParseTorchZip(file, file.size)
	require.NoError(t, err)
	assert.Equal(t, "3", tz.Version)
	require.Len(t, tz.Storages, 1)
	s := tz.Storages[0]
	assert.Equal(t, int64(big), s.Size)
	assert.Equal(t, TorchDtype("float32"), s.Dtype)
	assert.Zero(t, s.DataOffset%64)
	checkTiling(t, tz, 0, file.size)

	archive, err := zip.NewReader(file, file.size)
	require.NoError(t, err)
	got := map[string]int64{}
	for _, rec := range tz.Records {
		got[rec.Name] = rec.DataOffset
	}
	names := make([]string, 0, len(archive.File))
	for _, f := range archive.File {
		off, err := f.DataOffset()
		require.NoError(t, err)
		assert.Equal(t, off, got[f.Name], f.Name)
		assert.Equal(t, int64(f.CompressedSize64), map[string]int64{"model/data.pkl": int64(len(pickle)), "model/data/0": big, "model/version": 2}[f.Name])
		names = append(names, f.Name)
	}
	sort.Strings(names)
	assert.Equal(t, []string{"model/data.pkl", "model/data/0", "model/version"}, names)
	assert.Greater(t, got["model/version"], int64(1)<<32)
}
