package store

import (
	"context"
	"io/fs"
	"path/filepath"
)

// HashEntries hashes every entry of the file cache the way pull --link
// checks an entry before linking it (BenchmarkPullLinkVsCopy reports what
// that costs).
func (fc *FileCache) HashEntries(ctx context.Context) error {
	return filepath.WalkDir(fc.c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if _, _, _, recorded, ok := parseEntryName(d.Name()); !ok || !recorded {
			return nil
		}
		f, err := openFileNoFollow(p)
		if err != nil {
			return err
		}
		defer f.Close()
		in, err := statFile(f)
		if err != nil {
			return err
		}
		_, err = contentHash(ctx, f, in.size)
		return err
	})
}
