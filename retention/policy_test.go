package retention

import (
	"math/rand"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ptr[T any](v T) *T { return &v }

func TestNormalizeMetric(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "eval_loss"},
		{"   ", "eval_loss"},
		{"loss", "eval_loss"},
		{"eval_loss", "eval_loss"},
		{"accuracy", "eval_accuracy"},
		{"eval_bleu", "eval_bleu"},
		{" f1 ", "eval_f1"},
		{"eval_data1_loss", "eval_data1_loss"},
		{"evalloss", "eval_evalloss"}, // Trainer checks the "eval_" prefix, underscore included
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, NormalizeMetric(tt.in))
		})
	}
}

func TestNormalizeMetricIsIdempotent(t *testing.T) {
	prop := func(s string) bool {
		n := NormalizeMetric(s)
		return NormalizeMetric(n) == n && strings.HasPrefix(n, "eval_")
	}
	require.NoError(t, quick.Check(prop, &quick.Config{MaxCount: 2000, Rand: rand.New(rand.NewSource(7))}))
}

func TestGreaterIsBetter(t *testing.T) {
	tests := []struct {
		metric string
		want   bool
	}{
		{"", false},
		{"loss", false},
		{"eval_loss", false},
		{"eval_data2_loss", false},
		{"accuracy", true},
		{"eval_bleu", true},
		{"eval_LOSS", true}, // case-sensitive, like TrainingArguments' endswith("loss")
		{"lossy_rate", true},
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			assert.Equal(t, tt.want, GreaterIsBetter(tt.metric))
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		wantErr []string // substrings; nil means valid
	}{
		{name: "keep-last only", policy: Policy{KeepLast: 1}},
		{name: "keep-best only", policy: Policy{KeepBest: 1}},
		{name: "keep-every only", policy: Policy{KeepEvery: 1000}},
		{name: "keep-within only", policy: Policy{KeepWithin: time.Hour}},
		{name: "metric set without keep-best", policy: Policy{KeepLast: 1, Metric: "accuracy"}},
		{
			name:    "all rules off",
			policy:  Policy{Metric: "accuracy", GreaterIsBetter: ptr(true)},
			wantErr: []string{"policy keeps nothing: every rule is off"},
		},
		{name: "negative keep-last", policy: Policy{KeepLast: -1, KeepBest: 1}, wantErr: []string{"keep-last must be >= 0, got -1"}},
		{name: "negative keep-best", policy: Policy{KeepBest: -2}, wantErr: []string{"keep-best must be >= 0, got -2"}},
		{name: "negative keep-every", policy: Policy{KeepEvery: -500}, wantErr: []string{"keep-every must be >= 0, got -500"}},
		{name: "negative keep-within", policy: Policy{KeepWithin: -time.Hour}, wantErr: []string{"keep-within must be >= 0, got -1h0m0s"}},
		{name: "bare eval_ prefix", policy: Policy{KeepBest: 1, Metric: "eval_"}, wantErr: []string{`metric "eval_" names no metric`}},
		{
			name:    "every problem listed",
			policy:  Policy{KeepLast: -1, KeepBest: -1},
			wantErr: []string{"keep-last must be >= 0", "keep-best must be >= 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if tt.wantErr == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidPolicy)
			for _, s := range tt.wantErr {
				assert.ErrorContains(t, err, s)
			}
		})
	}
	assert.ErrorIs(t, Policy{}.Validate(), ErrKeepsNothing)
}

func TestPolicyString(t *testing.T) {
	tests := []struct {
		policy Policy
		want   string
	}{
		{Policy{KeepLast: 2, KeepBest: 1}, "keep-last 2, keep-best 1 by eval_loss (lower is better)"},
		{Policy{KeepBest: 3, Metric: "accuracy"}, "keep-best 3 by eval_accuracy (greater is better)"},
		{Policy{KeepBest: 1, Metric: "loss", GreaterIsBetter: ptr(true)}, "keep-best 1 by eval_loss (greater is better)"},
		{Policy{KeepEvery: 1000, KeepWithin: 24 * time.Hour}, "keep-every 1000, keep-within 24h0m0s"},
		{Policy{KeepLast: 1, Metric: "accuracy"}, "keep-last 1"},
		{Policy{}, "keep nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.policy.String())
		})
	}
}
