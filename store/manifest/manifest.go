// Package manifest is the description of one folder in a ckpt registry
// (docs/format.md, section 6): its files, their chunks, the tensors of its
// weights files (safetensors, torch.save zips, GGUF), their digests, and the structural rules a reader checks before
// it trusts a manifest (Validate, CheckRelPath). A manifest names no
// checkpoint and no time, so identical folders have identical manifests.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/object"
)

// Manifest schema versions. A writer writes the lowest version that
// describes a folder (MinVersion), so that older readers, which refuse a
// version they do not know, read every manifest they could understand.
const (
	// Version1: files, chunks and safetensors tensor tables.
	Version1 = 1
	// Version2 adds File.Tensors, the tensor table of torch.save zip and
	// GGUF weights.
	Version2 = 2
	// Version is the newest version this code reads and writes.
	Version = Version2
)

// Tensor table formats (TensorTable.Format).
const (
	// FormatTorchZip: a torch.save zip archive. Its tensors are its
	// storages (archive/data/<key>), named "data/<key>": which parameter
	// uses which storage is in the pickle, which ckpt does not read for
	// names. Dtype is torch's name ("float32"), "" when the pickle does
	// not tell it; Shape is null.
	FormatTorchZip = "torch-zip"
	// FormatGGUF: a GGUF file. Tensors are named as in the file; Dtype is
	// the ggml type's name ("F32", "Q4_K"); Shape is the dims in the
	// file's order (fastest-varying first).
	FormatGGUF = "gguf"
)

// Manifest describes the content of one checkpoint or model folder. It is
// immutable and stored content-addressed: its ID is the SHA-256 of its JSON
// encoding, so identical folders have identical manifests wherever and
// whenever they are pushed.
type Manifest struct {
	Version int    `json:"version"`
	Files   []File `json:"files"` // sorted by Path
}

// File is one regular file of a manifest.
type File struct {
	Path string `json:"path"` // slash-separated, relative, no "." or ".." segments
	Size int64  `json:"size"`
	Mode uint32 `json:"mode"` // permission bits (e.g. 420 = 0644)
	Role string `json:"role"` // layout.Role
	// Digest identifies the content: "sha256:<hex>" of the file when it is a
	// single chunk (the same id the Hugging Face Hub gives LFS files), else
	// "chunks-sha256:<hex>" of the concatenated 32-byte chunk IDs.
	Digest      string           `json:"digest"`
	Chunks      []Chunk          `json:"chunks"` // contiguous, in file order, covering [0, Size)
	Safetensors *SafetensorsInfo `json:"safetensors,omitempty"`
	// Tensors is the tensor table of torch.save zip and GGUF weights
	// (manifest version 2 and later).
	Tensors *TensorTable `json:"tensors,omitempty"`
}

// Chunk is a byte range of a file stored as one blob.
type Chunk struct {
	ID     object.ID `json:"id"`
	Offset int64     `json:"offset"`
	Size   int64     `json:"size"`
}

// SafetensorsInfo is the parsed header of a safetensors file, kept so that
// diff and dedupe work from metadata alone.
type SafetensorsInfo struct {
	DataOffset int64             `json:"data_offset"` // 8 + header length; tensor offsets are relative to it
	Metadata   map[string]string `json:"metadata,omitempty"`
	Tensors    []Tensor          `json:"tensors"` // sorted by Begin
}

// TensorTable is where the tensors of a weights file other than
// safetensors lie, kept so that diff works from metadata alone.
type TensorTable struct {
	Format string `json:"format"` // FormatTorchZip or FormatGGUF
	// BigEndian: the file stores its numbers big-endian (a torch.save
	// byteorder record "big", a big-endian GGUF file).
	BigEndian bool `json:"big_endian,omitempty"`
	// Tensors are sorted by Begin; Begin and End are offsets in the file.
	Tensors []Tensor `json:"tensors"`
}

// Tensor is one tensor of a safetensors file or a tensor table.
type Tensor struct {
	Name  string  `json:"name"`
	Dtype string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	Begin int64   `json:"begin"`
	End   int64   `json:"end"`
	// Digest identifies the tensor's bytes, with the same two forms as
	// File.Digest: a tensor stored as exactly one chunk, or grouped with
	// other small tensors, has "sha256:<hex>" of its bytes; a tensor split
	// into several chunks has "chunks-sha256:<hex>" of their IDs.
	Digest string `json:"digest"`
}

// SHA256Digest is the digest of content stored as the one chunk id (or of
// any bytes that hash to id): "sha256:<hex>".
func SHA256Digest(id object.ID) string { return "sha256:" + id.String() }

// ChunksDigest is the digest of content stored as several chunks:
// "chunks-sha256:<hex>" of their concatenated 32-byte IDs.
func ChunksDigest(chunks []Chunk) string {
	h := sha256.New()
	for _, c := range chunks {
		h.Write(c.ID[:])
	}
	return "chunks-sha256:" + fmt.Sprintf("%x", h.Sum(nil))
}

// Encode returns the canonical JSON of m and its ID.
func (m *Manifest) Encode() ([]byte, object.ID, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, object.ID{}, fmt.Errorf("encode manifest: %w", err)
	}
	if len(data) > object.MaxManifestContent {
		return nil, object.ID{}, fmt.Errorf("encode manifest: %d bytes, over the limit of %d that readers accept", len(data), object.MaxManifestContent)
	}
	return data, object.Hash(data), nil
}

// Decode parses and validates manifest JSON.
func Decode(data []byte) (*Manifest, error) {
	if len(data) > object.MaxManifestContent {
		return nil, fmt.Errorf("manifest: %d bytes, over the limit %d", len(data), object.MaxManifestContent)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		// A newer ckpt's manifest may have fields this one does not
		// know: say so rather than name the field.
		var v struct {
			Version int `json:"version"`
		}
		if json.Unmarshal(data, &v) == nil && v.Version > Version {
			return nil, versionError(v.Version)
		}
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the structural rules a reader relies on: safe unique
// paths, contiguous chunks that cover each file, tensors inside their file.
func (m *Manifest) Validate() error {
	if m.Version < Version1 || m.Version > Version {
		return versionError(m.Version)
	}
	seen := make(map[string]bool, len(m.Files))
	for i := range m.Files {
		f := &m.Files[i]
		if err := CheckRelPath(f.Path); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		if seen[f.Path] {
			return fmt.Errorf("manifest: file %q listed twice", f.Path)
		}
		seen[f.Path] = true
		if f.Mode&^uint32(fs.ModePerm) != 0 {
			return fmt.Errorf("manifest: file %q: mode %o has bits beyond permissions", f.Path, f.Mode)
		}
		if !layout.Role(f.Role).Valid() {
			return fmt.Errorf("manifest: file %q: unknown role %q", f.Path, f.Role)
		}
		var off int64
		for _, c := range f.Chunks {
			if c.Offset != off || c.Size <= 0 || c.Size > object.MaxBlobContent {
				return fmt.Errorf("manifest: file %q: chunk %s at offset %d size %d does not follow offset %d", f.Path, c.ID, c.Offset, c.Size, off)
			}
			off += c.Size
		}
		if off != f.Size {
			return fmt.Errorf("manifest: file %q: chunks cover %d bytes, file has %d", f.Path, off, f.Size)
		}
		if st := f.Safetensors; st != nil {
			for _, t := range st.Tensors {
				if t.Begin < 0 || t.End < t.Begin || st.DataOffset+t.End > f.Size {
					return fmt.Errorf("manifest: file %q: tensor %q [%d, %d) outside the file", f.Path, t.Name, t.Begin, t.End)
				}
			}
		}
		if tt := f.Tensors; tt != nil {
			if m.Version < Version2 {
				return fmt.Errorf("manifest: file %q: a tensor table needs manifest version %d, not %d", f.Path, Version2, m.Version)
			}
			if f.Safetensors != nil {
				return fmt.Errorf("manifest: file %q has both a safetensors header and a tensor table", f.Path)
			}
			if tt.Format == "" {
				return fmt.Errorf("manifest: file %q: tensor table without a format", f.Path)
			}
			for _, t := range tt.Tensors {
				if t.Begin < 0 || t.End < t.Begin || t.End > f.Size {
					return fmt.Errorf("manifest: file %q: tensor %q [%d, %d) outside the file", f.Path, t.Name, t.Begin, t.End)
				}
			}
		}
	}
	return nil
}

// ErrVersion is matched by the error of Decode for a manifest of a
// version this code does not read (one written by a newer ckpt).
var ErrVersion = errors.New("manifest version not supported")

func versionError(v int) error {
	if v > Version {
		return fmt.Errorf("%w: manifest version %d is newer than this ckpt reads (%d to %d): upgrade ckpt", ErrVersion, v, Version1, Version)
	}
	return fmt.Errorf("%w: manifest version %d (this ckpt reads %d to %d)", ErrVersion, v, Version1, Version)
}

// MinVersion returns the lowest version that describes m's files: Version2
// if a file has a tensor table, else Version1.
func (m *Manifest) MinVersion() int {
	for i := range m.Files {
		if m.Files[i].Tensors != nil {
			return Version2
		}
	}
	return Version1
}

// CheckRelPath rejects paths that could land outside a target folder:
// absolute, empty, with "." or ".." segments, backslashes or NUL bytes.
func CheckRelPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute", p)
	case strings.ContainsAny(p, "\\\x00"):
		return fmt.Errorf("path %q contains a backslash or NUL", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." || seg == "." {
			return fmt.Errorf("path %q contains %q", p, seg)
		}
	}
	return nil
}

// File returns the file at p, or nil.
func (m *Manifest) File(p string) *File {
	i := sort.Search(len(m.Files), func(i int) bool { return m.Files[i].Path >= p })
	if i < len(m.Files) && m.Files[i].Path == p {
		return &m.Files[i]
	}
	return nil
}

// BlobIDs returns every blob the manifest references, without duplicates.
func (m *Manifest) BlobIDs() []object.ID {
	seen := make(map[object.ID]bool)
	var ids []object.ID
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			if !seen[c.ID] {
				seen[c.ID] = true
				ids = append(ids, c.ID)
			}
		}
	}
	return ids
}
