package store

import "context"

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
type NoCheapStatForTest struct{ Backend }
