package retention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// randomHistory draws a history with unknown and repeated steps, integer and
// non-integer versions, missing, tied, NaN and infinite metrics, real and
// blank tags, and push times in the past, the future or unknown.
func randomHistory(rng *rand.Rand) []Checkpoint {
	losses := []float64{0.5, 1.0, 1.0, 1.5, 2.0, math.NaN(), math.Inf(1)}
	accs := []float64{0.5, 0.7, 0.9, 0.9, math.NaN(), math.Inf(-1)}
	used := map[string]bool{}
	var cps []Checkpoint
	for range rng.IntN(25) {
		step := int64(rng.IntN(31)) * 100 // 0: unknown
		version := strconv.FormatInt(step+int64(rng.IntN(3)), 10)
		if rng.IntN(4) == 0 {
			version = "v" + strconv.Itoa(rng.IntN(40))
		}
		if used[version] {
			continue
		}
		used[version] = true
		cp := Checkpoint{Version: version, Step: step, Pushed: now.Add(-time.Duration(rng.IntN(96*60)) * time.Minute)}
		switch rng.IntN(20) {
		case 0:
			cp.Pushed = time.Time{}
		case 1:
			cp.Pushed = now.Add(time.Hour)
		}
		if rng.IntN(10) < 8 {
			cp.Metrics = map[string]float64{}
			if rng.IntN(10) < 7 {
				cp.Metrics["eval_loss"] = losses[rng.IntN(len(losses))]
			}
			if rng.IntN(10) < 6 {
				cp.Metrics["eval_accuracy"] = accs[rng.IntN(len(accs))]
			}
		}
		switch rng.IntN(10) {
		case 0:
			cp.Tags = []string{"prod"}
		case 1:
			cp.Tags = []string{"", " "}
		}
		cps = append(cps, cp)
	}
	return cps
}

func randomPolicy(rng *rand.Rand) Policy {
	p := Policy{
		KeepLast:   rng.IntN(5),
		KeepBest:   rng.IntN(4),
		Metric:     []string{"", "loss", "eval_loss", "accuracy", "eval_accuracy"}[rng.IntN(5)],
		KeepEvery:  []int64{0, 0, 500, 1000}[rng.IntN(4)],
		KeepWithin: []time.Duration{0, 0, 24 * time.Hour, 48 * time.Hour}[rng.IntN(4)],
	}
	switch rng.IntN(4) {
	case 0:
		p.GreaterIsBetter = ptr(true)
	case 1:
		p.GreaterIsBetter = ptr(false)
	}
	return p
}

// oracleKeeps decides by brute force, rule by rule, whether p keeps cp.
func oracleKeeps(p Policy, cps []Checkpoint, cp Checkpoint) bool {
	metric := NormalizeMetric(p.Metric)
	greater := GreaterIsBetter(metric)
	if p.GreaterIsBetter != nil {
		greater = *p.GreaterIsBetter
	}
	value := func(c Checkpoint) (float64, bool) {
		v, ok := c.Metrics[metric]
		worst := math.Inf(1)
		if greater {
			worst = math.Inf(-1)
		}
		return v, ok && !math.IsNaN(v) && v != worst
	}

	for _, tag := range cp.Tags {
		if strings.TrimSpace(tag) != "" {
			return true
		}
	}
	if p.KeepWithin > 0 && !cp.Pushed.IsZero() && !cp.Pushed.Before(now.Add(-p.KeepWithin)) {
		return true
	}
	if p.KeepEvery > 0 && cp.Step > 0 && cp.Step%p.KeepEvery == 0 {
		return true
	}
	if p.KeepLast > 0 {
		newer := 0
		for _, o := range cps {
			if compareOrder(o, cp) > 0 {
				newer++
			}
		}
		if newer < p.KeepLast {
			return true
		}
	}
	if v, ok := value(cp); ok && p.KeepBest > 0 {
		ahead := 0
		for _, o := range cps {
			ov, ook := value(o)
			if ook && (better(ov, v, greater) || (ov == v && compareOrder(o, cp) < 0)) {
				ahead++
			}
		}
		if ahead < p.KeepBest {
			return true
		}
	}
	return false
}

type verdict struct {
	Version string
	Keep    bool
	Reasons []string
}

func verdicts(pl Plan) []verdict {
	out := make([]verdict, 0, len(pl.Decisions))
	for _, d := range pl.Decisions {
		out = append(out, verdict{d.Checkpoint.Version, d.Keep, d.Reasons})
	}
	return out
}

func TestPlanProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	invalid := 0
	for iter := range 3000 {
		cps := randomHistory(rng)
		p := randomPolicy(rng)
		msg := fmt.Sprintf("iter %d: policy %+v (%s), %d checkpoints", iter, p, p, len(cps))

		plan, err := p.Plan(cps, now)
		if p.KeepLast == 0 && p.KeepBest == 0 && p.KeepEvery == 0 && p.KeepWithin == 0 {
			require.ErrorIs(t, err, ErrKeepsNothing, msg)
			invalid++
			continue
		}
		require.NoError(t, err, msg)
		require.Len(t, plan.Decisions, len(cps), msg)

		// kept ∪ deleted = input, disjoint.
		kept, deleted := versions(plan.Kept()), versions(plan.Deleted())
		all := append(slices.Clone(kept), deleted...)
		slices.Sort(all)
		require.Equal(t, len(all), len(slices.Compact(slices.Clone(all))), "kept and deleted overlap: "+msg)
		want := versions(cps)
		slices.Sort(want)
		require.Equal(t, want, all, msg)

		// Oldest first.
		require.True(t, slices.IsSortedFunc(plan.Decisions, func(a, b Decision) int {
			return compareOrder(a.Checkpoint, b.Checkpoint)
		}), msg)
		for i := 1; i < len(plan.Decisions); i++ {
			require.LessOrEqual(t, plan.Decisions[i-1].Checkpoint.Step, plan.Decisions[i].Checkpoint.Step, msg)
		}

		for _, d := range plan.Decisions {
			cp := d.Checkpoint
			dmsg := fmt.Sprintf("%s; version %q reasons %q", msg, cp.Version, d.Reasons)
			// Kept iff some rule keeps it.
			require.Equal(t, oracleKeeps(p, cps, cp), d.Keep, dmsg)
			require.NotEmpty(t, d.Reasons, dmsg)
			if d.Keep {
				require.NotContains(t, d.Reasons, ReasonDeleted, dmsg)
			} else {
				require.Equal(t, ReasonDeleted, d.Reasons[0], dmsg)
				require.LessOrEqual(t, len(d.Reasons), 2, dmsg)
			}
			// Tagged checkpoints are always kept.
			if slices.ContainsFunc(cp.Tags, func(s string) bool { return strings.TrimSpace(s) != "" }) {
				require.True(t, d.Keep, dmsg)
				require.Contains(t, d.Reasons, "tag prod", dmsg)
			}
			// Unranked checkpoints say so when keep-best is on.
			if _, has := cp.Metrics[plan.Policy.Metric]; !has && p.KeepBest > 0 {
				require.Contains(t, d.Reasons, fmt.Sprintf("no %s recorded (not ranked for best)", plan.Policy.Metric), dmsg)
			}
		}

		// The best is never deleted.
		if best, ok := Best(cps, plan.Policy.Metric, *plan.Policy.GreaterIsBetter); ok && p.KeepBest >= 1 {
			require.Contains(t, kept, best.Version, msg)
		}
		// The latest is never deleted with keep-last.
		if p.KeepLast >= 1 && len(cps) > 0 {
			latest := slices.MaxFunc(cps, compareOrder)
			require.Contains(t, kept, latest.Version, msg)
		}

		// Applying the plan twice deletes nothing the second time.
		again, err := p.Plan(plan.Kept(), now)
		require.NoError(t, err, msg)
		require.Empty(t, again.Deleted(), msg)

		// The input order does not matter.
		shuffled := slices.Clone(cps)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		other, err := p.Plan(shuffled, now)
		require.NoError(t, err, msg)
		require.Equal(t, verdicts(plan), verdicts(other), msg)
	}
	assert.Less(t, invalid, 3000/4, "too few valid policies drawn to mean anything")
}

// TestBestAgreesWithPlan checks that keep-best 1 keeps exactly Best's answer.
func TestBestAgreesWithPlan(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 2000 {
		cps := randomHistory(rng)
		for i := range cps {
			cps[i].Tags = nil // tags would keep more than the best
		}
		p := Policy{KeepBest: 1, Metric: []string{"loss", "accuracy"}[rng.IntN(2)]}
		plan, err := p.Plan(cps, now)
		require.NoError(t, err)
		best, ok := Best(cps, p.Metric, GreaterIsBetter(p.Metric))
		if !ok {
			require.Empty(t, plan.Kept(), "iter %d", iter)
			continue
		}
		require.Equal(t, []string{best.Version}, versions(plan.Kept()), "iter %d", iter)
	}
}
