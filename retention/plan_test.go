package retention

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// ck builds a checkpoint whose version is its step, pushed ago before now.
func ck(step int64, ago time.Duration, metrics map[string]float64, tags ...string) Checkpoint {
	return Checkpoint{
		Version: strconv.FormatInt(step, 10),
		Step:    step,
		Pushed:  now.Add(-ago),
		Metrics: metrics,
		Tags:    tags,
	}
}

func loss(v float64) map[string]float64 { return map[string]float64{"eval_loss": v} }

func versions(cps []Checkpoint) []string {
	out := make([]string, 0, len(cps))
	for _, cp := range cps {
		out = append(out, cp.Version)
	}
	return out
}

func TestBest(t *testing.T) {
	history := []Checkpoint{
		ck(300, 0, map[string]float64{"eval_loss": 1.2, "eval_accuracy": 0.80}),
		ck(100, 0, map[string]float64{"eval_loss": 2.0, "eval_accuracy": 0.60}),
		ck(200, 0, map[string]float64{"eval_loss": 1.2, "eval_accuracy": 0.85}),
		ck(400, 0, map[string]float64{"eval_loss": 1.5}),
		ck(500, 0, nil),
	}
	tests := []struct {
		name    string
		cps     []Checkpoint
		metric  string
		greater bool
		want    string // "" means ok=false
	}{
		{name: "lower is better, tie goes to the earliest step", cps: history, metric: "eval_loss", want: "200"},
		{name: "loss means eval_loss", cps: history, metric: "loss", want: "200"},
		{name: "empty metric means eval_loss", cps: history, metric: "", want: "200"},
		{name: "greater is better", cps: history, metric: "accuracy", greater: true, want: "200"},
		{name: "direction flips the answer", cps: history, metric: "eval_loss", greater: true, want: "100"},
		{name: "metric nobody recorded", cps: history, metric: "bleu", greater: true},
		{name: "no checkpoints", metric: "eval_loss"},
		{
			name:   "NaN is never best",
			cps:    []Checkpoint{ck(100, 0, loss(math.NaN())), ck(200, 0, loss(3))},
			metric: "eval_loss", want: "200",
		},
		{
			name:   "only NaN",
			cps:    []Checkpoint{ck(100, 0, loss(math.NaN()))},
			metric: "eval_loss",
		},
		{
			name:   "+Inf loss never beats Trainer's starting best_metric",
			cps:    []Checkpoint{ck(100, 0, loss(math.Inf(1)))},
			metric: "eval_loss",
		},
		{
			name:   "-Inf loss is the best there is",
			cps:    []Checkpoint{ck(100, 0, loss(1)), ck(200, 0, loss(math.Inf(-1)))},
			metric: "eval_loss", want: "200",
		},
		{
			name: "equal steps: the smaller integer version is earlier",
			cps: []Checkpoint{
				{Version: "10", Step: 7, Metrics: loss(1)},
				{Version: "9", Step: 7, Metrics: loss(1)},
			},
			metric: "eval_loss", want: "9",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Best(tt.cps, tt.metric, tt.greater)
			if tt.want == "" {
				assert.False(t, ok, "unexpected best %q", got.Version)
				return
			}
			require.True(t, ok)
			assert.Equal(t, tt.want, got.Version)
		})
	}
}

// TestPlanReasons is the golden test of the reasons a plan gives.
func TestPlanReasons(t *testing.T) {
	type row struct {
		Version string
		Keep    bool
		Reasons []string
	}
	tests := []struct {
		name   string
		policy Policy
		cps    []Checkpoint
		want   []row
	}{
		{
			name:   "every rule at once",
			policy: Policy{KeepLast: 2, KeepBest: 1, KeepEvery: 1000, KeepWithin: 24 * time.Hour},
			cps: []Checkpoint{ // deliberately out of order
				ck(3000, 20*time.Hour, loss(1.6)),
				ck(500, 72*time.Hour, loss(2.0)),
				ck(1500, 48*time.Hour, loss(1.5), "prod"),
				ck(2000, 36*time.Hour, nil),
				ck(3500, 1*time.Hour, loss(1.5)),
				ck(1000, 60*time.Hour, loss(1.8)),
				ck(2500, 30*time.Hour, loss(math.NaN())),
			},
			want: []row{
				{"500", false, []string{"no rule keeps it"}},
				{"1000", true, []string{"every 1000"}},
				{"1500", true, []string{"best eval_loss=1.5", "tag prod"}},
				{"2000", true, []string{"every 1000", "no eval_loss recorded (not ranked for best)"}},
				{"2500", false, []string{"no rule keeps it", "eval_loss is NaN (not ranked for best)"}},
				{"3000", true, []string{"last 2", "every 1000", "within 24h0m0s"}},
				{"3500", true, []string{"last 2", "within 24h0m0s"}},
			},
		},
		{
			name:   "keep-best 3 by accuracy, ranks shown",
			policy: Policy{KeepBest: 3, Metric: "accuracy"},
			cps: []Checkpoint{
				ck(100, 0, map[string]float64{"eval_accuracy": 0.5}),
				ck(200, 0, map[string]float64{"eval_accuracy": 0.9}, "prod", "prod", ""),
				ck(300, 0, map[string]float64{"eval_accuracy": 0.7}),
				ck(400, 0, map[string]float64{"eval_accuracy": 0.9}),
				ck(500, 0, loss(0.1)),
				ck(600, 0, map[string]float64{"eval_accuracy": math.Inf(-1)}),
			},
			want: []row{
				{"100", false, []string{"no rule keeps it"}},
				{"200", true, []string{"best eval_accuracy=0.9", "tag prod"}},
				{"300", true, []string{"best #3 eval_accuracy=0.7"}},
				{"400", true, []string{"best #2 eval_accuracy=0.9"}},
				{"500", false, []string{"no rule keeps it", "no eval_accuracy recorded (not ranked for best)"}},
				{"600", false, []string{"no rule keeps it", "eval_accuracy=-Inf (not ranked for best)"}},
			},
		},
		{
			name:   "no metric notes without keep-best",
			policy: Policy{KeepLast: 1},
			cps:    []Checkpoint{ck(100, 0, nil), ck(200, 0, nil)},
			want: []row{
				{"100", false, []string{"no rule keeps it"}},
				{"200", true, []string{"last 1"}},
			},
		},
		{
			name:   "unknown step and push time match neither keep-every nor keep-within",
			policy: Policy{KeepEvery: 100, KeepWithin: time.Hour},
			cps: []Checkpoint{
				{Version: "a", Step: 0, Pushed: now},
				{Version: "b", Step: 100},
			},
			want: []row{
				{"a", true, []string{"within 1h0m0s"}},
				{"b", true, []string{"every 100"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := tt.policy.Plan(tt.cps, now)
			require.NoError(t, err)
			got := make([]row, 0, len(plan.Decisions))
			for _, d := range plan.Decisions {
				got = append(got, row{d.Checkpoint.Version, d.Keep, d.Reasons})
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestPlanOrder(t *testing.T) {
	t0 := now.Add(-time.Hour)
	tests := []struct {
		name string
		cps  []Checkpoint
		want []string
	}{
		{
			name: "by step",
			cps:  []Checkpoint{ck(1500, 0, nil), ck(500, 0, nil), ck(1000, 0, nil)},
			want: []string{"500", "1000", "1500"},
		},
		{
			name: "equal steps: integer versions compare numerically",
			cps:  []Checkpoint{{Version: "10"}, {Version: "9"}, {Version: "100"}, {Version: "010"}},
			want: []string{"9", "010", "10", "100"},
		},
		{
			name: "equal steps: other versions compare as strings, after integers",
			cps:  []Checkpoint{{Version: "v2"}, {Version: "v10"}, {Version: "9"}, {Version: "10"}, {Version: "2x"}},
			want: []string{"9", "10", "2x", "v10", "v2"},
		},
		{
			name: "step beats version",
			cps:  []Checkpoint{{Version: "1", Step: 20}, {Version: "2", Step: 10}},
			want: []string{"2", "1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.cps {
				tt.cps[i].Pushed = t0
			}
			plan, err := Policy{KeepLast: 1}.Plan(tt.cps, now)
			require.NoError(t, err)
			var got []string
			for _, d := range plan.Decisions {
				got = append(got, d.Checkpoint.Version)
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.want[len(tt.want)-1:], versions(plan.Kept()), "keep-last 1 keeps the newest")
		})
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		cps     []Checkpoint
		wantIs  error
		wantMsg string
	}{
		{
			name:    "duplicate versions",
			policy:  Policy{KeepLast: 1},
			cps:     []Checkpoint{ck(100, 0, nil), ck(200, 0, nil), {Version: "100", Step: 300}},
			wantIs:  ErrInvalidCheckpoints,
			wantMsg: `duplicate version "100" (checkpoints 0 and 2)`,
		},
		{
			name:    "empty version",
			policy:  Policy{KeepLast: 1},
			cps:     []Checkpoint{{Step: 5}},
			wantIs:  ErrInvalidCheckpoints,
			wantMsg: "checkpoint 0 has an empty version",
		},
		{
			name:    "negative step",
			policy:  Policy{KeepLast: 1},
			cps:     []Checkpoint{{Version: "x", Step: -5}},
			wantIs:  ErrInvalidCheckpoints,
			wantMsg: `version "x" has negative step -5`,
		},
		{
			name:    "policy that keeps nothing",
			policy:  Policy{},
			cps:     []Checkpoint{ck(100, 0, nil)},
			wantIs:  ErrKeepsNothing,
			wantMsg: "policy keeps nothing",
		},
		{
			name:    "invalid policy",
			policy:  Policy{KeepLast: -3},
			wantIs:  ErrInvalidPolicy,
			wantMsg: "keep-last must be >= 0, got -3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := tt.policy.Plan(tt.cps, now)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.wantIs)
			assert.ErrorContains(t, err, tt.wantMsg)
			assert.ErrorContains(t, err, "retention plan: ")
			assert.Empty(t, plan.Decisions)
		})
	}
}

func TestPlanBasics(t *testing.T) {
	t.Run("empty history", func(t *testing.T) {
		plan, err := Policy{KeepLast: 3}.Plan(nil, now)
		require.NoError(t, err)
		assert.Empty(t, plan.Decisions)
		assert.Empty(t, plan.Kept())
		assert.Empty(t, plan.Deleted())
	})

	t.Run("kept and deleted split in plan order", func(t *testing.T) {
		cps := []Checkpoint{ck(400, 0, loss(3)), ck(100, 0, loss(1)), ck(300, 0, loss(2)), ck(200, 0, loss(4))}
		plan, err := Policy{KeepLast: 1, KeepBest: 1}.Plan(cps, now)
		require.NoError(t, err)
		assert.Equal(t, []string{"100", "400"}, versions(plan.Kept()))
		assert.Equal(t, []string{"200", "300"}, versions(plan.Deleted()))
	})

	t.Run("effective policy is recorded", func(t *testing.T) {
		plan, err := Policy{KeepBest: 1, Metric: "loss"}.Plan(nil, now)
		require.NoError(t, err)
		assert.Equal(t, "eval_loss", plan.Policy.Metric)
		require.NotNil(t, plan.Policy.GreaterIsBetter)
		assert.False(t, *plan.Policy.GreaterIsBetter)
	})

	t.Run("GreaterIsBetter overrides the default", func(t *testing.T) {
		cps := []Checkpoint{ck(100, 0, loss(1)), ck(200, 0, loss(2)), ck(300, 0, loss(0.5))}
		plan, err := Policy{KeepBest: 1, GreaterIsBetter: ptr(true)}.Plan(cps, now)
		require.NoError(t, err)
		assert.Equal(t, []string{"200"}, versions(plan.Kept()))
	})

	t.Run("input is not modified", func(t *testing.T) {
		cps := []Checkpoint{ck(300, 0, nil), ck(100, 0, nil, "b", "a"), ck(200, 0, nil)}
		plan, err := Policy{KeepLast: 1}.Plan(cps, now)
		require.NoError(t, err)
		require.Len(t, plan.Decisions, 3)
		assert.Equal(t, []string{"300", "100", "200"}, versions(cps))
		assert.Equal(t, []string{"b", "a"}, cps[1].Tags)
	})

	t.Run("keep-within boundary is inclusive", func(t *testing.T) {
		cps := []Checkpoint{ck(100, 2*time.Hour, nil), ck(200, 2*time.Hour+time.Nanosecond, nil)}
		plan, err := Policy{KeepWithin: 2 * time.Hour}.Plan(cps, now)
		require.NoError(t, err)
		assert.Equal(t, []string{"100"}, versions(plan.Kept()))
	})
}
