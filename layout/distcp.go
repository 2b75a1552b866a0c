package layout

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
)

// A torch.distributed.checkpoint (DCP) save is a folder of rank files,
// conventionally __<rank>_<n>.distcp, and a .metadata pickle. With the
// default serialization (TORCH_SAVE), FileSystemWriter writes every item of
// a rank file with torch.save into the one stream, one after the other:
// each tensor (a contiguous CPU clone) and each non-tensor object (first
// torch.save'd into bytes by the planner) is a complete torch.save zip
// archive, whose zip offsets are relative to its own start. The metadata
// maps each item (MetadataIndex: fully qualified name, chunk offset,
// index) to a _StorageInfo(relative_path, offset, length) of its bytes.
// Items written with the SAFETENSORS serialization or through a storage
// transform (compression) are not zips; their transform_descriptors are set
// in the metadata.

// MaxDistCPItems is the most items ParseDistCP walks in one file.
const MaxDistCPItems = 1 << 20

// MaxDistCPMetadata is the largest .metadata pickle, in bytes, that
// ParseDistCPMetadata accepts.
const MaxDistCPMetadata = 64 << 20

// ErrNotDistCP is wrapped by the error of ParseDistCP for a file whose end
// is not a torch.save archive.
var ErrNotDistCP = errors.New("not a torch.distributed.checkpoint file of torch.save items")

// DistCPItem is one item of a .distcp file.
type DistCPItem struct {
	Extent
	// Zip is the item's torch.save archive, its offsets absolute in the
	// file; nil for the opaque rest at the start of a file whose items
	// could not all be read as archives.
	Zip *TorchZip
}

// DistCP is the layout of a .distcp rank file.
type DistCP struct {
	// Items are in file order and tile the file.
	Items []DistCPItem
}

// Storages returns the storages of all items, in file order.
func (d *DistCP) Storages() []TorchStorage {
	var out []TorchStorage
	for _, item := range d.Items {
		if item.Zip != nil {
			out = append(out, item.Zip.Storages...)
		}
	}
	return out
}

// ParseDistCP reads the layout of a .distcp file of size bytes without its
// .metadata: it finds the torch.save archive that ends the file (its
// central directory's offset, relative to the archive's start, tells where
// it starts), parses it like ParseTorchZip, and repeats with the archive
// that ends where that one starts, down to the start of the file. It reads
// only each archive's end records, directory, local headers and pickle.
//
// If the walk reaches bytes that do not end with a torch.save archive (an
// item written as safetensors or through a transform), it stops: those
// first bytes of the file become one item without a Zip. A file whose very
// end is no torch.save archive fails with ErrNotDistCP.
func ParseDistCP(r io.ReaderAt, size int64) (*DistCP, error) {
	var items []DistCPItem
	end := size
	for end > 0 {
		if len(items) == MaxDistCPItems {
			return nil, fmt.Errorf("distcp: more than %d items", MaxDistCPItems)
		}
		tz, start, err := torchZipEndingAt(r, end)
		if err != nil {
			if len(items) == 0 {
				return nil, fmt.Errorf("%w: the last item: %w", ErrNotDistCP, err)
			}
			var zipErr *TorchZipError
			if !errors.Is(err, ErrNotTorchZip) && !errors.As(err, &zipErr) {
				return nil, err // I/O
			}
			items = append(items, DistCPItem{Extent: Extent{Offset: 0, Size: end}})
			break
		}
		items = append(items, DistCPItem{Extent: Extent{Offset: start, Size: end - start}, Zip: tz})
		end = start
	}
	slices.Reverse(items)
	return &DistCP{Items: items}, nil
}

// torchZipEndingAt parses the torch.save archive that ends at end and
// returns it with where it starts.
func torchZipEndingAt(r io.ReaderAt, end int64) (*TorchZip, int64, error) {
	start, info, err := locateZip(r, end)
	if err != nil {
		return nil, 0, err
	}
	if start >= end {
		return nil, 0, zipError("", "archive ending at %d starts at %d", end, start)
	}
	tz, err := parseTorchZipAt(r, start, end, info)
	if err != nil {
		return nil, 0, err
	}
	return tz, start, nil
}

// DistCPStorageInfo is where the metadata says one item's bytes are.
type DistCPStorageInfo struct {
	// FQN is the item's fully qualified name in the state dict.
	FQN string
	// Index is the MetadataIndex's index, -1 when None.
	Index int64
	// RelativePath is the rank file, relative to the checkpoint folder.
	RelativePath string
	// Offset and Length are the item's bytes in that file.
	Offset, Length int64
	// Transformed: the item went through storage transforms (its
	// transform_descriptors are set), so its bytes are not a plain
	// torch.save archive.
	Transformed bool
}

// DistCPMetadata is what a .metadata file says about where items are.
type DistCPMetadata struct {
	// Items are sorted by RelativePath, then Offset.
	Items []DistCPStorageInfo
}

// Names of the classes a .metadata pickle is made of.
const (
	dcpMetadataModule   = "torch.distributed.checkpoint.metadata"
	dcpFilesystemModule = "torch.distributed.checkpoint.filesystem"
)

// ParseDistCPMetadata reads a torch.distributed.checkpoint .metadata
// pickle without executing it: the Metadata object's storage_data, which
// maps each MetadataIndex to the _StorageInfo of its bytes. It checks that
// the pickle is well formed and bounded (at most MaxDistCPMetadata bytes
// and MaxPickleValues values), that storage_data is a dict of such objects
// with the fields' types, and that offsets and lengths are not negative;
// whether the extents lie inside their files is for the caller to check
// against the files (ParseDistCP).
func ParseDistCPMetadata(data []byte) (*DistCPMetadata, error) {
	if len(data) > MaxDistCPMetadata {
		return nil, fmt.Errorf("distcp metadata: %d bytes (limit %d)", len(data), MaxDistCPMetadata)
	}
	p := newPickleReader(data)
	p.keepContainers = true
	root, err := p.run()
	if err != nil {
		return nil, fmt.Errorf("distcp metadata: %w", err)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("distcp metadata: %s", fmt.Sprintf(format, args...))
	}
	state, ok := objectState(root, dcpMetadataModule, "Metadata")
	if !ok {
		return nil, fail("the pickle is not a %s.Metadata object", dcpMetadataModule)
	}
	storageData, ok := state["storage_data"].(*pyDict)
	if !ok {
		return nil, fail("Metadata.storage_data is not a dict")
	}
	meta := &DistCPMetadata{}
	for i := 0; i+1 < len(storageData.items); i += 2 {
		index, ok := objectState(storageData.items[i], dcpMetadataModule, "MetadataIndex")
		if !ok {
			return nil, fail("storage_data key %d is not a MetadataIndex", i/2)
		}
		info, ok := objectState(storageData.items[i+1], dcpFilesystemModule, "_StorageInfo")
		if !ok {
			return nil, fail("storage_data value %d is not a _StorageInfo", i/2)
		}
		fqn, okFQN := index["fqn"].(string)
		path, okPath := info["relative_path"].(string)
		offset, okOffset := info["offset"].(int64)
		length, okLength := info["length"].(int64)
		if !okFQN || !okPath || !okOffset || !okLength || offset < 0 || length < 0 {
			return nil, fail("storage_data entry %d: want fqn str, relative_path str, offset and length non-negative ints", i/2)
		}
		item := DistCPStorageInfo{FQN: fqn, Index: -1, RelativePath: path, Offset: offset, Length: length}
		if n, ok := index["index"].(int64); ok {
			item.Index = n
		}
		if descriptors, present := info["transform_descriptors"]; present && descriptors != nil {
			item.Transformed = true
		}
		meta.Items = append(meta.Items, item)
	}
	slices.SortFunc(meta.Items, func(a, b DistCPStorageInfo) int {
		return cmp.Or(cmp.Compare(a.RelativePath, b.RelativePath), cmp.Compare(a.Offset, b.Offset))
	})
	return meta, nil
}

// objectState returns the attributes an object of class module.name was
// built with (NEWOBJ or REDUCE of the class, then BUILD with a dict, or
// with a (dict, slots dict) pair), keyed by attribute name; string keys
// only.
func objectState(v any, module, name string) (map[string]any, bool) {
	obj, ok := v.(*pyObject)
	if !ok {
		return nil, false
	}
	cls, ok := obj.callable.(*pyGlobal)
	if !ok || cls.module != module || cls.name != name {
		return nil, false
	}
	state := map[string]any{}
	add := func(d any) bool {
		dict, ok := d.(*pyDict)
		if !ok {
			return d == nil
		}
		for i := 0; i+1 < len(dict.items); i += 2 {
			if key, ok := dict.items[i].(string); ok {
				state[key] = dict.items[i+1]
			}
		}
		return true
	}
	switch s := obj.state.(type) {
	case *pyDict:
		add(s)
	case *pyTuple:
		if len(s.items) != 2 || !add(s.items[0]) || !add(s.items[1]) {
			return nil, false
		}
	case nil:
	default:
		return nil, false
	}
	return state, true
}
