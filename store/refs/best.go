package refs

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"

	"github.com/ckptdev/ckpt/retention"
)

// Which version NAME@best is (docs/format.md, section 5, "Resolving
// NAME@REF"): the best record by a metric, in a direction. The metric is,
// in this order, the one a reader was asked for (BestRule), else the one
// of NAME's stored retention policy (with its direction), else eval_loss.
// A direction not given is Trainer's default for the metric
// (retention.GreaterIsBetter: greater is better unless the name ends in
// "loss"). A version without the metric is never best; ties go to the
// earliest step (Trainer moves its best only on a strict improvement).

// BestRule is a reader's explicit choice of the metric NAME@best ranks
// by. The zero BestRule chooses nothing: each NAME's stored policy, else
// eval_loss, decides.
type BestRule struct {
	// Metric is the metric, with or without the "eval_" prefix
	// (retention.NormalizeMetric); "" for no explicit choice.
	Metric string
	// GreaterIsBetter overrides the metric's default direction; nil keeps
	// it. It needs Metric.
	GreaterIsBetter *bool
}

// ErrInvalidBestRule marks a BestRule that cannot be applied.
var ErrInvalidBestRule = errors.New("invalid rule for best")

// Validate reports whether r can be applied: a direction needs a metric,
// and a metric must name something after the "eval_" prefix.
func (r BestRule) Validate() error {
	switch {
	case r.Metric == "" && r.GreaterIsBetter != nil:
		return fmt.Errorf("%w: a direction (greater or lower is better) needs a metric", ErrInvalidBestRule)
	case r.Metric != "" && retention.NormalizeMetric(r.Metric) == "eval_":
		return fmt.Errorf("%w: metric %q names no metric after the eval_ prefix", ErrInvalidBestRule, r.Metric)
	}
	return nil
}

// BestSource says where the metric of a BestBy comes from.
type BestSource string

// The sources of a BestBy, in the order they are tried.
const (
	BestFromRule    BestSource = "explicit" // the reader's BestRule
	BestFromPolicy  BestSource = "policy"   // NAME's stored retention policy
	BestFromDefault BestSource = "default"  // eval_loss, lower is better
)

// BestBy is the metric and direction NAME@best ranks by, and why.
type BestBy struct {
	Metric          string // normalized: "eval_loss", "eval_accuracy", ...
	GreaterIsBetter bool
	Source          BestSource
}

// Direction is "greater is better" or "lower is better".
func (b BestBy) Direction() string {
	if b.GreaterIsBetter {
		return "greater is better"
	}
	return "lower is better"
}

// String says it in words, e.g. "eval_accuracy (greater is better; from
// the stored retention policy)".
func (b BestBy) String() string {
	from := map[BestSource]string{
		BestFromRule:    "as asked",
		BestFromPolicy:  "from the stored retention policy",
		BestFromDefault: "the default",
	}[b.Source]
	return fmt.Sprintf("%s (%s; %s)", b.Metric, b.Direction(), from)
}

// BestBy returns what NAME@best ranks by in this catalog: c.Rule's
// metric if it has one, else NAME's stored retention policy's, else
// eval_loss. A stored policy that could not be read or verified (it is in
// c.Problems) is an error naming it, unless c.Rule decides: the metric
// is then unknown. A catalog read without policies ranks by c.Rule or
// eval_loss.
func (c *Catalog) BestBy(name string) (BestBy, error) {
	if c.Rule.Metric != "" {
		m := retention.NormalizeMetric(c.Rule.Metric)
		by := BestBy{Metric: m, GreaterIsBetter: retention.GreaterIsBetter(m), Source: BestFromRule}
		if c.Rule.GreaterIsBetter != nil {
			by.GreaterIsBetter = *c.Rule.GreaterIsBetter
		}
		return by, nil
	}
	if p := c.ProblemAt(PolicyKey(name, PolicyRetention)); p != nil {
		return BestBy{}, fmt.Errorf("%s@best ranks by the metric of its stored retention policy, which cannot be read: %w", name, p.Err)
	}
	if p, ok := c.Policies[name]; ok {
		m := retention.NormalizeMetric(p.Metric)
		by := BestBy{Metric: m, GreaterIsBetter: retention.GreaterIsBetter(m), Source: BestFromPolicy}
		if p.GreaterIsBetter != nil {
			by.GreaterIsBetter = *p.GreaterIsBetter
		}
		return by, nil
	}
	return BestBy{Metric: retention.DefaultMetric, Source: BestFromDefault}, nil
}

// Best returns NAME's best record by what c.BestBy(name) says; ok is false
// when no version of NAME has the metric recorded.
func (c *Catalog) Best(name string) (rec Record, by BestBy, ok bool, err error) {
	by, err = c.BestBy(name)
	if err != nil {
		return Record{}, by, false, err
	}
	rec, ok = BestRecordBy(c.Records[name], by)
	return rec, by, ok, nil
}

// resolveBest is Resolve for "best".
func (c *Catalog) resolveBest(name string) (Record, error) {
	rec, by, ok, err := c.Best(name)
	if err != nil {
		return Record{}, err
	}
	if !ok {
		msg := fmt.Sprintf("%v: %s@best: no version of %s has %s recorded", ErrNoCheckpoint, name, name, by.Metric)
		if by.Source != BestFromDefault {
			msg += fmt.Sprintf(" (best by %s)", by)
		}
		return Record{}, &notFoundError{noMetric: true, msg: msg}
	}
	return rec, nil
}

// BestRecordBy returns the best of recs by metric and direction: the
// first by step of those with the best finite value.
func BestRecordBy(recs []Record, by BestBy) (Record, bool) {
	best, ok := retention.Best(Checkpoints(recs, nil), retention.NormalizeMetric(by.Metric), by.GreaterIsBetter)
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

// TrainerBest is what Trainer's trainer_state.json said about its best
// checkpoint when the checkpoint was saved (best_metric,
// best_global_step, best_model_checkpoint), with the metric's name when
// it can be told. Every field is optional: older transformers do not
// write best_global_step, and none is written before the first
// evaluation with load_best_model_at_end or metric_for_best_model set.
type TrainerBest struct {
	// Value is best_metric.
	Value *float64 `json:"best_metric,omitempty"`
	// Metric names the metric best_metric is a value of. trainer_state.json
	// does not record metric_for_best_model: it is the eval metric logged
	// at the best step whose value equals best_metric, when exactly one
	// does; "" when it cannot be told.
	Metric string `json:"metric,omitempty"`
	// GlobalStep is best_global_step (transformers 4.47 and later).
	GlobalStep *int64 `json:"best_global_step,omitempty"`
	// ModelCheckpoint is best_model_checkpoint: the folder Trainer saved
	// its best checkpoint to, as the training script named it.
	ModelCheckpoint string `json:"best_model_checkpoint,omitempty"`
}

// IsZero reports whether t says nothing.
func (t *TrainerBest) IsZero() bool {
	return t == nil || t.Value == nil && t.Metric == "" && t.GlobalStep == nil && t.ModelCheckpoint == ""
}

// Step is Trainer's best step: best_global_step, else the N of a
// best_model_checkpoint folder named checkpoint-N.
func (t *TrainerBest) Step() (int64, bool) {
	if t == nil {
		return 0, false
	}
	if t.GlobalStep != nil {
		return *t.GlobalStep, true
	}
	n, ok := strings.CutPrefix(path.Base(strings.ReplaceAll(t.ModelCheckpoint, `\`, "/")), "checkpoint-")
	if !ok {
		return 0, false
	}
	step, err := strconv.ParseInt(n, 10, 64)
	if err != nil || step < 0 {
		return 0, false
	}
	return step, true
}

// BestCheck compares Trainer's best, as recorded in one checkpoint, with
// the checkpoint ckpt's rule picks among the versions up to that
// checkpoint's step (Trainer had seen no later evaluation when it saved).
type BestCheck struct {
	// By is what ckpt ranks by.
	By BestBy
	// Ckpt is ckpt's pick among NAME's versions whose step is at most the
	// checkpoint's; nil when none has the metric.
	Ckpt *Record
	// Latest tells whether Ckpt is also NAME@best: the checkpoint is the
	// highest step of NAME.
	Latest bool
	// Trainer is Trainer's best as the checkpoint recorded it; nil when
	// it recorded none.
	Trainer *TrainerBest
	// TrainerRecord is NAME's version at Trainer's best step, if any.
	TrainerRecord *Record
	// Agree is set when both picked the same step. It is meaningful only
	// when Ckpt and Trainer's step are both known.
	Agree bool
	// Comparable tells whether both picks are known.
	Comparable bool
	// Why explains a disagreement in words ("" when they agree or cannot
	// be compared).
	Why string
}

// CheckBest compares rec's recorded Trainer best with ckpt's pick under
// c.BestBy among the versions of rec's NAME up to rec's step.
func (c *Catalog) CheckBest(rec Record) (BestCheck, error) {
	by, err := c.BestBy(rec.Name)
	if err != nil {
		return BestCheck{}, err
	}
	chk := BestCheck{By: by, Latest: true}
	var upTo []Record
	for _, r := range c.Records[rec.Name] {
		if r.Step <= rec.Step {
			upTo = append(upTo, r)
		} else {
			chk.Latest = false
		}
	}
	if best, ok := BestRecordBy(upTo, by); ok {
		chk.Ckpt = &best
	}
	if rec.TrainerBest.IsZero() {
		return chk, nil
	}
	chk.Trainer = rec.TrainerBest
	step, ok := rec.TrainerBest.Step()
	if !ok {
		return chk, nil
	}
	for _, r := range c.Records[rec.Name] {
		if r.Step == step {
			r := r
			chk.TrainerRecord = &r
			break
		}
	}
	if chk.Ckpt == nil {
		return chk, nil
	}
	chk.Comparable = true
	chk.Agree = chk.Ckpt.Step == step
	if chk.Agree {
		return chk, nil
	}
	var why []string
	if m := rec.TrainerBest.Metric; m != "" && m != by.Metric {
		why = append(why, fmt.Sprintf("Trainer ranked by %s, ckpt by %s", m, by.Metric))
	}
	if chk.TrainerRecord == nil {
		why = append(why, fmt.Sprintf("step %d is not a version of %s (not pushed, or removed)", step, rec.Name))
	} else if _, has := chk.TrainerRecord.Metrics[by.Metric]; !has {
		why = append(why, fmt.Sprintf("%s@%s has no %s recorded", rec.Name, chk.TrainerRecord.Version, by.Metric))
	}
	if len(why) == 0 {
		why = append(why, fmt.Sprintf("by %s, %s@%s is better (%s)", by.Metric, rec.Name, chk.Ckpt.Version, by.Direction()))
		if v, ok := rec.TrainerBest.valueMismatch(chk.TrainerRecord, by.Metric); ok {
			why[0] += fmt.Sprintf("; Trainer's best_metric %s is not the %s recorded at step %d", v, by.Metric, step)
		}
	}
	chk.Why = strings.Join(why, "; ")
	return chk, nil
}

// valueMismatch reports Trainer's best_metric, formatted, when it differs
// from the metric recorded in at.
func (t *TrainerBest) valueMismatch(at *Record, metric string) (string, bool) {
	if t.Value == nil || at == nil {
		return "", false
	}
	v, ok := at.Metrics[metric]
	if !ok || v == *t.Value || math.IsNaN(v) && math.IsNaN(*t.Value) {
		return "", false
	}
	return strconv.FormatFloat(*t.Value, 'g', -1, 64), true
}
