package store

import (
	"context"
	"io/fs"
	"path/filepath"

	"github.com/ckptdev/ckpt/store/backend"
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

// MissingKeysForTest runs the existence check push uses before it
// publishes, listing a blob folder once it holds at least listAt of the
// keys, with fanout times the workers (0: the defaults).
func (r *Registry) MissingKeysForTest(ctx context.Context, keys []string, listAt, fanout int) ([]string, error) {
	if fanout > 0 {
		old := checkFanout
		checkFanout = fanout
		defer func() { checkFanout = old }()
	}
	if listAt > 0 {
		old := listAtLeast
		listAtLeast = listAt
		defer func() { listAtLeast = old }()
	}
	return r.missingKeys(ctx, keys)
}

// NoCheapStatForTest hides the backend's CheapStatter, so that the
// existence check lists folders on it too.
type NoCheapStatForTest struct{ backend.Backend }
