// Package local is the registry backend for a folder on a local or shared
// file system (NFS included). Objects are files under the folder at their key;
// a write goes to a temporary file under ".tmp/" and is hard-linked into
// place, so an object appears whole or not at all, and link(2)'s refusal to
// replace an existing name makes Put create-only even between hosts.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ckptdev/ckpt/store/backend"
)

// tmpDir holds files being written; it is not an object key (keys never start with '.').
const tmpDir = ".tmp"

// DefaultTempGrace is how old a file in .tmp must be, by the file
// system's clock, before CleanTemp removes it. A Put writes its temporary
// file continuously and links it into place within seconds, so a file
// untouched for an hour was left by a writer that was killed.
const DefaultTempGrace = time.Hour

// Backend stores objects as files below Root.
type Backend struct {
	Root string
	// TempGrace overrides DefaultTempGrace (tests).
	TempGrace time.Duration
}

// New returns a backend rooted at dir, creating dir if needed.
func New(dir string) (*Backend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("registry folder %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDir), 0o755); err != nil {
		return nil, fmt.Errorf("registry folder %s: %w", abs, err)
	}
	return &Backend{Root: abs}, nil
}

// CheapStat implements backend.CheapStatter: Stat is one system call.
func (b *Backend) CheapStat() bool { return true }

// Location implements backend.Backend.
func (b *Backend) Location() string { return b.Root }

func (b *Backend) filename(key string) (string, error) {
	if err := backend.CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(b.Root, filepath.FromSlash(key)), nil
}

// Put implements backend.Backend: write to .tmp, fsync, link into place.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	name, err := b.filename(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := os.Lstat(name); err == nil {
		return fmt.Errorf("%s: %w", key, backend.ErrExists)
	}
	tmp, err := os.CreateTemp(filepath.Join(b.Root, tmpDir), "put-"+randomSuffix()+"-*")
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer func() {
		_ = tmp.Close()           // closed and checked above on success; here only cleanup
		_ = os.Remove(tmp.Name()) // linked into place or abandoned; CleanTemp removes leftovers
	}()
	n, err := io.Copy(tmp, ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if n != size {
		return fmt.Errorf("put %s: read %d bytes, want %d", key, n, size)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := tmp.Chmod(0o444); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Link(tmp.Name(), name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", key, backend.ErrExists)
		}
		return fmt.Errorf("put %s: %w", key, err)
	}
	return syncDir(dir)
}

// CleanTemp implements backend.TempCleaner: it removes the files in .tmp
// older than the grace period, judged by the file system's own clock (the
// time it gives a file created now), never the caller's. Folders and links
// are left alone: Put creates neither.
func (b *Backend) CleanTemp(ctx context.Context) error {
	grace := b.TempGrace
	if grace <= 0 {
		grace = DefaultTempGrace
	}
	dir := filepath.Join(b.Root, tmpDir)
	probe, err := os.CreateTemp(dir, "clock-*")
	if err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	fi, err := probe.Stat()
	_ = probe.Close()           // empty probe file
	_ = os.Remove(probe.Name()) // empty probe file; CleanTemp removes leftovers
	if err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	now := fi.ModTime()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) <= grace {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("clean %s: %w", dir, err)
		}
	}
	return nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	name, err := b.filename(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, notFound(key, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		_ = f.Close() // read-only
		return nil, fmt.Errorf("%s: %w", key, backend.ErrNotFound)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			_ = f.Close() // read-only
			return nil, fmt.Errorf("get %s: %w", key, err)
		}
	}
	if length < 0 {
		return f, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, length), f}, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	name, err := b.filename(key)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	fi, err := os.Stat(name)
	if err != nil {
		return backend.ObjectInfo{}, notFound(key, err)
	}
	if !fi.Mode().IsRegular() {
		return backend.ObjectInfo{}, fmt.Errorf("%s: %w", key, backend.ErrNotFound)
	}
	return backend.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements backend.Backend. It walks the deepest folder that contains
// every key with the prefix.
func (b *Backend) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	if backend.CheckKey(prefix+"x") != nil {
		return nil // no valid key starts with prefix (and "../" must not escape Root)
	}
	dirKey := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirKey = prefix[:i]
	}
	start := filepath.Join(b.Root, filepath.FromSlash(dirKey))
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing, or no such prefix
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(b.Root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != b.Root {
				return filepath.SkipDir
			}
			// Prune folders that cannot hold a key with the prefix.
			if p != start && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return fn(backend.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("list %s in %s: %w", prefix, b.Root, err)
	}
	return nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	name, err := b.filename(key)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(name); err == nil && fi.IsDir() {
		return nil // a folder of other keys, not an object
	}
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

func notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s: %w", key, backend.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", key, err)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }() // read-only
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

var (
	_ backend.Backend      = (*Backend)(nil)
	_ backend.CheapStatter = (*Backend)(nil)
	_ backend.TempCleaner  = (*Backend)(nil)
)
