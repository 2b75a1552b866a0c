package store

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// Base chains (docs/format.md, section 7). A checkpoint pushed with a base
// records the base's name, version and manifest. For each inheritable role
// (layout.Role.Inheritable: config, generation config, tokenizer) it has no
// file of, it takes every file of that role from the nearest base that has
// one; whole roles only, so a checkpoint with any tokenizer file of its own
// keeps its own tokenizer, never a mix. A base's own base is found through
// the base's version ref. Pull, diff, show and verify all resolve chains
// here, with one rule for where a chain stops and one loop check.

// SourcedFile is a file of a checkpoint with the checkpoint it comes from.
type SourcedFile struct {
	manifest.File
	// From is NAME@VERSION of the checkpoint itself, or of the base the
	// file is inherited from.
	From string
	// Inherited is set for a file that comes from a base.
	Inherited bool
}

// Chain is a checkpoint with its base chain resolved.
type Chain struct {
	Record refs.Record
	// Bases are the bases walked, nearest first. Each base's manifest was
	// read, whether it gave files or not.
	Bases []refs.BaseRef
	// Files are the checkpoint's own files and those it inherits, sorted by
	// path: what a full pull writes (a default pull writes the runnable
	// ones).
	Files []SourcedFile
}

// Manifest returns the chain's files as one manifest, as a full pull's
// folder would be recorded.
func (c *Chain) Manifest() *manifest.Manifest {
	m := &manifest.Manifest{Version: manifest.Version, Files: make([]manifest.File, len(c.Files))}
	for i, f := range c.Files {
		m.Files[i] = f.File
	}
	return m
}

// ResolveChain reads rec's manifest and those of its bases and returns
// every file the checkpoint has or inherits, with where each comes from.
// Manifests may come from the per-machine cache (checked against their
// ID); version refs come from the registry.
func (r *Registry) ResolveChain(ctx context.Context, rec refs.Record) (*Chain, error) {
	bases, err := walkBases(ctx, rec, r.readRecord)
	if err != nil {
		return nil, err
	}
	own, err := r.Manifest(ctx, rec.Manifest)
	if err != nil {
		return nil, err
	}
	manifests := make([]*manifest.Manifest, len(bases))
	for i, base := range bases {
		if manifests[i], err = r.Manifest(ctx, base.Manifest); err != nil {
			return nil, fmt.Errorf("base %s: %w", &base, err)
		}
	}
	return &Chain{Record: rec, Bases: bases, Files: inherit(rec, own, bases, manifests)}, nil
}

// recordLookup reads NAME@VERSION's version record; a missing one is an
// error wrapping backend.ErrNotFound.
type recordLookup func(ctx context.Context, name, version string) (refs.Record, error)

// walkBases returns rec's bases, nearest first, each found through the
// version ref of the one before. The chain stops at a base whose own
// version ref is gone: the record that names the base keeps its manifest,
// which serves what it can, but nothing says what the base's own base was.
// A base whose manifest is already in the chain is a loop, and an error.
// On error it also returns the bases walked so far; the error is a
// *chainError naming the ref at fault.
func walkBases(ctx context.Context, rec refs.Record, lookup recordLookup) ([]refs.BaseRef, error) {
	visited := map[object.ID]bool{rec.Manifest: true}
	var out []refs.BaseRef
	for base := rec.Base; base != nil; {
		if visited[base.Manifest] {
			return out, &chainError{key: refs.VersionKey(rec.Name, rec.Version),
				err: fmt.Errorf("base chain of %s@%s loops at %s", rec.Name, rec.Version, base)}
		}
		visited[base.Manifest] = true
		out = append(out, *base)
		next, err := lookup(ctx, base.Name, base.Version)
		if errors.Is(err, backend.ErrNotFound) {
			break
		}
		if err != nil {
			return out, &chainError{key: refs.VersionKey(base.Name, base.Version), err: fmt.Errorf("base %s: %w", base, err)}
		}
		base = next.Base
	}
	return out, nil
}

// chainError is a base chain that cannot be walked. key is the version ref
// at fault: the checkpoint's own for a loop, else the base's that could not
// be read.
type chainError struct {
	key string
	err error
}

func (e *chainError) Error() string { return e.err.Error() }
func (e *chainError) Unwrap() error { return e.err }

// inherit returns own's files, then, for each inheritable role own has no
// file of, every file of that role (at a path not taken) from the nearest
// base manifest that has one; sorted by path.
func inherit(rec refs.Record, own *manifest.Manifest, bases []refs.BaseRef, manifests []*manifest.Manifest) []SourcedFile {
	from := rec.Name + "@" + rec.Version
	have := map[layout.Role]bool{}
	paths := map[string]bool{}
	out := make([]SourcedFile, 0, len(own.Files))
	for _, f := range own.Files {
		out = append(out, SourcedFile{File: f, From: from})
		have[layout.Role(f.Role)] = true
		paths[f.Path] = true
	}
	for i, base := range bases {
		gained := map[layout.Role]bool{}
		for _, f := range manifests[i].Files {
			role := layout.Role(f.Role)
			if !role.Inheritable() || have[role] || paths[f.Path] {
				continue
			}
			out = append(out, SourcedFile{File: f, From: base.String(), Inherited: true})
			paths[f.Path] = true
			gained[role] = true
		}
		for role := range gained {
			have[role] = true
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
