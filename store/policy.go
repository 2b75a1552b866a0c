package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/refs"
)

// SetPolicy stores NAME's default retention policy, replacing any.
// The policy is stored with its checksum (docs/format.md, section 5).
func (r *Registry) SetPolicy(ctx context.Context, name string, p retention.Policy) error {
	if err := refs.CheckName(name); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	data, err := refs.EncodePolicy(p)
	if err != nil {
		return fmt.Errorf("store policy of %s: %w", name, err)
	}
	key := refs.PolicyKey(name, refs.PolicyRetention)
	if err := r.backend.Delete(ctx, key); err != nil {
		return err
	}
	if err := r.backend.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("store policy of %s: %w", name, err)
	}
	return nil
}

// Policy returns NAME's stored retention policy; ok is false when it has
// none. A policy that does not verify is an error wrapping refs.ErrCorrupt.
func (r *Registry) Policy(ctx context.Context, name string) (p retention.Policy, ok bool, err error) {
	key := refs.PolicyKey(name, refs.PolicyRetention)
	data, err := readRef(ctx, r.backend, key)
	if err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			return p, false, nil
		}
		return p, false, err
	}
	p, err = refs.DecodePolicy(key, data)
	if err != nil {
		return p, false, err
	}
	return p, true, nil
}

// RetentionPlan computes what policy keeps of NAME's checkpoints, with tags
// always kept.
func (r *Registry) RetentionPlan(ctx context.Context, name string, p retention.Policy) (retention.Plan, error) {
	if err := p.Validate(); err != nil {
		return retention.Plan{}, err
	}
	// What retention removes is decided on the registry's refs, not on the
	// per-machine cache.
	c, err := r.ReadCatalog(ctx, name, CatalogOptions{FromRegistry: true})
	if err != nil {
		return retention.Plan{}, err
	}
	if len(c.Records[name]) == 0 {
		names, err := r.Names(ctx)
		if err != nil {
			return retention.Plan{}, err
		}
		return retention.Plan{}, refs.NoSuchName(name, names)
	}
	return p.Plan(refs.Checkpoints(c.Records[name], c.Tags[name]), time.Now())
}

// ApplyPlan removes the refs of the checkpoints the plan deletes (never data:
// gc frees it). It is idempotent: a version already removed is skipped.
func (r *Registry) ApplyPlan(ctx context.Context, name string, plan retention.Plan) ([]string, error) {
	// Tags are read again, from the registry: one added since the plan was
	// made still protects.
	c, err := r.ReadCatalog(ctx, name, CatalogOptions{FromRegistry: true})
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, cp := range plan.Deleted() {
		if tags := c.TagsOf(name, cp.Version); len(cp.Tags) > 0 || len(tags) > 0 {
			continue
		}
		key := refs.VersionKey(name, cp.Version)
		if _, err := r.backend.Stat(ctx, key); errors.Is(err, backend.ErrNotFound) {
			continue
		} else if err != nil {
			return removed, err
		}
		if err := r.backend.Delete(ctx, key); err != nil {
			return removed, fmt.Errorf("remove %s@%s: %w", name, cp.Version, err)
		}
		removed = append(removed, cp.Version)
	}
	return removed, nil
}
