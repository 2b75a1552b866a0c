package store

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/refs"
)

// putRef stores v under key with its checksum, create-only.
func putRef(ctx context.Context, b backend.Backend, key string, v any) error {
	data, err := refs.Encode(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return b.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
}

// readRef reads a ref object from the registry (never from a cache),
// refusing one larger than any ref can be. A missing ref is an error
// wrapping backend.ErrNotFound.
func readRef(ctx context.Context, b backend.Backend, key string) ([]byte, error) {
	rc, err := b.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }() // read-only
	data, err := io.ReadAll(io.LimitReader(rc, refs.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(data) > refs.MaxSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", key, refs.ErrCorrupt, refs.MaxSize)
	}
	return data, nil
}

// readRecord reads NAME@VERSION's record from the registry and verifies it.
// A missing ref is an error wrapping backend.ErrNotFound.
func (r *Registry) readRecord(ctx context.Context, name, version string) (refs.Record, error) {
	key := refs.VersionKey(name, version)
	data, err := readRef(ctx, r.backend, key)
	if err != nil {
		return refs.Record{}, err
	}
	return refs.DecodeRecord(key, data)
}

// readTag reads NAME's TAG from the registry and verifies it.
func (r *Registry) readTag(ctx context.Context, name, tag string) (refs.TagRecord, error) {
	key := refs.TagKey(name, tag)
	data, err := readRef(ctx, r.backend, key)
	if err != nil {
		return refs.TagRecord{}, err
	}
	return refs.DecodeTag(key, data)
}
