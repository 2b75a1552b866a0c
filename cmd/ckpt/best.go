package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/store/refs"
)

// bestFlags choose what NAME@best ranks by, for every command that
// resolves it (pull, show, tag, rm, diff) and for ls's best marker.
type bestFlags struct {
	metric  string
	greater bool
	lower   bool
}

func (f *bestFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.metric, "best-by", "", "metric NAME@best ranks by, e.g. eval_accuracy or accuracy (default: NAME's stored retention policy's metric, else eval_loss)")
	fs.BoolVar(&f.greater, "greater-is-better", false, "with --best-by: greater values of the metric are better (default: unless its name ends in loss, as Trainer decides)")
	fs.BoolVar(&f.lower, "lower-is-better", false, "with --best-by: lower values of the metric are better")
}

// rule is the refs.BestRule the flags ask for, or a usage error.
func (f *bestFlags) rule() (refs.BestRule, error) {
	r := refs.BestRule{Metric: strings.TrimSpace(f.metric)}
	switch {
	case f.greater && f.lower:
		return refs.BestRule{}, usagef("--greater-is-better and --lower-is-better exclude each other")
	case (f.greater || f.lower) && r.Metric == "":
		return refs.BestRule{}, usagef("--greater-is-better and --lower-is-better need --best-by METRIC")
	case f.greater:
		r.GreaterIsBetter = &f.greater
	case f.lower:
		greater := false
		r.GreaterIsBetter = &greater
	}
	if err := r.Validate(); err != nil {
		return refs.BestRule{}, usagef("--best-by %q: %v", f.metric, err)
	}
	return r, nil
}

// bestByText says what NAME@best ranks by, as the CLI words it.
func bestByText(by refs.BestBy) string {
	from := map[refs.BestSource]string{
		refs.BestFromRule:    "--best-by",
		refs.BestFromPolicy:  "NAME's retention policy",
		refs.BestFromDefault: "default",
	}[by.Source]
	return fmt.Sprintf("%s, %s (%s)", textsafe.Name(by.Metric), by.Direction(), from)
}

// formatMetric is a metric value as ls and show print it.
func formatMetric(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// trainerBestText is Trainer's recorded best in words, e.g.
// "best_metric 0.91 (eval_accuracy) at step 400, out/checkpoint-400".
func trainerBestText(t *refs.TrainerBest) string {
	var parts []string
	if t.Value != nil {
		s := "best_metric " + formatMetric(*t.Value)
		if t.Metric != "" {
			s += " (" + textsafe.Name(t.Metric) + ")"
		}
		parts = append(parts, s)
	}
	if t.GlobalStep != nil {
		parts = append(parts, fmt.Sprintf("best_global_step %d", *t.GlobalStep))
	}
	if t.ModelCheckpoint != "" {
		parts = append(parts, "best_model_checkpoint "+textsafe.Name(t.ModelCheckpoint))
	}
	return strings.Join(parts, ", ")
}
