package store

import (
	"context"
	"fmt"
	"path/filepath"

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
	f, err := readFolder(dir)
	if err != nil {
		return nil, object.ID{}, err
	}
	b := &manifestBuilder{sink: discardSink{}, index: r.index, workers: r.workers}
	scan, err := b.build(ctx, f)
	if err != nil {
		return nil, object.ID{}, fmt.Errorf("scan %s: %w", dir, err)
	}
	_, id, err := scan.manifest.Encode()
	if err != nil {
		return nil, object.ID{}, err
	}
	r.index.storeFiles(scan.stat)
	return scan.manifest, id, nil
}

// FolderHolds reports whether dir holds exactly the content the manifest
// recorded describes, and returns the manifest ID a push of dir would
// record now. The two IDs are equal when nothing changed; when they differ,
// the folder may still hold the same bytes cut differently by an earlier
// ckpt, and its files are checked against the recorded chunk hashes
// (folderHolds), so a change of chunking never turns a pushed folder into
// a conflict or makes it look unpushed.
func (r *Registry) FolderHolds(ctx context.Context, dir string, recorded object.ID) (bool, object.ID, error) {
	local, id, err := r.LocalManifest(ctx, dir)
	if err != nil || id == recorded {
		return err == nil, id, err
	}
	want, err := r.Manifest(ctx, recorded)
	if err != nil {
		return false, id, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, id, err
	}
	same, err := folderHolds(ctx, abs, local, want)
	return same, id, err
}
