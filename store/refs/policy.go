package refs

import (
	"fmt"
	"time"

	"github.com/ckptdev/ckpt/retention"
)

// PolicyRetention is the per-NAME setting key of the stored retention
// policy: refs/<NAME>/p/retention.
const PolicyRetention = "retention"

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

// EncodePolicy is the stored form of p, with its checksum (Encode).
func EncodePolicy(p retention.Policy) ([]byte, error) {
	sp := storedPolicy{KeepLast: p.KeepLast, KeepBest: p.KeepBest, Metric: p.Metric, GreaterIsBetter: p.GreaterIsBetter, KeepEvery: p.KeepEvery}
	if p.KeepWithin > 0 {
		sp.KeepWithin = p.KeepWithin.String()
	}
	return Encode(sp)
}

// DecodePolicy verifies and decodes the retention policy stored under key.
func DecodePolicy(key string, data []byte) (retention.Policy, error) {
	var sp storedPolicy
	if _, err := Decode(key, data, &sp); err != nil {
		return retention.Policy{}, err
	}
	p := retention.Policy{KeepLast: sp.KeepLast, KeepBest: sp.KeepBest, Metric: sp.Metric, GreaterIsBetter: sp.GreaterIsBetter, KeepEvery: sp.KeepEvery}
	if sp.KeepWithin != "" {
		d, err := time.ParseDuration(sp.KeepWithin)
		if err != nil {
			return p, fmt.Errorf("%s: %w: keep_within: %v", key, ErrCorrupt, err)
		}
		p.KeepWithin = d
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%s: %w: %v", key, ErrCorrupt, err)
	}
	return p, nil
}
