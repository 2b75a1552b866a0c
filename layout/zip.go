package layout

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// Limits on the zip archives ParseTorchZip reads; every larger count or
// size is refused before anything of that size is allocated.
const (
	// MaxZipEntries is the most records a torch.save zip may hold.
	MaxZipEntries = 1 << 20
	// MaxZipDirectory is the largest central directory, in bytes, that is
	// read into memory.
	MaxZipDirectory = 64 << 20
)

// Zip record signatures and fixed sizes (PKWARE APPNOTE 4.3).
const (
	zipLocalHeaderSig   = 0x04034b50
	zipCentralHeaderSig = 0x02014b50
	zipEndSig           = 0x06054b50
	zip64EndSig         = 0x06064b50
	zip64LocatorSig     = 0x07064b50
	zipLocalHeaderLen   = 30
	zipCentralHeaderLen = 46
	zipEndLen           = 22
	zip64LocatorLen     = 20
	zip64EndLen         = 56
	zip64ExtraID        = 0x0001
	zipFlagEncrypted    = 1 << 0
	zipFlagDescriptor   = 1 << 3
	zipMethodStore      = 0
	zipSaturated16      = 0xffff
	zipSaturated32      = 0xffffffff
)

// ZipRecord is one record of a zip archive as the central directory and
// the record's local header describe it.
type ZipRecord struct {
	// Name is the record's full name, e.g. "archive/data/0".
	Name string
	// Method is the compression method; torch.save writes 0 (stored).
	Method uint16
	// HeaderOffset is where the record's local header starts in the file.
	HeaderOffset int64
	// DataOffset is where the record's (stored or compressed) bytes start.
	DataOffset int64
	// Size is the number of bytes at DataOffset (the compressed size).
	Size int64
}

// zipArchive is a zip archive occupying [Start, End) of a file.
type zipArchive struct {
	start, end int64
	// directoryOffset is where the central directory starts in the file.
	directoryOffset int64
	// records are sorted by HeaderOffset.
	records []ZipRecord
}

// zipError builds the TorchZipError of a malformed archive.
func zipError(record, format string, args ...any) error {
	return &TorchZipError{Record: record, Reason: fmt.Sprintf(format, args...)}
}

// zipEnd is what the end of a zip archive says about its central directory.
type zipEnd struct {
	entries          uint64
	directorySize    uint64
	directoryOffset  uint64 // relative to the archive's start
	directoryEndAbs  int64  // where the central directory ends in the file
	endRecordsOffset int64  // where the (zip64) end records start in the file
}

// readZipEnd reads the end-of-central-directory record that ends exactly at
// end (no archive comment: torch.save never writes one), and the zip64 end
// record when a locator precedes it.
func readZipEnd(r io.ReaderAt, end int64) (zipEnd, error) {
	if end < zipEndLen {
		return zipEnd{}, errNotZip(end)
	}
	var eocd [zipEndLen]byte
	if err := readFullAt(r, eocd[:], end-zipEndLen); err != nil {
		return zipEnd{}, fmt.Errorf("torch zip: reading the end of the central directory: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint32(eocd[0:]) != zipEndSig || le.Uint16(eocd[20:]) != 0 {
		return zipEnd{}, errNotZip(end)
	}
	if le.Uint16(eocd[4:]) != 0 || le.Uint16(eocd[6:]) != 0 {
		return zipEnd{}, zipError("", "multi-disk archives are not supported")
	}
	thisDisk, total := le.Uint16(eocd[8:]), le.Uint16(eocd[10:])
	if thisDisk != total {
		return zipEnd{}, zipError("", "end record counts %d entries on this disk but %d in total", thisDisk, total)
	}
	info := zipEnd{
		entries:          uint64(total),
		directorySize:    uint64(le.Uint32(eocd[12:])),
		directoryOffset:  uint64(le.Uint32(eocd[16:])),
		directoryEndAbs:  end - zipEndLen,
		endRecordsOffset: end - zipEndLen,
	}
	saturated := total == zipSaturated16 || info.directorySize == zipSaturated32 || info.directoryOffset == zipSaturated32

	// A zip64 locator right before the end record (torch's miniz writes
	// one even for small archives).
	if end-zipEndLen >= zip64LocatorLen+zip64EndLen {
		var loc [zip64LocatorLen]byte
		if err := readFullAt(r, loc[:], end-zipEndLen-zip64LocatorLen); err != nil {
			return zipEnd{}, fmt.Errorf("torch zip: reading the zip64 locator: %w", err)
		}
		if le.Uint32(loc[0:]) == zip64LocatorSig {
			return readZip64End(r, end, info, loc)
		}
	}
	if saturated {
		return zipEnd{}, zipError("", "end record needs zip64 but there is no zip64 locator")
	}
	return info, nil
}

// readZip64End reads the zip64 end record the locator loc points to, which
// must sit right before the locator. Fields the 32-bit end record does not
// saturate must agree with it.
func readZip64End(r io.ReaderAt, end int64, info zipEnd, loc [zip64LocatorLen]byte) (zipEnd, error) {
	le := binary.LittleEndian
	if le.Uint32(loc[4:]) != 0 || le.Uint32(loc[16:]) > 1 {
		return zipEnd{}, zipError("", "multi-disk archives are not supported")
	}
	recordAt := end - zipEndLen - zip64LocatorLen - zip64EndLen
	var rec [zip64EndLen]byte
	if err := readFullAt(r, rec[:], recordAt); err != nil {
		return zipEnd{}, fmt.Errorf("torch zip: reading the zip64 end record: %w", err)
	}
	if le.Uint32(rec[0:]) != zip64EndSig {
		return zipEnd{}, zipError("", "no zip64 end record right before the zip64 locator")
	}
	if le.Uint64(rec[4:]) != zip64EndLen-12 {
		return zipEnd{}, zipError("", "zip64 end record has an extensible data sector, which is not supported")
	}
	if le.Uint32(rec[16:]) != 0 || le.Uint32(rec[20:]) != 0 {
		return zipEnd{}, zipError("", "multi-disk archives are not supported")
	}
	entries, total := le.Uint64(rec[24:]), le.Uint64(rec[32:])
	size, offset := le.Uint64(rec[40:]), le.Uint64(rec[48:])
	if entries != total {
		return zipEnd{}, zipError("", "zip64 end record counts %d entries on this disk but %d in total", entries, total)
	}
	// The locator's own pointer must name this record, relative to the
	// archive start, which is not known yet: it is checked by the caller
	// through the directory offset (both are relative to the same start).
	locatorTarget := le.Uint64(loc[8:])
	agree := func(narrow, wide uint64, saturated uint64) bool { return narrow == saturated || narrow == wide }
	if !agree(info.entries, total, zipSaturated16) || !agree(info.directorySize, size, zipSaturated32) ||
		!agree(info.directoryOffset, offset, zipSaturated32) {
		return zipEnd{}, zipError("", "zip64 end record disagrees with the end record")
	}
	if offset > locatorTarget || locatorTarget-offset != size {
		return zipEnd{}, zipError("", "zip64 locator points to %d, not right after the central directory (%d + %d)", locatorTarget, offset, size)
	}
	return zipEnd{
		entries:          total,
		directorySize:    size,
		directoryOffset:  offset,
		directoryEndAbs:  recordAt,
		endRecordsOffset: recordAt,
	}, nil
}

// errNotZip reports a file (or section) without a zip end record at its end.
func errNotZip(end int64) error {
	return fmt.Errorf("%w: no zip end record in the last %d bytes", ErrNotTorchZip, min(end, zipEndLen))
}

// locateZip finds the start of the zip archive that ends at end: the
// central directory lies right before the end records, and its offset is
// relative to the archive's start.
func locateZip(r io.ReaderAt, end int64) (int64, zipEnd, error) {
	info, err := readZipEnd(r, end)
	if err != nil {
		return 0, zipEnd{}, err
	}
	if info.directorySize > uint64(info.directoryEndAbs) {
		return 0, zipEnd{}, zipError("", "central directory of %d bytes does not fit before its end record at %d", info.directorySize, info.directoryEndAbs)
	}
	directoryStart := info.directoryEndAbs - int64(info.directorySize)
	if info.directoryOffset > uint64(directoryStart) {
		return 0, zipEnd{}, zipError("", "central directory offset %d lies past where the directory is (%d)", info.directoryOffset, directoryStart)
	}
	return directoryStart - int64(info.directoryOffset), info, nil
}

// parseZip reads the archive occupying [start, end) of r whose end records
// are described by info (see locateZip): its central directory and every
// record's local header, checking that records lie inside the archive,
// before the central directory, and do not overlap.
func parseZip(r io.ReaderAt, start, end int64, info zipEnd) (*zipArchive, error) {
	if info.entries > MaxZipEntries {
		return nil, zipError("", "%d entries (limit %d)", info.entries, MaxZipEntries)
	}
	if info.directorySize > MaxZipDirectory {
		return nil, zipError("", "central directory of %d bytes (limit %d)", info.directorySize, MaxZipDirectory)
	}
	if info.entries*zipCentralHeaderLen > info.directorySize {
		return nil, zipError("", "central directory of %d bytes cannot hold %d entries", info.directorySize, info.entries)
	}
	directoryAbs := start + int64(info.directoryOffset)
	directory := make([]byte, info.directorySize)
	if err := readFullAt(r, directory, directoryAbs); err != nil {
		return nil, fmt.Errorf("torch zip: reading the central directory: %w", err)
	}

	records := make([]ZipRecord, 0, info.entries)
	names := make(map[string]bool, info.entries)
	le := binary.LittleEndian
	rest := directory
	for i := uint64(0); i < info.entries; i++ {
		if len(rest) < zipCentralHeaderLen || le.Uint32(rest) != zipCentralHeaderSig {
			return nil, zipError("", "central directory entry %d is malformed", i)
		}
		flags, method := le.Uint16(rest[8:]), le.Uint16(rest[10:])
		compressed, uncompressed := uint64(le.Uint32(rest[20:])), uint64(le.Uint32(rest[24:]))
		nameLen, extraLen, commentLen := int(le.Uint16(rest[28:])), int(le.Uint16(rest[30:])), int(le.Uint16(rest[32:]))
		diskStart := le.Uint16(rest[34:])
		headerOffset := uint64(le.Uint32(rest[42:]))
		if len(rest) < zipCentralHeaderLen+nameLen+extraLen+commentLen {
			return nil, zipError("", "central directory entry %d runs past the directory", i)
		}
		nameBytes := rest[zipCentralHeaderLen : zipCentralHeaderLen+nameLen]
		extra := rest[zipCentralHeaderLen+nameLen : zipCentralHeaderLen+nameLen+extraLen]
		rest = rest[zipCentralHeaderLen+nameLen+extraLen+commentLen:]
		name := string(nameBytes)
		if names[name] {
			return nil, zipError(name, "duplicate record name")
		}
		names[name] = true

		// Sizes and offset saturated in the 32-bit fields are in the zip64
		// extra field, in this order.
		if compressed == zipSaturated32 || uncompressed == zipSaturated32 || headerOffset == zipSaturated32 || diskStart == zipSaturated16 {
			z64, ok := findZipExtra(extra, zip64ExtraID)
			if !ok {
				return nil, zipError(name, "sizes need zip64 but the entry has no zip64 extra field")
			}
			for _, field := range []*uint64{&uncompressed, &compressed, &headerOffset} {
				if *field != zipSaturated32 {
					continue
				}
				if len(z64) < 8 {
					return nil, zipError(name, "zip64 extra field too short")
				}
				*field, z64 = le.Uint64(z64), z64[8:]
			}
			if diskStart == zipSaturated16 {
				if len(z64) < 4 || le.Uint32(z64) != 0 {
					return nil, zipError(name, "multi-disk archives are not supported")
				}
			}
		} else if diskStart != 0 {
			return nil, zipError(name, "multi-disk archives are not supported")
		}
		if flags&zipFlagEncrypted != 0 {
			return nil, zipError(name, "record is encrypted")
		}
		if method == zipMethodStore && compressed != uncompressed {
			return nil, zipError(name, "stored record has compressed size %d but size %d", compressed, uncompressed)
		}
		if headerOffset > info.directoryOffset || compressed > info.directoryOffset {
			return nil, zipError(name, "record at %d of %d bytes lies past the central directory at %d", headerOffset, compressed, info.directoryOffset)
		}
		records = append(records, ZipRecord{
			Name:         name,
			Method:       method,
			HeaderOffset: start + int64(headerOffset),
			Size:         int64(compressed),
		})
	}
	if len(rest) != 0 {
		return nil, zipError("", "central directory has %d bytes after its %d entries", len(rest), info.entries)
	}

	// Local headers, in file order: each must sit where the directory says,
	// name the same record, and its data must end before the next header.
	slices.SortFunc(records, func(a, b ZipRecord) int { return cmp.Compare(a.HeaderOffset, b.HeaderOffset) })
	var header [zipLocalHeaderLen]byte
	var localName []byte // reused; names are at most 64 KiB
	next := start
	for i := range records {
		rec := &records[i]
		if rec.HeaderOffset < next {
			return nil, zipError(rec.Name, "local header at %d overlaps the previous record, which ends at %d", rec.HeaderOffset, next)
		}
		if rec.HeaderOffset+zipLocalHeaderLen > directoryAbs {
			return nil, zipError(rec.Name, "local header at %d runs into the central directory at %d", rec.HeaderOffset, directoryAbs)
		}
		if err := readFullAt(r, header[:zipLocalHeaderLen], rec.HeaderOffset); err != nil {
			return nil, fmt.Errorf("torch zip: record %q: reading its local header: %w", rec.Name, err)
		}
		if le.Uint32(header[:]) != zipLocalHeaderSig {
			return nil, zipError(rec.Name, "no local header at %d", rec.HeaderOffset)
		}
		localFlags, localMethod := le.Uint16(header[6:]), le.Uint16(header[8:])
		nameLen, extraLen := int64(le.Uint16(header[26:])), int64(le.Uint16(header[28:]))
		if localMethod != rec.Method {
			return nil, zipError(rec.Name, "local header says method %d, the central directory %d", localMethod, rec.Method)
		}
		if localFlags&zipFlagEncrypted != 0 {
			return nil, zipError(rec.Name, "record is encrypted")
		}
		rec.DataOffset = rec.HeaderOffset + zipLocalHeaderLen + nameLen + extraLen
		if rec.DataOffset > directoryAbs || rec.Size > directoryAbs-rec.DataOffset {
			return nil, zipError(rec.Name, "data at %d of %d bytes runs into the central directory at %d", rec.DataOffset, rec.Size, directoryAbs)
		}
		if int64(cap(localName)) < nameLen {
			localName = make([]byte, nameLen)
		}
		localName = localName[:nameLen]
		if err := readFullAt(r, localName, rec.HeaderOffset+zipLocalHeaderLen); err != nil {
			return nil, fmt.Errorf("torch zip: record %q: reading its local header: %w", rec.Name, err)
		}
		if !bytes.Equal(localName, []byte(rec.Name)) {
			return nil, zipError(rec.Name, "local header names %q", localName)
		}
		next = rec.DataOffset + rec.Size
	}
	return &zipArchive{start: start, end: end, directoryOffset: directoryAbs, records: records}, nil
}

// findZipExtra returns the data of the extra field with the given id.
func findZipExtra(extra []byte, id uint16) ([]byte, bool) {
	for len(extra) >= 4 {
		fieldID, size := binary.LittleEndian.Uint16(extra), int(binary.LittleEndian.Uint16(extra[2:]))
		if len(extra) < 4+size {
			return nil, false
		}
		if fieldID == id {
			return extra[4 : 4+size], true
		}
		extra = extra[4+size:]
	}
	return nil, false
}
