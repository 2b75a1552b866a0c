package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/retention"
)

// ErrNoCheckpoint is returned when NAME@REF resolves to nothing.
var ErrNoCheckpoint = errors.New("no such checkpoint")

// Names lists every NAME that has at least one version, sorted.
func (r *Registry) Names(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	err := r.backend.List(ctx, "refs/", func(oi ObjectInfo) error {
		if name, kind, _, ok := parseRefKey(oi.Key); ok && kind == refKindVersion {
			seen[name] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Catalog is every record and tag of a registry, grouped by NAME.
type Catalog struct {
	Records map[string][]Record          // sorted by version
	Tags    map[string]map[string]string // NAME -> TAG -> VERSION
}

// Catalog reads every ref under the NAME (or all NAMEs when name is "").
// Ref contents come from the per-machine cache when their ETag is unchanged.
func (r *Registry) Catalog(ctx context.Context, name string) (*Catalog, error) {
	prefix := "refs/"
	if name != "" {
		prefix += name + "/"
	}
	var infos []ObjectInfo
	err := r.backend.List(ctx, prefix, func(oi ObjectInfo) error {
		n, kind, _, ok := parseRefKey(oi.Key)
		if ok && (name == "" || n == name) && (kind == refKindVersion || kind == refKindTag) {
			infos = append(infos, oi)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list refs: %w", err)
	}
	contents := make([][]byte, len(infos))
	fresh := map[ObjectInfo][]byte{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.workers)
	for i, oi := range infos {
		if data, ok := r.index.catalogGet(r.format.ID, oi); ok {
			contents[i] = data
			continue
		}
		g.Go(func() error {
			data, err := readAll(gctx, r.backend, oi.Key, 1<<20)
			if errors.Is(err, ErrNotFound) {
				return nil // removed since the listing
			}
			if err != nil {
				return err
			}
			contents[i] = data
			mu.Lock()
			fresh[oi] = data
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	r.index.catalogPut(r.format.ID, fresh)

	c := &Catalog{Records: map[string][]Record{}, Tags: map[string]map[string]string{}}
	for i, oi := range infos {
		if contents[i] == nil {
			continue
		}
		n, kind, last, _ := parseRefKey(oi.Key)
		switch kind {
		case refKindVersion:
			var rec Record
			if err := json.Unmarshal(contents[i], &rec); err != nil {
				return nil, fmt.Errorf("%s: %w", oi.Key, err)
			}
			if rec.Name != n || rec.Version != last {
				return nil, fmt.Errorf("%s: records %s@%s, not what its key says", oi.Key, rec.Name, rec.Version)
			}
			c.Records[n] = append(c.Records[n], rec)
		case refKindTag:
			var t TagRecord
			if err := json.Unmarshal(contents[i], &t); err != nil {
				return nil, fmt.Errorf("%s: %w", oi.Key, err)
			}
			if c.Tags[n] == nil {
				c.Tags[n] = map[string]string{}
			}
			c.Tags[n][last] = t.Version
		}
	}
	for _, rs := range c.Records {
		SortRecords(rs)
	}
	return c, nil
}

// Names of the catalog, sorted.
func (c *Catalog) Names() []string {
	names := make([]string, 0, len(c.Records))
	for n := range c.Records {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TagsOf returns the tags pointing at NAME@VERSION, sorted.
func (c *Catalog) TagsOf(name, version string) []string {
	var tags []string
	for t, v := range c.Tags[name] {
		if v == version {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	return tags
}

// Resolve turns NAME@REF into a record. REF is a version, a tag, "latest"
// (the highest version) or "best" (lowest eval_loss).
func (r *Registry) Resolve(ctx context.Context, name, ref string) (Record, error) {
	if ref != RefLatest && ref != RefBest {
		var rec Record
		err := getJSON(ctx, r.backend, versionKey(name, ref), &rec)
		if err == nil {
			return rec, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Record{}, err
		}
		var t TagRecord
		err = getJSON(ctx, r.backend, tagKey(name, ref), &t)
		if err == nil {
			if err := getJSON(ctx, r.backend, versionKey(name, t.Version), &rec); err != nil {
				if errors.Is(err, ErrNotFound) {
					return Record{}, fmt.Errorf("%w: tag %s@%s points at version %s, which was removed", ErrNoCheckpoint, name, ref, t.Version)
				}
				return Record{}, err
			}
			return rec, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Record{}, err
		}
	}
	c, err := r.Catalog(ctx, name)
	if err != nil {
		return Record{}, err
	}
	if len(c.Records[name]) == 0 {
		names, err := r.Names(ctx)
		if err != nil {
			return Record{}, err
		}
		return Record{}, noSuchName(name, names)
	}
	return c.Resolve(name, ref)
}

// noSuchName is the error for a NAME with no versions, suggesting a close one.
func noSuchName(name string, names []string) error {
	msg := fmt.Sprintf("%v: no checkpoint named %s", ErrNoCheckpoint, name)
	if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return &notFoundError{msg}
}

// notFoundError carries a helpful message and still matches ErrNoCheckpoint.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string        { return e.msg }
func (e *notFoundError) Is(target error) bool { return target == ErrNoCheckpoint }

// Resolve resolves NAME@REF against the catalog, with a helpful error.
func (c *Catalog) Resolve(name, ref string) (Record, error) {
	recs := c.Records[name]
	if len(recs) == 0 {
		return Record{}, noSuchName(name, c.Names())
	}
	switch ref {
	case RefLatest:
		return recs[len(recs)-1], nil
	case RefBest:
		best, ok := BestRecord(recs, "")
		if !ok {
			return Record{}, fmt.Errorf("%w: %s@best: no version of %s has eval_loss recorded (push with --metric eval_loss=...)", ErrNoCheckpoint, name, name)
		}
		return best, nil
	}
	for _, rec := range recs {
		if rec.Version == ref {
			return rec, nil
		}
	}
	if v, ok := c.Tags[name][ref]; ok {
		for _, rec := range recs {
			if rec.Version == v {
				return rec, nil
			}
		}
	}
	versions := make([]string, len(recs))
	for i, rec := range recs {
		versions[i] = rec.Version
	}
	msg := fmt.Sprintf("%v: no checkpoint %s@%s; versions: %s", ErrNoCheckpoint, name, ref, strings.Join(versions, ", "))
	if tags := c.Tags[name]; len(tags) > 0 {
		var ts []string
		for t := range tags {
			ts = append(ts, t)
		}
		sort.Strings(ts)
		msg += "; tags: " + strings.Join(ts, ", ")
	}
	return Record{}, &notFoundError{msg}
}

// BestRecord returns the best record by metric ("" = eval_loss), in the
// direction Trainer uses for it.
func BestRecord(recs []Record, metric string) (Record, bool) {
	metric = retention.NormalizeMetric(metric)
	cps := Checkpoints(recs, nil)
	best, ok := retention.Best(cps, metric, retention.GreaterIsBetter(metric))
	if !ok {
		return Record{}, false
	}
	for _, rec := range recs {
		if rec.Version == best.Version {
			return rec, true
		}
	}
	return Record{}, false
}

// Checkpoints converts records to retention's input, with their tags.
func Checkpoints(recs []Record, tags map[string]string) []retention.Checkpoint {
	cps := make([]retention.Checkpoint, len(recs))
	for i, rec := range recs {
		cps[i] = retention.Checkpoint{Version: rec.Version, Step: rec.Step, Pushed: rec.Pushed, Metrics: rec.Metrics}
		for t, v := range tags {
			if v == rec.Version {
				cps[i].Tags = append(cps[i].Tags, t)
			}
		}
		sort.Strings(cps[i].Tags)
	}
	return cps
}

// suggest returns the candidate closest to s by edit distance, if close.
func suggest(s string, candidates []string) string {
	best, bestD := "", len(s)/2+2
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Tag points TAG at NAME@REF, moving it if it pointed elsewhere.
func (r *Registry) Tag(ctx context.Context, name, ref, tag string) error {
	if err := CheckTag(tag); err != nil {
		return err
	}
	rec, err := r.Resolve(ctx, name, ref)
	if err != nil {
		return err
	}
	key := tagKey(name, tag)
	t := TagRecord{Version: rec.Version, Tagged: time.Now().UTC()}
	err = putJSON(ctx, r.backend, key, t)
	if errors.Is(err, ErrExists) {
		var old TagRecord
		if err := getJSON(ctx, r.backend, key, &old); err == nil && old.Version == rec.Version {
			return nil
		}
		if err := r.backend.Delete(ctx, key); err != nil {
			return err
		}
		err = putJSON(ctx, r.backend, key, t)
	}
	if err != nil {
		return fmt.Errorf("tag %s@%s %s: %w", name, rec.Version, tag, err)
	}
	return nil
}

// Untag removes TAG from NAME.
func (r *Registry) Untag(ctx context.Context, name, tag string) error {
	key := tagKey(name, tag)
	if _, err := r.backend.Stat(ctx, key); err != nil {
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: %s has no tag %q", ErrNoCheckpoint, name, tag)
		}
		return err
	}
	return r.backend.Delete(ctx, key)
}

// Remove deletes the ref NAME@VERSION and the tags pointing at it. Its data
// stays until gc finds nothing else references it.
func (r *Registry) Remove(ctx context.Context, name, ref string) (Record, []string, error) {
	c, err := r.Catalog(ctx, name)
	if err != nil {
		return Record{}, nil, err
	}
	rec, err := c.Resolve(name, ref)
	if err != nil {
		return Record{}, nil, err
	}
	tags := c.TagsOf(name, rec.Version)
	for _, t := range tags {
		if err := r.backend.Delete(ctx, tagKey(name, t)); err != nil {
			return Record{}, nil, err
		}
	}
	if err := r.backend.Delete(ctx, versionKey(name, rec.Version)); err != nil {
		return Record{}, nil, err
	}
	return rec, tags, nil
}

// Manifest fetches, verifies and decodes a manifest.
func (r *Registry) Manifest(ctx context.Context, id ID) (*Manifest, error) {
	data, ok := r.index.manifest(id)
	if !ok || Hash(data) != id {
		var err error
		data, err = r.readManifestObject(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", id, err)
		}
		r.index.putManifest(id, data)
	}
	m, err := DecodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", id, err)
	}
	return m, nil
}
