package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// folderHolds reports whether the folder at dir, whose manifest as this
// ckpt cuts it is local, holds exactly the content the recorded manifest
// describes, whatever chunking that manifest used (an earlier ckpt may have
// cut the same bytes elsewhere, so the two manifest IDs differ): the same
// paths, sizes and modes, and, for each file whose digest differs, local
// bytes that hash to the recorded chunk IDs at the recorded boundaries.
// Chunk IDs are SHA-256 of the chunk content, so this is a byte-for-byte
// comparison through the hashes; it reads only files that differ in digest.
func folderHolds(ctx context.Context, dir string, local, recorded *manifest.Manifest) (bool, error) {
	if len(local.Files) != len(recorded.Files) {
		return false, nil
	}
	byPath := make(map[string]*manifest.File, len(local.Files))
	for i := range local.Files {
		byPath[local.Files[i].Path] = &local.Files[i]
	}
	for i := range recorded.Files {
		want := &recorded.Files[i]
		have, ok := byPath[want.Path]
		if !ok || have.Size != want.Size || have.Mode != want.Mode {
			return false, nil
		}
		if have.Digest == want.Digest {
			continue
		}
		same, err := fileHasChunks(ctx, filepath.Join(dir, filepath.FromSlash(want.Path)), want)
		if err != nil || !same {
			return false, err
		}
	}
	return true, nil
}

// fileHasChunks reports whether the file at path holds want's chunks.
func fileHasChunks(ctx context.Context, path string, want *manifest.File) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }() // read-only
	var off int64
	for _, c := range want.Chunks {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if c.Offset != off || c.Size < 0 {
			return false, fmt.Errorf("%s: recorded chunks are not contiguous", want.Path)
		}
		h := sha256.New()
		n, err := io.CopyN(h, f, c.Size)
		if err != nil && err != io.EOF {
			return false, fmt.Errorf("%s: %w", path, err)
		}
		if n != c.Size || object.ID(h.Sum(nil)) != c.ID {
			return false, nil
		}
		off += c.Size
	}
	return off == want.Size, nil
}
