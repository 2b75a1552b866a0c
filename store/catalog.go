package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/refs"
)

// Names lists every NAME that has at least one version, sorted.
func (r *Registry) Names(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	err := r.backend.List(ctx, "refs/", func(oi backend.ObjectInfo) error {
		if name, kind, _, ok := refs.ParseKey(oi.Key); ok && kind == refs.KindVersion {
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

// CatalogOptions say how a catalog is read.
type CatalogOptions struct {
	// FromRegistry reads every ref from the registry itself, never from the
	// per-machine cache. Whatever deletes (gc, retention) or vouches for the
	// registry (verify) reads this way: a cache is a hint, never a verdict.
	FromRegistry bool
	// KeepGoing records refs that cannot be read or verified in
	// refs.Catalog.Problems and reads the rest, instead of failing.
	KeepGoing bool
	// VersionsOnly skips tags.
	VersionsOnly bool
	// Policies also reads the per-NAME settings (refs/<NAME>/p/...).
	Policies bool
}

// Catalog reads every ref under the NAME (or all NAMEs when name is ""),
// retention policies included, and fails, naming the first, if any version
// or tag cannot be read or verified. A policy that cannot be stays in the
// catalog's Problems: only NAME@best, which may rank by its metric, fails
// on it (refs.Catalog.BestBy). Ref contents come from the per-machine
// cache when their ETag is unchanged and they still verify; ReadCatalog
// can bypass the cache.
func (r *Registry) Catalog(ctx context.Context, name string) (*refs.Catalog, error) {
	c, err := r.ReadCatalog(ctx, name, CatalogOptions{Policies: true, KeepGoing: true})
	if err != nil {
		return nil, err
	}
	if err := failOnRefProblems(c); err != nil {
		return nil, err
	}
	return c, nil
}

// failOnRefProblems returns the error of the catalog's problems with
// versions and tags, leaving those with per-NAME settings to whoever
// needs them.
func failOnRefProblems(c *refs.Catalog) error {
	var problems []refs.Problem
	for _, p := range c.Problems {
		if _, kind, _, _ := refs.ParseKey(p.Key); kind != refs.KindPolicy {
			problems = append(problems, p)
		}
	}
	return (&refs.Catalog{Problems: problems}).Err()
}

// ReadCatalog reads every ref under the NAME (or all NAMEs when name is "")
// as opts say. Every ref is verified (its checksum, and that it says what
// its key says) before it is used, wherever it was read from; a cached copy
// that does not verify is discarded and read again from the registry.
func (r *Registry) ReadCatalog(ctx context.Context, name string, opts CatalogOptions) (*refs.Catalog, error) {
	prefix := "refs/"
	if name != "" {
		prefix += name + "/"
	}
	var infos []backend.ObjectInfo
	err := r.backend.List(ctx, prefix, func(oi backend.ObjectInfo) error {
		n, kind, _, ok := refs.ParseKey(oi.Key)
		if !ok || name != "" && n != name {
			return nil
		}
		if kind == refs.KindVersion || kind == refs.KindTag && !opts.VersionsOnly || kind == refs.KindPolicy && opts.Policies {
			infos = append(infos, oi)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list refs: %w", err)
	}
	items := make([]refs.Item, len(infos))
	found := make([]bool, len(infos))
	problems := make([]error, len(infos))
	var need []int
	for i, oi := range infos {
		if !opts.FromRegistry {
			if data, ok := r.index.catalogGet(r.format.ID, oi); ok {
				if item, err := refs.DecodeItem(oi.Key, data); err == nil {
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
			case errors.Is(err, refs.ErrCorrupt):
				problems[i] = err
				return nil
			case err != nil:
				return err
			}
			item, err := refs.DecodeItem(oi.Key, data)
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

	c := refs.NewCatalog()
	c.Rule = r.best
	for i, oi := range infos {
		if problems[i] != nil {
			c.Problems = append(c.Problems, refs.Problem{Key: oi.Key, Err: problems[i]})
			continue
		}
		if found[i] {
			c.Add(oi.Key, items[i])
		}
	}
	c.Sort()
	if len(c.Problems) > 0 && !opts.KeepGoing {
		return nil, c.Err()
	}
	return c, nil
}

// Resolve turns NAME@REF into a record. REF is a version, a tag, "latest"
// (the highest version) or "best" (the best version by the handle's
// Options.Best, else NAME's stored retention policy's metric, else
// eval_loss: refs.Catalog.BestBy).
func (r *Registry) Resolve(ctx context.Context, name, ref string) (refs.Record, error) {
	if ref != refs.Latest && ref != refs.Best {
		rec, err := r.readRecord(ctx, name, ref)
		if err == nil {
			return rec, nil
		}
		if !errors.Is(err, backend.ErrNotFound) {
			return refs.Record{}, err
		}
		t, err := r.readTag(ctx, name, ref)
		if err == nil {
			rec, err := r.readRecord(ctx, name, t.Version)
			if errors.Is(err, backend.ErrNotFound) {
				return refs.Record{}, fmt.Errorf("%w: tag %s@%s points at version %s, which was removed", refs.ErrNoCheckpoint, name, ref, t.Version)
			}
			return rec, err
		}
		if !errors.Is(err, backend.ErrNotFound) {
			return refs.Record{}, err
		}
	}
	c, err := r.Catalog(ctx, name)
	if err != nil {
		return refs.Record{}, err
	}
	if len(c.Records[name]) == 0 {
		names, err := r.Names(ctx)
		if err != nil {
			return refs.Record{}, err
		}
		return refs.Record{}, refs.NoSuchName(name, names)
	}
	return c.Resolve(name, ref)
}

// Tag points TAG at NAME@REF, moving it if it pointed elsewhere. A tag
// that exists but does not verify is replaced.
func (r *Registry) Tag(ctx context.Context, name, ref, tag string) error {
	if err := refs.CheckName(name); err != nil {
		return err
	}
	if err := refs.CheckTag(tag); err != nil {
		return err
	}
	rec, err := r.Resolve(ctx, name, ref)
	if err != nil {
		return err
	}
	key := refs.TagKey(name, tag)
	t := refs.TagRecord{Version: rec.Version, Tagged: time.Now().UTC()}
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
	key := refs.TagKey(name, tag)
	if _, err := r.backend.Stat(ctx, key); err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("%w: %s has no tag %q", refs.ErrNoCheckpoint, name, tag)
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
func (r *Registry) Remove(ctx context.Context, name, ref string) (refs.Record, []string, error) {
	c, err := r.ReadCatalog(ctx, name, CatalogOptions{FromRegistry: true, KeepGoing: true, Policies: true})
	if err != nil {
		return refs.Record{}, nil, err
	}
	var rec refs.Record
	if ref != refs.Latest && ref != refs.Best && c.ProblemAt(refs.VersionKey(name, ref)) != nil {
		rec = refs.Record{Name: name, Version: ref} // corrupt: removed unread
	} else {
		if ref == refs.Latest || ref == refs.Best {
			for _, p := range c.Problems {
				if _, kind, _, _ := refs.ParseKey(p.Key); kind == refs.KindVersion {
					return refs.Record{}, nil, fmt.Errorf("%s@%s: cannot tell which version it is: %w", name, ref, p.Err)
				}
			}
		}
		rec, err = c.Resolve(name, ref)
		if err != nil {
			if p := c.ProblemAt(refs.TagKey(name, ref)); p != nil {
				return refs.Record{}, nil, p.Err
			}
			if v, ok := c.Tags[name][ref]; ok {
				if p := c.ProblemAt(refs.VersionKey(name, v)); p != nil {
					return refs.Record{}, nil, fmt.Errorf("%s@%s is version %s, which does not verify (remove it by its version): %w", name, ref, v, p.Err)
				}
			}
			return refs.Record{}, nil, err
		}
	}
	tags := c.TagsOf(name, rec.Version)
	for _, t := range tags {
		if err := r.backend.Delete(ctx, refs.TagKey(name, t)); err != nil {
			return refs.Record{}, nil, err
		}
	}
	if err := r.backend.Delete(ctx, refs.VersionKey(name, rec.Version)); err != nil {
		return refs.Record{}, nil, err
	}
	return rec, tags, nil
}
