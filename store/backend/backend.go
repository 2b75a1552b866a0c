// Package backend is the contract between a ckpt registry and a place that
// keeps bytes: the Backend interface (create-only put, ranged get, stat,
// list by prefix, delete), the object key grammar (CheckKey), the errors
// every backend returns (ErrNotFound, ErrExists), and the optional
// interfaces a backend may implement (CheapStatter, TempCleaner).
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
