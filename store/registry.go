package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/refs"
)

// FormatKey is the object at the root of every registry.
const FormatKey = "ckpt-registry.json"

// FormatVersion is the highest registry format this code reads. Init
// writes version 1; the first delta blob raises a registry to version 2
// (DeltaFormatVersion, delta.go).
const FormatVersion = DeltaFormatVersion

// ErrNoRegistry is returned by Open when the backend holds no registry.
var ErrNoRegistry = errors.New("no ckpt registry here")

// Format is the content of the format file.
type Format struct {
	Format  string    `json:"format"` // always "ckpt-registry"
	Version int       `json:"version"`
	ID      string    `json:"id"` // random, names this registry in per-machine caches
	Created time.Time `json:"created"`
}

// Options tune a Registry handle.
type Options struct {
	// Index is the per-machine cache; nil works, only slower.
	Index *Index
	// Workers bounds parallel blob transfers (default: 2×CPUs, at least 4).
	Workers int
	// Progress receives byte counts of pushes and pulls; nil for none.
	Progress Progress
	// Cache is the per-machine content cache every pull feeds and reuses
	// (chunks of earlier pulls through Index; whole files for pull --link);
	// nil for none.
	Cache *ContentCache
	// LockStaleAfter is when an unrefreshed lock counts as abandoned
	// (default DefaultStaleAfter). Every client of a registry must agree.
	LockStaleAfter time.Duration
	// Deltas lets pushes store a tensor chunk as its difference from the
	// same tensor extent in the previous version or the base, when that is
	// smaller (delta.go). The first delta raises the registry to format
	// version 2, which older ckpt versions refuse.
	Deltas bool
	// Best is the metric NAME@best ranks by wherever this handle resolves
	// it (refs.BestRule); the zero rule leaves it to each NAME's stored
	// retention policy, else eval_loss.
	Best refs.BestRule
	// Warn is told of problems that do not fail an operation but that its
	// user should hear of, such as a lock that could not be released (it
	// then counts as abandoned once LockStaleAfter has passed); nil drops
	// them.
	Warn func(error)
}

// Progress is told how many bytes an operation will move and has moved.
type Progress interface {
	Start(label string, total int64)
	Add(n int64)
	Finish()
}

// Registry is an open registry on a Backend.
type Registry struct {
	backend backend.Backend
	format  Format
	index   *Index
	workers int
	prog    Progress
	// lockStale overrides DefaultStaleAfter (tests).
	lockStale time.Duration
	cache     *ContentCache
	best      refs.BestRule
	deltas    bool
	warn      func(error)
}

// warnf reports a problem that does not fail the operation.
func (r *Registry) warnf(format string, args ...any) {
	if r.warn != nil {
		r.warn(fmt.Errorf(format, args...))
	}
}

// defaultWorkers is the default of Options.Workers.
func defaultWorkers() int { return max(4, 2*runtime.NumCPU()) }

// Init creates a registry on b if there is none; it is idempotent. created
// reports whether this call made it.
func Init(ctx context.Context, b backend.Backend, opts Options) (r *Registry, created bool, err error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, false, err
	}
	f := Format{Format: "ckpt-registry", Version: 1, ID: hex.EncodeToString(id[:]), Created: time.Now().UTC()}
	data, _ := json.MarshalIndent(f, "", "  ")
	data = append(data, '\n')
	err = b.Put(ctx, FormatKey, bytes.NewReader(data), int64(len(data)))
	switch {
	case err == nil:
		created = true
	case errors.Is(err, backend.ErrExists):
	default:
		return nil, false, fmt.Errorf("init registry at %s: %w", b.Location(), err)
	}
	r, err = Open(ctx, b, opts)
	return r, created, err
}

// Open opens the registry on b, checking its format version.
func Open(ctx context.Context, b backend.Backend, opts Options) (*Registry, error) {
	f, err := readFormat(ctx, b)
	if errors.Is(err, backend.ErrNotFound) {
		// A raise of the format version (delta.go) was interrupted between
		// deleting the format file and creating it again: finish it.
		if up, uerr := readAll(ctx, b, upgradeKey, 1<<16); uerr == nil {
			if perr := b.Put(ctx, FormatKey, bytes.NewReader(up), int64(len(up))); perr == nil || errors.Is(perr, backend.ErrExists) {
				f, err = readFormat(ctx, b)
			}
		}
	}
	if err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w", b.Location(), ErrNoRegistry)
		}
		return nil, fmt.Errorf("open registry at %s: %w", b.Location(), err)
	}
	if f.Version > FormatVersion {
		return nil, fmt.Errorf("registry at %s has format version %d; this ckpt reads up to %d: upgrade ckpt", b.Location(), f.Version, FormatVersion)
	}
	if err := opts.Best.Validate(); err != nil {
		return nil, err
	}
	w := opts.Workers
	if w <= 0 {
		w = defaultWorkers()
	}
	return &Registry{backend: b, format: f, index: opts.Index, workers: w, prog: opts.Progress, lockStale: opts.LockStaleAfter, cache: opts.Cache, best: opts.Best, deltas: opts.Deltas, warn: opts.Warn}, nil
}

// readFormat reads and checks the format file.
func readFormat(ctx context.Context, b backend.Backend) (Format, error) {
	var f Format
	data, err := readAll(ctx, b, FormatKey, 1<<16)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(data, &f); err != nil || f.Format != "ckpt-registry" || f.ID == "" {
		return f, fmt.Errorf("%s is not a ckpt registry format file", FormatKey)
	}
	return f, nil
}

// Backend returns the registry's backend.
func (r *Registry) Backend() backend.Backend { return r.backend }

// ID returns the registry's random identity.
func (r *Registry) ID() string { return r.format.ID }

// Location names the registry for messages.
func (r *Registry) Location() string { return r.backend.Location() }

// readAll reads a whole small object, refusing ones larger than limit.
func readAll(ctx context.Context, b backend.Backend, key string, limit int64) ([]byte, error) {
	rc, err := b.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }() // read-only
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", key, limit)
	}
	return data, nil
}

// putJSON stores v as indented JSON under key, create-only.
func putJSON(ctx context.Context, b backend.Backend, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	data = append(data, '\n')
	return b.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
}

// getJSON reads a small JSON object.
func getJSON(ctx context.Context, b backend.Backend, key string, v any) error {
	data, err := readAll(ctx, b, key, 1<<20)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

func (r *Registry) progressStart(label string, total int64) {
	if r.prog != nil {
		r.prog.Start(label, total)
	}
}

func (r *Registry) progressAdd(n int64) {
	if r.prog != nil {
		r.prog.Add(n)
	}
}

func (r *Registry) progressFinish() {
	if r.prog != nil {
		r.prog.Finish()
	}
}

// randomHex is n random bytes in hex: the random part of lock, gc marker
// and build folder names.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
