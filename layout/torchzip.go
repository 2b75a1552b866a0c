package layout

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"
)

// MaxTorchPickle is the largest data.pkl, in bytes, that ParseTorchZip
// reads into memory.
const MaxTorchPickle = 64 << 20

// maxTorchSmallRecord bounds the byteorder and version records.
const maxTorchSmallRecord = 64

var (
	// ErrNotTorchZip is wrapped by the error of ParseTorchZip for input that
	// is not a zip archive at all: callers treat the file as opaque bytes.
	ErrNotTorchZip = errors.New("not a torch.save zip archive")
	// ErrLegacyTorchSave is wrapped by the error of ParseTorchZip for a
	// file torch.save wrote in its legacy (pre-1.6, or
	// _use_new_zipfile_serialization=False) format: a bare pickle stream,
	// whose storages are not delimited by any index.
	ErrLegacyTorchSave = errors.New("legacy torch.save format (a bare pickle stream, not a zip)")
)

// TorchZipError reports a zip archive that is malformed, or a torch.save
// archive that breaks one of the format's rules. I/O failures are not
// TorchZipErrors.
type TorchZipError struct {
	// Record names the offending zip record, or is "" when the problem is
	// not about one record.
	Record string
	// Reason says what is wrong.
	Reason string
}

func (e *TorchZipError) Error() string {
	if e.Record != "" {
		return fmt.Sprintf("torch zip: record %q: %s", e.Record, e.Reason)
	}
	return "torch zip: " + e.Reason
}

// ByteOrder is the byte order a torch.save archive's byteorder record
// declares for its storages.
type ByteOrder string

const (
	// ByteOrderUnspecified: the archive has no byteorder record (older
	// torch, 1.13 among them, wrote none; such files are little-endian in
	// practice).
	ByteOrderUnspecified ByteOrder = ""
	ByteOrderLittle      ByteOrder = "little"
	ByteOrderBig         ByteOrder = "big"
)

// TorchDtype is a torch element type by its name in the torch module
// ("float32", "bfloat16", ...); "" means unknown.
type TorchDtype string

// torchDtypeInfo is a dtype's element size and the width of the scalars
// a byte-plane codec should split it into (the component of a complex
// number).
type torchDtypeInfo struct {
	size, scalar int
}

// torchDtypes are the dtypes torch.save can write, with their sizes.
var torchDtypes = map[TorchDtype]torchDtypeInfo{
	"float64": {8, 8}, "float32": {4, 4}, "float16": {2, 2}, "bfloat16": {2, 2},
	"int64": {8, 8}, "int32": {4, 4}, "int16": {2, 2}, "int8": {1, 1}, "uint8": {1, 1}, "bool": {1, 1},
	"uint16": {2, 2}, "uint32": {4, 4}, "uint64": {8, 8},
	"complex128": {16, 8}, "complex64": {8, 4}, "complex32": {4, 2},
	"qint8": {1, 1}, "quint8": {1, 1}, "qint32": {4, 4}, "quint4x2": {1, 1}, "quint2x4": {1, 1},
	"float8_e5m2": {1, 1}, "float8_e4m3fn": {1, 1}, "float8_e5m2fnuz": {1, 1}, "float8_e4m3fnuz": {1, 1},
	"float8_e8m0fnu": {1, 1}, "float4_e2m1fn_x2": {1, 1},
	"bits8": {1, 1}, "bits16": {2, 2}, "bits1x8": {1, 1}, "bits2x4": {1, 1}, "bits4x2": {1, 1},
}

// torchStorageTypes maps the legacy typed-storage classes torch.save
// names in persistent ids (torch.FloatStorage, ...) to their dtype.
var torchStorageTypes = map[string]TorchDtype{
	"DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
	"BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
	"ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
	"ComplexDoubleStorage": "complex128", "ComplexFloatStorage": "complex64",
	"QInt8Storage": "qint8", "QUInt8Storage": "quint8", "QInt32Storage": "qint32",
	"QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
}

// Size returns the size of one element in bytes, 0 if d is unknown.
func (d TorchDtype) Size() int { return torchDtypes[d].size }

// ScalarSize returns the width in bytes of the scalars an element is made
// of: the element size, except for complex dtypes, whose real and
// imaginary parts are scalars of half the size. 0 if d is unknown.
func (d TorchDtype) ScalarSize() int { return torchDtypes[d].scalar }

// Extent is a byte range [Offset, Offset+Size) of a file.
type Extent struct {
	Offset, Size int64
}

// End returns Offset + Size.
func (e Extent) End() int64 { return e.Offset + e.Size }

// TorchStorage is one tensor storage of a torch.save archive: the bytes of
// its record archive/data/<Key>.
type TorchStorage struct {
	// Key is the storage's key in the pickle and its record name suffix.
	Key string
	// Record is the full zip record name, e.g. "archive/data/0".
	Record string
	// DataOffset is where the storage's bytes start in the file; Size is
	// their length.
	DataOffset, Size int64
	// Dtype is the element type the pickle gives the storage, "" when the
	// pickle does not tell it cheaply (an untyped storage no tensor
	// rebuild names a dtype for, or conflicting uses).
	Dtype TorchDtype
	// ElemSize is Dtype.ScalarSize(): the element width to split the
	// bytes into planes by, 0 when unknown.
	ElemSize int
}

// Extent returns the storage's bytes as an extent.
func (s TorchStorage) Extent() Extent { return Extent{Offset: s.DataOffset, Size: s.Size} }

// TorchZip is the layout of a torch.save zip archive (PyTorch >= 1.6).
type TorchZip struct {
	// Prefix is the folder all records sit in ("archive", or the name of
	// the file torch.save was given).
	Prefix string
	// ByteOrder is what the byteorder record says.
	ByteOrder ByteOrder
	// Version is the version record, trimmed ("" if absent).
	Version string
	// Pickle is the data.pkl record.
	Pickle ZipRecord
	// Records are all the zip records, in file order.
	Records []ZipRecord
	// Storages are the data/<key> records, in file order.
	Storages []TorchStorage
	// Metadata are the maximal runs of the file outside every storage's
	// bytes (local headers, the pickle and small records, padding, the
	// central directory), in file order. Storages and Metadata together
	// tile the archive exactly.
	Metadata []Extent
}

// ParseTorchZip reads the layout of a torch.save zip archive of size bytes:
// the zip central directory, every record's local header (for its data
// offset), the byteorder and version records and the pickle, which it scans
// without executing anything for the storages' dtypes.
//
// It checks what the chunker relies on: the archive ends with an end
// record without a comment, starts at the start of the file, has at most
// MaxZipEntries records, none encrypted, all inside the file, before the
// central directory and not overlapping; all share one top-level folder;
// data.pkl and the storages are stored uncompressed; data.pkl is at most
// MaxTorchPickle bytes; every storage the pickle references exists, and a
// typed storage's element count times its element size is its record's
// size. It trusts the bytes of the storages themselves (it never reads
// them) and CRCs (never checked).
//
// Input that is no zip at all fails with ErrNotTorchZip, a legacy
// torch.save pickle with ErrLegacyTorchSave; a zip that breaks the rules
// above with a *TorchZipError.
func ParseTorchZip(r io.ReaderAt, size int64) (*TorchZip, error) {
	if err := sniffLegacyTorchSave(r, size); err != nil {
		return nil, err
	}
	start, info, err := locateZip(r, size)
	if err != nil {
		return nil, err
	}
	if start != 0 {
		return nil, zipError("", "the archive starts at byte %d, not at the start of the file "+
			"(a concatenation of archives, like a torch.distributed.checkpoint .distcp file?)", start)
	}
	return parseTorchZipAt(r, 0, size, info)
}

// sniffLegacyTorchSave reports files that are not zip archives: a legacy
// torch.save pickle stream, or anything else.
func sniffLegacyTorchSave(r io.ReaderAt, size int64) error {
	var head [4]byte
	if size < int64(len(head)) {
		return fmt.Errorf("%w: only %d bytes", ErrNotTorchZip, size)
	}
	if err := readFullAt(r, head[:], 0); err != nil {
		return fmt.Errorf("torch zip: reading the first bytes: %w", err)
	}
	switch {
	case bytes.Equal(head[:], []byte("PK\x03\x04")):
		return nil
	case head[0] == pkProto && head[1] <= 5:
		return ErrLegacyTorchSave
	default:
		return fmt.Errorf("%w: the file does not start with a zip local header", ErrNotTorchZip)
	}
}

// parseTorchZipAt reads the torch.save archive occupying [start, end).
func parseTorchZipAt(r io.ReaderAt, start, end int64, info zipEnd) (*TorchZip, error) {
	archive, err := parseZip(r, start, end, info)
	if err != nil {
		return nil, err
	}
	if len(archive.records) == 0 {
		return nil, zipError("", "archive has no records")
	}
	tz := &TorchZip{Records: archive.records}
	tz.Prefix, _, _ = strings.Cut(archive.records[0].Name, "/")

	var pickle *ZipRecord
	storageIndex := map[string]int{}
	for i := range archive.records {
		rec := &archive.records[i]
		prefix, rest, ok := strings.Cut(rec.Name, "/")
		if !ok || prefix != tz.Prefix || prefix == "" {
			return nil, zipError(rec.Name, "not in the archive folder %q every record must be in", tz.Prefix+"/")
		}
		switch {
		case rest == "data.pkl":
			pickle = rec
		case rest == "byteorder":
			order, err := readSmallRecord(r, rec)
			if err != nil {
				return nil, err
			}
			switch ByteOrder(order) {
			case ByteOrderLittle, ByteOrderBig:
				tz.ByteOrder = ByteOrder(order)
			default:
				return nil, zipError(rec.Name, "byte order %q is neither little nor big", order)
			}
		case rest == "version":
			version, err := readSmallRecord(r, rec)
			if err != nil {
				return nil, err
			}
			tz.Version = strings.TrimSpace(version)
		case strings.HasPrefix(rest, "data/"):
			key := strings.TrimPrefix(rest, "data/")
			if key == "" || strings.Contains(key, "/") {
				return nil, zipError(rec.Name, "storage key %q", key)
			}
			if rec.Method != zipMethodStore {
				return nil, zipError(rec.Name, "storage is compressed (method %d); torch.save stores storages uncompressed", rec.Method)
			}
			storageIndex[key] = len(tz.Storages)
			tz.Storages = append(tz.Storages, TorchStorage{Key: key, Record: rec.Name, DataOffset: rec.DataOffset, Size: rec.Size})
		}
	}
	if pickle == nil {
		return nil, zipError("", "no %s/data.pkl record", tz.Prefix)
	}
	tz.Pickle = *pickle
	if pickle.Method != zipMethodStore {
		return nil, zipError(pickle.Name, "pickle is compressed (method %d)", pickle.Method)
	}
	if pickle.Size > MaxTorchPickle {
		return nil, zipError(pickle.Name, "pickle of %d bytes (limit %d)", pickle.Size, MaxTorchPickle)
	}
	pickled := make([]byte, pickle.Size)
	if err := readFullAt(r, pickled, pickle.DataOffset); err != nil {
		return nil, fmt.Errorf("torch zip: record %q: %w", pickle.Name, err)
	}
	refs, err := scanTorchPickle(pickled)
	if err != nil {
		return nil, &TorchZipError{Record: pickle.Name, Reason: err.Error()}
	}
	for key, ref := range refs {
		i, ok := storageIndex[key]
		if !ok {
			return nil, zipError(pickle.Name, "pickle references storage %q, which has no record", key)
		}
		storage := &tz.Storages[i]
		if err := ref.check(storage); err != nil {
			return nil, err
		}
		storage.Dtype = ref.dtype
		storage.ElemSize = ref.dtype.ScalarSize()
	}
	tz.Metadata = gaps(start, end, tz.Storages)
	return tz, nil
}

// readSmallRecord returns the contents of a small stored record.
func readSmallRecord(r io.ReaderAt, rec *ZipRecord) (string, error) {
	if rec.Method != zipMethodStore {
		return "", zipError(rec.Name, "record is compressed (method %d)", rec.Method)
	}
	if rec.Size > maxTorchSmallRecord {
		return "", zipError(rec.Name, "record of %d bytes (limit %d)", rec.Size, maxTorchSmallRecord)
	}
	buf := make([]byte, rec.Size)
	if err := readFullAt(r, buf, rec.DataOffset); err != nil {
		return "", fmt.Errorf("torch zip: record %q: %w", rec.Name, err)
	}
	return string(buf), nil
}

// gaps returns the runs of [start, end) outside the storages, which are in
// file order and inside [start, end).
func gaps(start, end int64, storages []TorchStorage) []Extent {
	var out []Extent
	next := start
	for _, s := range storages {
		if s.DataOffset > next {
			out = append(out, Extent{Offset: next, Size: s.DataOffset - next})
		}
		next = max(next, s.DataOffset+s.Size)
	}
	if end > next {
		out = append(out, Extent{Offset: next, Size: end - next})
	}
	return out
}

// torchStorageRef is what the pickle says about one storage key.
type torchStorageRef struct {
	// typeName is the storage class ("FloatStorage", "UntypedStorage").
	typeName string
	// typed: typeName is a legacy typed storage, numel counts elements of
	// dtype; otherwise numel counts bytes.
	typed bool
	numel int64
	dtype TorchDtype
	// conflict: the key was seen with different types or dtypes; dtype is
	// then "".
	conflict bool
}

// check compares the pickle's element count with the record's size.
func (ref *torchStorageRef) check(s *TorchStorage) error {
	if ref.conflict {
		return nil
	}
	elemSize := int64(1)
	if ref.typed {
		elemSize = int64(ref.dtype.Size())
	}
	hi, nbytes := bits.Mul64(uint64(ref.numel), uint64(elemSize))
	if ref.numel < 0 || hi != 0 || nbytes != uint64(s.Size) {
		return zipError(s.Record, "pickle says %d elements of %s (%d bytes each), the record holds %d bytes",
			ref.numel, ref.typeName, elemSize, s.Size)
	}
	return nil
}

// The rebuild function torch.save names for tensors of the dtypes that
// have no legacy typed storage: its arguments are (storage,
// storage_offset, size, stride, requires_grad, backward_hooks, dtype[,
// metadata]).
const (
	torchUtilsModule   = "torch._utils"
	torchRebuildV3     = "_rebuild_tensor_v3"
	torchRebuildV3Args = 7
)

// scanTorchPickle reads a torch.save data.pkl and returns, by storage key,
// what its persistent ids ('storage', storage_type, key, location, numel)
// and tensor rebuilds say about each storage.
func scanTorchPickle(data []byte) (map[string]*torchStorageRef, error) {
	refs := map[string]*torchStorageRef{}
	var bad error
	p := newPickleReader(data)
	keyOf := map[*pyPersistent]string{}
	p.onPersistent = func(persistent *pyPersistent) {
		id, ok := persistent.id.(*pyTuple)
		if !ok || len(id.items) != 5 || id.items[0] != "storage" {
			return // not a storage: torch.save writes no other kind
		}
		typ, okType := id.items[1].(*pyGlobal)
		key, okKey := id.items[2].(string)
		numel, okNumel := id.items[4].(int64)
		if !okType || !okKey || !okNumel {
			if bad == nil {
				bad = p.fail("storage persistent id is not (str, class, str, str, int)")
			}
			return
		}
		ref := &torchStorageRef{typeName: typ.name, numel: numel}
		switch {
		case typ.name == "UntypedStorage" && (typ.module == "torch" || typ.module == "torch.storage"):
		case typ.module == "torch" || typ.module == "torch.cuda":
			dtype, known := torchStorageTypes[typ.name]
			ref.typed, ref.dtype = known, dtype
			if !known {
				ref.conflict = true // a storage class this reader does not know
			}
		default:
			ref.conflict = true
		}
		keyOf[persistent] = key
		if seen, ok := refs[key]; ok {
			if seen.typeName != ref.typeName || seen.numel != ref.numel || seen.dtype != ref.dtype {
				seen.conflict, seen.dtype = true, ""
			}
			return
		}
		refs[key] = ref
	}
	p.onReduce = func(obj *pyObject) {
		fn, ok := obj.callable.(*pyGlobal)
		if !ok || fn.module != torchUtilsModule || fn.name != torchRebuildV3 {
			return
		}
		args, ok := obj.args.(*pyTuple)
		if !ok || len(args.items) < torchRebuildV3Args {
			return
		}
		persistent, ok := args.items[0].(*pyPersistent)
		if !ok {
			return
		}
		ref := refs[keyOf[persistent]]
		dtypeGlobal, ok := args.items[6].(*pyGlobal)
		if ref == nil || ref.conflict || !ok || dtypeGlobal.module != "torch" {
			return
		}
		dtype := TorchDtype(dtypeGlobal.name)
		switch {
		case dtype.Size() == 0 || (ref.typed && ref.dtype != dtype):
			ref.conflict, ref.dtype = true, ""
		case ref.dtype == "" || ref.dtype == dtype:
			ref.dtype = dtype
		default:
			ref.conflict, ref.dtype = true, ""
		}
	}
	if _, err := p.run(); err != nil {
		return nil, err
	}
	if bad != nil {
		return nil, bad
	}
	for _, ref := range refs {
		if ref.conflict {
			ref.dtype = ""
		}
	}
	return refs, nil
}
