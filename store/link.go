package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// FileCache keeps whole decoded files on local disk, read-only, named by
// their manifest digest, so that `pull --link` can materialize a folder by
// reflinking or hard-linking them instead of copying. Blobs cannot be linked
// directly: a weights file is many chunks, and most are compressed. Entries
// are verified chunk by chunk when they are built, and made read-only so
// that a hard link in a pulled folder cannot be written through by accident.
type FileCache struct{ c *diskCache }

// OpenFileCache uses dir (created if needed) with a cap of maxBytes.
func OpenFileCache(dir string, maxBytes int64) (*FileCache, error) {
	c, err := newDiskCache(dir, maxBytes)
	if err != nil {
		return nil, err
	}
	return &FileCache{c}, nil
}

// fileKey names a file's decoded content: its digest and size.
func fileKey(f *File) ID {
	return sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d", f.Digest, f.Size)))
}

// LinkMethod says how a pulled file was materialized.
type LinkMethod string

const (
	LinkReflink  LinkMethod = "reflink"  // copy-on-write clone: the file is independent of the cache
	LinkHardlink LinkMethod = "hardlink" // read-only hard link to the cache entry
	LinkCopy     LinkMethod = "copy"     // a plain copy (different file systems)
)

// ensureCached builds the cache entries of files that lack one, fetching
// and verifying their chunks, and returns each file's cache path.
func (r *Registry) ensureCached(ctx context.Context, fc *FileCache, files []sourcedFile) ([]string, error) {
	paths := make([]string, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, r.workers/2))
	for i := range files {
		f := &files[i]
		key := fileKey(&f.File).String()
		paths[i] = fc.c.path(key)
		if fi, err := os.Stat(paths[i]); err == nil && fi.Size() == f.Size {
			fc.c.touch(paths[i])
			continue
		}
		g.Go(func() error {
			tmp, err := fc.c.createTemp(key)
			if err != nil {
				return err
			}
			name := tmp.Name()
			err = r.writeChunks(gctx, tmp, f)
			if err == nil {
				err = tmp.Chmod(0o444)
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(name)
				return err
			}
			return fc.c.commit(name, key, f.Size)
		})
	}
	return paths, g.Wait()
}

// writeChunks writes every chunk of f into w at its offset, verified.
func (r *Registry) writeChunks(ctx context.Context, w *os.File, f *sourcedFile) error {
	if err := w.Truncate(f.Size); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, r.workers/2))
	for _, c := range f.Chunks {
		g.Go(func() error {
			bp := getBuf()
			defer putBuf(bp)
			return r.writeChunk(gctx, w, f, c, bp)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return w.Sync()
}

// linkFile materializes src (a read-only cache entry) at dst: reflink,
// else hard link, else copy.
func linkFile(src, dst string, mode fs.FileMode) (LinkMethod, error) {
	if err := reflink(src, dst, mode); err == nil {
		return LinkReflink, nil
	}
	if err := os.Link(src, dst); err == nil {
		return LinkHardlink, nil
	}
	if err := copyFile(src, dst, mode); err != nil {
		return "", err
	}
	return LinkCopy, nil
}

// reflink clones src at dst (copy-on-write; fails where the file system
// cannot).
func reflink(src, dst string, mode fs.FileMode) error {
	return createFrom(src, dst, mode, func(out, in *os.File) error {
		return unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
	})
}

// copyFile copies src to dst and syncs it.
func copyFile(src, dst string, mode fs.FileMode) error {
	return createFrom(src, dst, mode, func(out, in *os.File) error {
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
		return out.Sync()
	})
}

// createFrom creates dst (which must not exist) with mode, fills it from
// src, and removes it again if filling fails.
func createFrom(src, dst string, mode fs.FileMode, fill func(out, in *os.File) error) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode.Perm())
	if err != nil {
		return err
	}
	err = fill(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return err
	}
	return os.Chmod(dst, mode.Perm()) // exact, whatever the umask
}

// linkFiles materializes files under root from the file cache and counts
// the methods used.
func (r *Registry) linkFiles(ctx context.Context, root string, fc *FileCache, files []sourcedFile) (map[LinkMethod]int, error) {
	if fc == nil {
		return nil, errors.New("--link needs the per-machine file cache")
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	r.progressStart("pull", total)
	paths, err := r.ensureCached(ctx, fc, files)
	r.progressFinish()
	if err != nil {
		return nil, err
	}
	methods := map[LinkMethod]int{}
	for i, f := range files {
		dst, err := targetPath(root, f.Path)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		m, err := linkFile(paths[i], dst, fs.FileMode(f.Mode))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		methods[m]++
	}
	return methods, nil
}
