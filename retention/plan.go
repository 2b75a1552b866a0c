package retention

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidCheckpoints is wrapped by the error Policy.Plan returns when the
// checkpoint records themselves are unusable (duplicate or empty versions,
// negative steps).
var ErrInvalidCheckpoints = errors.New("invalid checkpoint records")

// ReasonDeleted is the single reason given for a checkpoint no rule keeps.
const ReasonDeleted = "no rule keeps it"

// Decision is the verdict on one checkpoint.
//
// Reasons lists every reason the checkpoint is kept, in this order:
// "last K"; "best METRIC=V" for the best, "best #R METRIC=V" for the R-th
// best when KeepBest > 1; "tag NAME" per tag; "every S"; "within D". A
// deleted checkpoint has the single reason ReasonDeleted. When KeepBest > 0
// and the checkpoint cannot be ranked, a note follows, e.g.
// "no eval_loss recorded (not ranked for best)".
type Decision struct {
	Checkpoint Checkpoint
	Keep       bool
	Reasons    []string
}

// Plan is the outcome of applying a Policy to one model name's checkpoints.
type Plan struct {
	// Policy is the effective policy: Metric normalized and GreaterIsBetter
	// filled in.
	Policy Policy
	// Decisions holds one decision per input checkpoint, oldest first:
	// ordered by Step, then Version, then Pushed.
	Decisions []Decision
}

// Kept returns the checkpoints the plan keeps, oldest first.
func (pl Plan) Kept() []Checkpoint { return pl.filter(true) }

// Deleted returns the checkpoints the plan deletes, oldest first.
func (pl Plan) Deleted() []Checkpoint { return pl.filter(false) }

func (pl Plan) filter(keep bool) []Checkpoint {
	var out []Checkpoint
	for _, d := range pl.Decisions {
		if d.Keep == keep {
			out = append(out, d.Checkpoint)
		}
	}
	return out
}

// Plan decides, for each of one model name's checkpoints, whether p keeps it.
// It neither modifies cps nor looks at the clock: now is only used by
// KeepWithin. Decisions hold copies of the checkpoints that share their
// Metrics maps and Tags slices with cps. It fails if p is invalid (see Validate) or if two checkpoints
// share a Version, a Version is empty or a Step is negative.
func (p Policy) Plan(cps []Checkpoint, now time.Time) (Plan, error) {
	if err := p.Validate(); err != nil {
		return Plan{}, fmt.Errorf("retention plan: %w", err)
	}
	if err := checkRecords(cps); err != nil {
		return Plan{}, fmt.Errorf("retention plan: %w", err)
	}
	eff := p.effective()
	greater := *eff.GreaterIsBetter

	sorted := slices.Clone(cps)
	slices.SortFunc(sorted, compareOrder)
	n := len(sorted)
	reasons := make([][]string, n)
	notes := make([]string, n)

	if eff.KeepLast > 0 {
		for i := max(0, n-eff.KeepLast); i < n; i++ {
			reasons[i] = append(reasons[i], fmt.Sprintf("last %d", eff.KeepLast))
		}
	}

	if eff.KeepBest > 0 {
		type ranked struct {
			idx int
			v   float64
		}
		var rs []ranked
		for i, cp := range sorted {
			v, ok, note := rankable(cp, eff.Metric, greater)
			if !ok {
				notes[i] = note
				continue
			}
			rs = append(rs, ranked{i, v})
		}
		// Better first; equal values keep plan order, so the earliest
		// checkpoint reaching a value outranks later ones, as in Trainer.
		slices.SortStableFunc(rs, func(a, b ranked) int {
			if greater {
				return cmp.Compare(b.v, a.v)
			}
			return cmp.Compare(a.v, b.v)
		})
		for r, x := range rs[:min(eff.KeepBest, len(rs))] {
			reason := fmt.Sprintf("best %s=%s", eff.Metric, formatValue(x.v))
			if eff.KeepBest > 1 && r > 0 {
				reason = fmt.Sprintf("best #%d %s=%s", r+1, eff.Metric, formatValue(x.v))
			}
			reasons[x.idx] = append(reasons[x.idx], reason)
		}
	}

	for i, cp := range sorted {
		seen := map[string]bool{}
		for _, t := range cp.Tags {
			if strings.TrimSpace(t) == "" || seen[t] {
				continue
			}
			seen[t] = true
			reasons[i] = append(reasons[i], "tag "+t)
		}
		if eff.KeepEvery > 0 && cp.Step > 0 && cp.Step%eff.KeepEvery == 0 {
			reasons[i] = append(reasons[i], fmt.Sprintf("every %d", eff.KeepEvery))
		}
		if eff.KeepWithin > 0 && !cp.Pushed.IsZero() && now.Sub(cp.Pushed) <= eff.KeepWithin {
			reasons[i] = append(reasons[i], fmt.Sprintf("within %s", eff.KeepWithin))
		}
	}

	plan := Plan{Policy: eff, Decisions: make([]Decision, n)}
	for i, cp := range sorted {
		d := Decision{Checkpoint: cp, Keep: len(reasons[i]) > 0, Reasons: reasons[i]}
		if !d.Keep {
			d.Reasons = []string{ReasonDeleted}
		}
		if notes[i] != "" {
			d.Reasons = append(d.Reasons, notes[i])
		}
		plan.Decisions[i] = d
	}
	return plan, nil
}

// Best returns the best checkpoint by metric (normalized with
// NormalizeMetric) in the given direction; ok is false when no checkpoint
// can be ranked. Checkpoints without the metric, with NaN, or with the worst
// infinity (+Inf when lower is better, -Inf when greater is) are not ranked:
// Trainer starts best_metric at that infinity and only replaces it on strict
// improvement. For the same reason ties go to the earliest checkpoint
// (smallest Step, then Version, then Pushed), the one Trainer would have
// recorded first.
func Best(cps []Checkpoint, metric string, greaterIsBetter bool) (best Checkpoint, ok bool) {
	metric = NormalizeMetric(metric)
	var bestV float64
	for _, cp := range cps {
		v, rank, _ := rankable(cp, metric, greaterIsBetter)
		if !rank {
			continue
		}
		if !ok || better(v, bestV, greaterIsBetter) ||
			(v == bestV && compareOrder(cp, best) < 0) {
			best, bestV, ok = cp, v, true
		}
	}
	return best, ok
}

func better(a, b float64, greater bool) bool {
	if greater {
		return a > b
	}
	return a < b
}

// rankable returns the checkpoint's value for metric and whether it can be
// ranked for best; if not, note says why.
func rankable(cp Checkpoint, metric string, greater bool) (v float64, ok bool, note string) {
	v, found := cp.Metrics[metric]
	switch {
	case !found:
		return 0, false, fmt.Sprintf("no %s recorded (not ranked for best)", metric)
	case math.IsNaN(v):
		return 0, false, fmt.Sprintf("%s is NaN (not ranked for best)", metric)
	case greater && math.IsInf(v, -1), !greater && math.IsInf(v, 1):
		return 0, false, fmt.Sprintf("%s=%s (not ranked for best)", metric, formatValue(v))
	}
	return v, true, ""
}

func formatValue(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// checkRecords rejects checkpoint lists no plan can be made from.
func checkRecords(cps []Checkpoint) error {
	var problems []string
	first := make(map[string]int, len(cps))
	for i, cp := range cps {
		switch {
		case cp.Version == "":
			problems = append(problems, fmt.Sprintf("checkpoint %d has an empty version", i))
		case cp.Step < 0:
			problems = append(problems, fmt.Sprintf("version %q has negative step %d", cp.Version, cp.Step))
		}
		if cp.Version == "" {
			continue
		}
		if j, dup := first[cp.Version]; dup {
			problems = append(problems, fmt.Sprintf("duplicate version %q (checkpoints %d and %d)", cp.Version, j, i))
			continue
		}
		first[cp.Version] = i
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidCheckpoints, strings.Join(problems, "; "))
	}
	return nil
}

// compareOrder orders checkpoints oldest first: by Step, then Version (see
// CompareVersions), then Pushed.
func compareOrder(a, b Checkpoint) int {
	if c := cmp.Compare(a.Step, b.Step); c != 0 {
		return c
	}
	if c := CompareVersions(a.Version, b.Version); c != 0 {
		return c
	}
	return a.Pushed.Compare(b.Pushed)
}

// CompareVersions orders registry versions: numerically when both are decimal
// integers (digits only, any length), and as strings when neither is. An
// integer version sorts before a non-integer one: comparing mixed pairs as
// strings would not be transitive ("9" < "10" numerically, yet
// "10" < "2x" < "9" as strings).
func CompareVersions(a, b string) int {
	ai, bi := isDecimal(a), isDecimal(b)
	switch {
	case ai && bi:
		ta, tb := strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if c := cmp.Compare(len(ta), len(tb)); c != 0 {
			return c
		}
		if c := strings.Compare(ta, tb); c != 0 {
			return c
		}
		return strings.Compare(a, b) // "010" and "10": equal numbers, still distinct versions
	case ai:
		return -1
	case bi:
		return 1
	}
	return strings.Compare(a, b)
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
