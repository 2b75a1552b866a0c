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
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
)

// ErrNoCheckpoint is returned when NAME@REF resolves to nothing.
var ErrNoCheckpoint = errors.New("no such checkpoint")

// Names lists every NAME that has at least one version, sorted.
func (r *Registry) Names(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	err := r.backend.List(ctx, "refs/", func(oi backend.ObjectInfo) error {
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
	// Policies holds the stored retention policies (CatalogOptions.Policies).
	Policies map[string]retention.Policy
	// Problems lists the refs that could not be read or verified, sorted by
	// key (CatalogOptions.KeepGoing); such refs are in no other field.
	Problems []Problem
}

// CatalogOptions say how a catalog is read.
type CatalogOptions struct {
	// FromRegistry reads every ref from the registry itself, never from the
	// per-machine cache. Whatever deletes (gc, retention) or vouches for the
	// registry (verify) reads this way: a cache is a hint, never a verdict.
	FromRegistry bool
	// KeepGoing records refs that cannot be read or verified in
	// Catalog.Problems and reads the rest, instead of failing.
	KeepGoing bool
	// VersionsOnly skips tags.
	VersionsOnly bool
	// Policies also reads the per-NAME settings (refs/<NAME>/p/...).
	Policies bool
}

// Catalog reads every ref under the NAME (or all NAMEs when name is ""),
// and fails, naming the first, if any cannot be read or verified. Ref contents come
// from the per-machine cache when their ETag is unchanged and they still
// verify; ReadCatalog can bypass the cache.
func (r *Registry) Catalog(ctx context.Context, name string) (*Catalog, error) {
	return r.ReadCatalog(ctx, name, CatalogOptions{})
}

// catalogItem is one decoded ref.
type catalogItem struct {
	rec    *Record
	tag    *TagRecord
	policy *retention.Policy
}

// decodeCatalogItem verifies and decodes the ref object under oi.Key.
func decodeCatalogItem(key string, data []byte) (catalogItem, error) {
	_, kind, last, _ := parseRefKey(key)
	switch kind {
	case refKindVersion:
		rec, err := decodeRecord(key, data)
		return catalogItem{rec: &rec}, err
	case refKindTag:
		t, err := decodeTag(key, data)
		return catalogItem{tag: &t}, err
	case refKindPolicy:
		if last == policyRefKey {
			p, err := decodePolicy(key, data)
			return catalogItem{policy: &p}, err
		}
		// A setting of a later ckpt: only its checksum can be checked.
		var v json.RawMessage
		_, err := decodeRef(key, data, &v)
		return catalogItem{}, err
	}
	return catalogItem{}, fmt.Errorf("%s: not a ref", key)
}

// ReadCatalog reads every ref under the NAME (or all NAMEs when name is "")
// as opts say. Every ref is verified (its checksum, and that it says what
// its key says) before it is used, wherever it was read from; a cached copy
// that does not verify is discarded and read again from the registry.
func (r *Registry) ReadCatalog(ctx context.Context, name string, opts CatalogOptions) (*Catalog, error) {
	prefix := "refs/"
	if name != "" {
		prefix += name + "/"
	}
	var infos []backend.ObjectInfo
	err := r.backend.List(ctx, prefix, func(oi backend.ObjectInfo) error {
		n, kind, _, ok := parseRefKey(oi.Key)
		if !ok || name != "" && n != name {
			return nil
		}
		if kind == refKindVersion || kind == refKindTag && !opts.VersionsOnly || kind == refKindPolicy && opts.Policies {
			infos = append(infos, oi)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list refs: %w", err)
	}
	items := make([]catalogItem, len(infos))
	found := make([]bool, len(infos))
	problems := make([]error, len(infos))
	var need []int
	for i, oi := range infos {
		if !opts.FromRegistry {
			if data, ok := r.index.catalogGet(r.format.ID, oi); ok {
				if item, err := decodeCatalogItem(oi.Key, data); err == nil {
					items[i], found[i] = item, true
					continue
				}
				// A cached copy that does not verify is a miss.
			}
		}
		need = append(need, i)
	}
	fresh := map[backend.ObjectInfo][]byte{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.workers)
	for _, i := range need {
		oi := infos[i]
		g.Go(func() error {
			data, err := readRef(gctx, r.backend, oi.Key)
			switch {
			case errors.Is(err, backend.ErrNotFound):
				return nil // removed since the listing
			case errors.Is(err, ErrCorruptRef):
				problems[i] = err
				return nil
			case err != nil:
				return err
			}
			item, err := decodeCatalogItem(oi.Key, data)
			if err != nil {
				problems[i] = err
				return nil
			}
			items[i], found[i] = item, true
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

	c := &Catalog{Records: map[string][]Record{}, Tags: map[string]map[string]string{}, Policies: map[string]retention.Policy{}}
	for i, oi := range infos {
		if problems[i] != nil {
			c.Problems = append(c.Problems, Problem{Object: oi.Key, Err: problems[i]})
			continue
		}
		if !found[i] {
			continue
		}
		n, _, last, _ := parseRefKey(oi.Key)
		switch it := items[i]; {
		case it.rec != nil:
			c.Records[n] = append(c.Records[n], *it.rec)
		case it.tag != nil:
			if c.Tags[n] == nil {
				c.Tags[n] = map[string]string{}
			}
			c.Tags[n][last] = it.tag.Version
		case it.policy != nil:
			c.Policies[n] = *it.policy
		}
	}
	for _, rs := range c.Records {
		SortRecords(rs)
	}
	sort.Slice(c.Problems, func(i, j int) bool { return c.Problems[i].Object < c.Problems[j].Object })
	if len(c.Problems) > 0 && !opts.KeepGoing {
		return nil, c.problemsError()
	}
	return c, nil
}

// problemsError is the error for a catalog with problems: the first one,
// and how many more there are.
func (c *Catalog) problemsError() error {
	if len(c.Problems) == 1 {
		return c.Problems[0].Err
	}
	return fmt.Errorf("%w (and %d more unreadable refs)", c.Problems[0].Err, len(c.Problems)-1)
}

// problem returns the problem recorded for key, if any.
func (c *Catalog) problem(key string) *Problem {
	for i := range c.Problems {
		if c.Problems[i].Object == key {
			return &c.Problems[i]
		}
	}
	return nil
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
		rec, err := r.readRecord(ctx, name, ref)
		if err == nil {
			return rec, nil
		}
		if !errors.Is(err, backend.ErrNotFound) {
			return Record{}, err
		}
		t, err := r.readTag(ctx, name, ref)
		if err == nil {
			rec, err := r.readRecord(ctx, name, t.Version)
			if errors.Is(err, backend.ErrNotFound) {
				return Record{}, fmt.Errorf("%w: tag %s@%s points at version %s, which was removed", ErrNoCheckpoint, name, ref, t.Version)
			}
			return rec, err
		}
		if !errors.Is(err, backend.ErrNotFound) {
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

// Tag points TAG at NAME@REF, moving it if it pointed elsewhere. A tag
// that exists but does not verify is replaced.
func (r *Registry) Tag(ctx context.Context, name, ref, tag string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := CheckTag(tag); err != nil {
		return err
	}
	rec, err := r.Resolve(ctx, name, ref)
	if err != nil {
		return err
	}
	key := tagKey(name, tag)
	t := TagRecord{Version: rec.Version, Tagged: time.Now().UTC()}
	err = putRef(ctx, r.backend, key, t)
	if errors.Is(err, backend.ErrExists) {
		if old, err := r.readTag(ctx, name, tag); err == nil && old.Version == rec.Version {
			return nil
		}
		if err := r.backend.Delete(ctx, key); err != nil {
			return err
		}
		err = putRef(ctx, r.backend, key, t)
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
		if errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("%w: %s has no tag %q", ErrNoCheckpoint, name, tag)
		}
		return err
	}
	return r.backend.Delete(ctx, key)
}

// Remove deletes the ref NAME@VERSION and the tags pointing at it. Its data
// stays until gc finds nothing else references it. The refs are read from
// the registry. A version ref that does not verify can be removed by its
// VERSION (Record then holds only the name and version); latest and best
// are refused while any version of NAME does not verify.
func (r *Registry) Remove(ctx context.Context, name, ref string) (Record, []string, error) {
	c, err := r.ReadCatalog(ctx, name, CatalogOptions{FromRegistry: true, KeepGoing: true})
	if err != nil {
		return Record{}, nil, err
	}
	var rec Record
	if ref != RefLatest && ref != RefBest && c.problem(versionKey(name, ref)) != nil {
		rec = Record{Name: name, Version: ref} // corrupt: removed unread
	} else {
		if ref == RefLatest || ref == RefBest {
			for _, p := range c.Problems {
				if _, kind, _, _ := parseRefKey(p.Object); kind == refKindVersion {
					return Record{}, nil, fmt.Errorf("%s@%s: cannot tell which version it is: %w", name, ref, p.Err)
				}
			}
		}
		rec, err = c.Resolve(name, ref)
		if err != nil {
			if p := c.problem(tagKey(name, ref)); p != nil {
				return Record{}, nil, p.Err
			}
			if v, ok := c.Tags[name][ref]; ok {
				if p := c.problem(versionKey(name, v)); p != nil {
					return Record{}, nil, fmt.Errorf("%s@%s is version %s, which does not verify (remove it by its version): %w", name, ref, v, p.Err)
				}
			}
			return Record{}, nil, err
		}
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

// Manifest fetches, verifies and decodes a manifest. A copy in the
// per-machine cache is used when it still hashes to id.
func (r *Registry) Manifest(ctx context.Context, id object.ID) (*manifest.Manifest, error) {
	data, ok := r.index.manifest(id)
	if !ok || object.Hash(data) != id {
		var err error
		if data, err = r.downloadManifest(ctx, id); err != nil {
			return nil, err
		}
	}
	return decodeManifestOf(id, data)
}

// manifestProof is what a manifest read must prove beyond its content.
type manifestProof int

const (
	// manifestExists: the registry still has the object (a stat); its
	// content may come from the per-machine copy, checked against the ID.
	manifestExists manifestProof = iota + 1
	// manifestDownloaded: the content is read from the registry itself.
	manifestDownloaded
)

// provenManifest reads manifest id with the proof a destructive or vouching
// caller (gc, verify) needs: never on the word of the per-machine cache.
func (r *Registry) provenManifest(ctx context.Context, id object.ID, proof manifestProof) (*manifest.Manifest, error) {
	if proof == manifestExists {
		oi, err := r.backend.Stat(ctx, object.ManifestKey(id))
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", id, err)
		}
		return r.listedManifest(ctx, id, oi.Size)
	}
	data, err := r.downloadManifest(ctx, id)
	if err != nil {
		return nil, err
	}
	return decodeManifestOf(id, data)
}

// listedManifest reads manifest id, which the registry just showed (a stat
// or a listing) to hold size bytes: that proves it exists; its content may
// come from the per-machine copy, checked against the ID, else from the
// registry.
func (r *Registry) listedManifest(ctx context.Context, id object.ID, size int64) (*manifest.Manifest, error) {
	if size < object.HeaderSize {
		return nil, fmt.Errorf("manifest %s: %w: %d bytes, shorter than an object header", id, object.ErrCorrupt, size)
	}
	if data, ok := r.index.manifest(id); ok && object.Hash(data) == id {
		return decodeManifestOf(id, data)
	}
	data, err := r.downloadManifest(ctx, id)
	if err != nil {
		return nil, err
	}
	return decodeManifestOf(id, data)
}

// downloadManifest reads manifest id from the registry, checks it and
// caches its content.
func (r *Registry) downloadManifest(ctx context.Context, id object.ID) ([]byte, error) {
	data, err := r.readManifestObject(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", id, err)
	}
	r.index.putManifest(id, data)
	return data, nil
}

func decodeManifestOf(id object.ID, data []byte) (*manifest.Manifest, error) {
	m, err := manifest.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", id, err)
	}
	return m, nil
}
