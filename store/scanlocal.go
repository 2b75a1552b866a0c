package store

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// LocalManifest returns the manifest a push of dir would record, and its
// ID, storing nothing in the registry. Unlike ScanFolder it uses the
// per-machine stat cache: a file whose size, modification and change times,
// inode and device are those the cache recorded when it was last read is
// not read again; every other file is read and hashed, and recorded in the
// stat cache as push records it (a later push of the folder reads nothing
// more). The stat cache only says what a file held when it was last read;
// it never says that the registry holds that data.
//
// The ID is the one push would publish for the folder, so comparing it with
// a record's manifest tells whether the folder holds exactly what the record
// says, file for file and byte for byte (through the hashes).
func (r *Registry) LocalManifest(ctx context.Context, dir string) (*manifest.Manifest, object.ID, error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, object.ID{}, err
	}
	entries, err := layout.ScanDir(absDir)
	if err != nil {
		return nil, object.ID{}, err
	}
	byPath := make(map[string]bool, len(entries))
	for _, e := range entries {
		byPath[e.Path] = true
	}
	dry := &Registry{workers: r.workers, dry: true, index: r.index}
	m, _, statEntries, _, err := dry.buildManifest(ctx, absDir, entries, byPath)
	if err != nil {
		return nil, object.ID{}, fmt.Errorf("scan %s: %w", dir, err)
	}
	_, id, err := m.Encode()
	if err != nil {
		return nil, object.ID{}, err
	}
	r.index.storeFiles(statEntries)
	return m, id, nil
}
