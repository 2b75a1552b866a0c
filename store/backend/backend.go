// Package backend is the contract between a ckpt registry and a place that
// keeps bytes: the Backend interface (create-only put, ranged get, stat,
// list by prefix, delete), the object key grammar (CheckKey), the errors
// every backend returns (ErrNotFound, ErrExists), and the optional
// interfaces a backend may implement (CheapStatter, TempCleaner, Copier).
//
// It imports nothing but the standard library, so that a backend
// (local, s3, mem, or one of a library user's) needs nothing of the engine.
// Every backend passes the conformance suite in store/backend/backendtest.
package backend

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped, with the key) when an object does not exist.
var ErrNotFound = errors.New("object not found")

// ErrExists is returned (wrapped, with the key) by Backend.Put when the key is
// already taken. The object that was there stays intact.
var ErrExists = errors.New("object already exists")

// ErrCopyMismatch is returned (wrapped) by Copier.CopyFrom when the source
// object is not the bytes the caller described: nothing was created.
var ErrCopyMismatch = errors.New("the copied object is not the expected bytes")

// ErrCopyUnsupported is returned (wrapped) by Copier.CopyFrom when the
// storage will not copy from that source (another server, no permission to
// read it, no such operation): nothing was created, and the caller puts the
// bytes itself instead.
var ErrCopyUnsupported = errors.New("server-side copy not possible")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key  string
	Size int64
	// ModTime is the time the storage itself assigned to the object (the file
	// system's mtime, S3's LastModified). Garbage collection compares these
	// times with each other, never with the client's clock.
	ModTime time.Time
	// ETag is a validator that changes whenever the content under Key does
	// (S3's ETag); "" when the backend has none (the local folder).
	ETag string
}

// Backend is the whole contract between the registry and a place that keeps
// bytes. Keys are slash-separated relative paths made of [A-Za-z0-9._/-].
// Every backend passes the suite in store/backend/backendtest.
type Backend interface {
	// Put stores size bytes from r under key, only if key does not exist yet
	// (create-only); otherwise it returns an error wrapping ErrExists and leaves
	// the existing object untouched. A partially written object is never
	// visible under key, whatever happens to the writer.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get returns length bytes of the object from offset; length < 0 reads to
	// the end. A missing key returns an error wrapping ErrNotFound.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Stat describes key, or returns an error wrapping ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List calls fn for every object whose key starts with prefix, in no
	// particular order. An error returned by fn stops the listing and is
	// returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Location names the backend for messages (never with credentials).
	Location() string
}

// CheapStatter is an optional Backend interface. CheapStat reports that
// Stat costs no request (a local file system), so that checking many keys
// asks for each rather than listing their folders.
type CheapStatter interface {
	CheapStat() bool
}

// TempCleaner is an optional Backend interface for backends that stage
// writes in a space of their own (the local folder's .tmp/), where a
// writer killed mid-write leaves partial files. CleanTemp removes those
// older than a grace period (by the storage's clock); push and gc call it.
type TempCleaner interface {
	CleanTemp(ctx context.Context) error
}

// Copier is an optional Backend interface for storage that can create an
// object from an object of another backend on the same server without the
// bytes passing through this process (S3's server-side copy).
type Copier interface {
	// CanCopyFrom reports whether CopyFrom can work from src at all (the
	// same server): false means the caller should not try.
	CanCopyFrom(src Backend) bool
	// CopyFrom creates key, create-only like Put, with the bytes of the
	// object srcKey of src, provided they are the bytes want describes. The
	// copy is checked against want before it becomes visible under key;
	// when it does not match, nothing is created and the error wraps
	// ErrCopyMismatch. An existing key gives an error wrapping ErrExists
	// (the object there stays intact), a missing source one wrapping
	// ErrNotFound, and a copy the storage refuses one wrapping
	// ErrCopyUnsupported. Like Put, a partial copy is never visible.
	CopyFrom(ctx context.Context, src Backend, srcKey, key string, want CopyCheck) error
}

// CopyCheck describes the bytes a server-side copy must produce: their
// length and MD5, which S3 reports for every part it copies. MD5 is what the
// storage can check without the bytes leaving it; a caller that does not
// trust the source checks the content itself (the engine reads and
// verifies every object before it asks for a copy of it).
type CopyCheck struct {
	Size int64
	MD5  [16]byte
}
