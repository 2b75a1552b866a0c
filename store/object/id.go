// Package object is the stored form of a ckpt registry's content
// (docs/format.md, section 4): IDs (the SHA-256 of an object's decoded
// content), the keys of blobs and manifests, the 16-byte envelope, its
// codecs (raw, zstd, planes), and the limits that bound what a reader
// holds of one object. It does no I/O beyond reading one object from an
// io.Reader: the engine (package store) decides where objects come from.
package object

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// ID names a blob or a manifest: the SHA-256 of its decoded content.
type ID [sha256.Size]byte

// Hash returns the ID of data.
func Hash(data []byte) ID { return sha256.Sum256(data) }

// String returns the lowercase hex form used in keys and manifests.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero value.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses the 64-digit lowercase hex form.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("invalid id %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("invalid id %q: %w", s, err)
	}
	if id.String() != s {
		return id, fmt.Errorf("invalid id %q: not lowercase hex", s)
	}
	return id, nil
}

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// BlobKey is the object key of a blob.
func BlobKey(id ID) string { s := id.String(); return "blobs/" + s[:2] + "/" + s }

// ManifestKey is the object key of a manifest.
func ManifestKey(id ID) string { s := id.String(); return "manifests/" + s[:2] + "/" + s }
