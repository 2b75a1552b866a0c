package store

import (
	"context"

	"github.com/ckptdev/ckpt/store/backend"
)

// HashEntries hashes every entry of the file cache the way pull --link
// checks an entry before linking it (BenchmarkPullLinkVsCopy reports what
// that costs).
func (c *ContentCache) HashEntries(ctx context.Context) error {
	for _, f := range c.scan() {
		if e, ok := parseEntry(f.name); !ok || !e.recorded {
			continue
		}
		if err := hashEntry(ctx, f.path); err != nil {
			return err
		}
	}
	return nil
}

func hashEntry(ctx context.Context, p string) error {
	{
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
	}
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
