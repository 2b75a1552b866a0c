package retention

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultMetric is the metric used when Policy.Metric is empty, as
// transformers' TrainingArguments defaults metric_for_best_model to "loss".
const DefaultMetric = "eval_loss"

// ErrInvalidPolicy is wrapped by every error Policy.Validate returns.
var ErrInvalidPolicy = errors.New("invalid retention policy")

// ErrKeepsNothing is returned by Policy.Validate when every rule is off.
var ErrKeepsNothing = fmt.Errorf("%w: policy keeps nothing: every rule is off", ErrInvalidPolicy)

// Checkpoint is one registry record of a model name's checkpoint.
type Checkpoint struct {
	Version string             // registry version string, usually the step as decimal ("1500")
	Step    int64              // training step; 0 if unknown
	Pushed  time.Time          // when it was recorded in the registry
	Metrics map[string]float64 // recorded metrics, keys like "eval_loss", "eval_accuracy"
	Tags    []string
}

// Policy says which checkpoints to keep. Every rule that is set keeps
// checkpoints; a checkpoint is kept if any rule (or a tag) keeps it.
type Policy struct {
	KeepLast        int           // keep the K newest (by Step, ties by Version order, then Pushed)
	KeepBest        int           // keep the N best by Metric
	Metric          string        // default "eval_loss"; "loss" and "eval_loss" mean the same
	GreaterIsBetter *bool         // nil: true unless the normalized metric ends in "loss"
	KeepEvery       int64         // keep steps divisible by S (0: off)
	KeepWithin      time.Duration // keep those pushed within D of now (0: off)
}

// NormalizeMetric maps a metric name to the key Trainer records it under,
// as Trainer does for metric_for_best_model: surrounding spaces are dropped,
// "" becomes "eval_loss", and a name without the "eval_" prefix gets it
// ("loss" -> "eval_loss", "accuracy" -> "eval_accuracy"; "eval_bleu" stays).
func NormalizeMetric(m string) string {
	m = strings.TrimSpace(m)
	if m == "" {
		return DefaultMetric
	}
	if !strings.HasPrefix(m, "eval_") {
		return "eval_" + m
	}
	return m
}

// GreaterIsBetter reports Trainer's default greater_is_better for a metric:
// true unless the name ends in "loss" (case-sensitive, as in
// TrainingArguments). The name is normalized first.
func GreaterIsBetter(metric string) bool {
	return !strings.HasSuffix(NormalizeMetric(metric), "loss")
}

// greater resolves the policy's direction for its metric.
func (p Policy) greater() bool {
	if p.GreaterIsBetter != nil {
		return *p.GreaterIsBetter
	}
	return GreaterIsBetter(p.Metric)
}

// effective returns p with Metric normalized and GreaterIsBetter filled in.
func (p Policy) effective() Policy {
	g := p.greater()
	p.Metric = NormalizeMetric(p.Metric)
	p.GreaterIsBetter = &g
	return p
}

// Validate reports whether the policy can be applied. Every problem found is
// listed in one error wrapping ErrInvalidPolicy; a policy with every rule off
// yields ErrKeepsNothing.
func (p Policy) Validate() error {
	var problems []string
	if p.KeepLast < 0 {
		problems = append(problems, fmt.Sprintf("keep-last must be >= 0, got %d", p.KeepLast))
	}
	if p.KeepBest < 0 {
		problems = append(problems, fmt.Sprintf("keep-best must be >= 0, got %d", p.KeepBest))
	}
	if p.KeepEvery < 0 {
		problems = append(problems, fmt.Sprintf("keep-every must be >= 0, got %d", p.KeepEvery))
	}
	if p.KeepWithin < 0 {
		problems = append(problems, fmt.Sprintf("keep-within must be >= 0, got %s", p.KeepWithin))
	}
	if NormalizeMetric(p.Metric) == "eval_" {
		problems = append(problems, fmt.Sprintf("metric %q names no metric after the eval_ prefix", p.Metric))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidPolicy, strings.Join(problems, "; "))
	}
	if p.KeepLast == 0 && p.KeepBest == 0 && p.KeepEvery == 0 && p.KeepWithin == 0 {
		return ErrKeepsNothing
	}
	return nil
}

// String describes the policy's active rules, e.g.
// "keep-last 2, keep-best 1 by eval_loss (lower is better)". A policy with
// every rule off reads "keep nothing".
func (p Policy) String() string {
	var parts []string
	if p.KeepLast != 0 {
		parts = append(parts, fmt.Sprintf("keep-last %d", p.KeepLast))
	}
	if p.KeepBest != 0 {
		dir := "lower is better"
		if p.greater() {
			dir = "greater is better"
		}
		parts = append(parts, fmt.Sprintf("keep-best %d by %s (%s)", p.KeepBest, NormalizeMetric(p.Metric), dir))
	}
	if p.KeepEvery != 0 {
		parts = append(parts, fmt.Sprintf("keep-every %d", p.KeepEvery))
	}
	if p.KeepWithin != 0 {
		parts = append(parts, fmt.Sprintf("keep-within %s", p.KeepWithin))
	}
	if len(parts) == 0 {
		return "keep nothing"
	}
	return strings.Join(parts, ", ")
}
