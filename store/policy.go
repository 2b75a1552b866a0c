package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store/backend"
)

// policyRefKey is the per-NAME key of the stored retention policy.
const policyRefKey = "retention"

// storedPolicy is the JSON form of a retention policy in
// refs/<NAME>/p/retention.
type storedPolicy struct {
	KeepLast        int    `json:"keep_last,omitempty"`
	KeepBest        int    `json:"keep_best,omitempty"`
	Metric          string `json:"metric,omitempty"`
	GreaterIsBetter *bool  `json:"greater_is_better,omitempty"`
	KeepEvery       int64  `json:"keep_every,omitempty"`
	KeepWithin      string `json:"keep_within,omitempty"` // Go duration, e.g. "72h0m0s"
}

// SetPolicy stores NAME's default retention policy, replacing any.
// The policy is stored with its checksum (docs/format.md, section 5).
func (r *Registry) SetPolicy(ctx context.Context, name string, p retention.Policy) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	sp := storedPolicy{KeepLast: p.KeepLast, KeepBest: p.KeepBest, Metric: p.Metric, GreaterIsBetter: p.GreaterIsBetter, KeepEvery: p.KeepEvery}
	if p.KeepWithin > 0 {
		sp.KeepWithin = p.KeepWithin.String()
	}
	key := policyKey(name, policyRefKey)
	if err := r.backend.Delete(ctx, key); err != nil {
		return err
	}
	if err := putRef(ctx, r.backend, key, sp); err != nil {
		return fmt.Errorf("store policy of %s: %w", name, err)
	}
	return nil
}

// Policy returns NAME's stored retention policy; ok is false when it has
// none. A policy that does not verify is an error wrapping ErrCorruptRef.
func (r *Registry) Policy(ctx context.Context, name string) (p retention.Policy, ok bool, err error) {
	key := policyKey(name, policyRefKey)
	data, err := readRef(ctx, r.backend, key)
	if err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			return p, false, nil
		}
		return p, false, err
	}
	p, err = decodePolicy(key, data)
	if err != nil {
		return p, false, err
	}
	return p, true, nil
}

// decodePolicy verifies and decodes the retention policy stored under key.
func decodePolicy(key string, data []byte) (retention.Policy, error) {
	var sp storedPolicy
	if _, err := decodeRef(key, data, &sp); err != nil {
		return retention.Policy{}, err
	}
	p := retention.Policy{KeepLast: sp.KeepLast, KeepBest: sp.KeepBest, Metric: sp.Metric, GreaterIsBetter: sp.GreaterIsBetter, KeepEvery: sp.KeepEvery}
	if sp.KeepWithin != "" {
		d, err := time.ParseDuration(sp.KeepWithin)
		if err != nil {
			return p, fmt.Errorf("%s: %w: keep_within: %v", key, ErrCorruptRef, err)
		}
		p.KeepWithin = d
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%s: %w: %v", key, ErrCorruptRef, err)
	}
	return p, nil
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
		return retention.Plan{}, noSuchName(name, names)
	}
	return p.Plan(Checkpoints(c.Records[name], c.Tags[name]), time.Now())
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
		key := versionKey(name, cp.Version)
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
