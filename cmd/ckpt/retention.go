package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/refs"
)

// policyFlags are the retention policy flags shared by plan, apply and set.
type policyFlags struct {
	keepLast, keepBest int
	metric             string
	greater            bool
	keepEvery          int64
	keepWithin         string
	flags              *pflag.FlagSet
}

func (p *policyFlags) register(f *pflag.FlagSet) {
	p.flags = f
	f.IntVar(&p.keepLast, "keep-last", 0, "keep the K newest checkpoints")
	f.IntVar(&p.keepBest, "keep-best", 0, "keep the N best checkpoints by --metric")
	f.StringVar(&p.metric, "metric", "eval_loss", "metric for --keep-best, with or without the eval_ prefix")
	f.BoolVar(&p.greater, "greater-is-better", false, "higher metric is better (default: true unless the metric name ends in loss)")
	f.Int64Var(&p.keepEvery, "keep-every", 0, "keep checkpoints whose step is divisible by S")
	f.StringVar(&p.keepWithin, "keep-within", "", "keep checkpoints pushed within this duration (e.g. 36h, 7d)")
}

// given reports whether any policy flag was set on the command line.
func (p *policyFlags) given() bool {
	for _, n := range []string{"keep-last", "keep-best", "metric", "greater-is-better", "keep-every", "keep-within"} {
		if p.flags.Changed(n) {
			return true
		}
	}
	return false
}

func (p *policyFlags) policy() (retention.Policy, error) {
	pol := retention.Policy{KeepLast: p.keepLast, KeepBest: p.keepBest, Metric: p.metric, KeepEvery: p.keepEvery}
	if p.flags.Changed("greater-is-better") {
		g := p.greater
		pol.GreaterIsBetter = &g
	}
	if p.keepWithin != "" {
		d, err := parseDuration(p.keepWithin)
		if err != nil {
			return pol, usagef("--keep-within %q: %v", p.keepWithin, err)
		}
		pol.KeepWithin = d
	}
	if err := pol.Validate(); err != nil {
		return pol, usageError{err}
	}
	return pol, nil
}

// parseDuration accepts Go durations plus a whole number of days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("want a duration like 36h or 7d")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a duration like 36h or 7d")
	}
	return d, nil
}

func (a *app) retentionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Keep the best plus the last k checkpoints, across the whole registry",
		Long: `Retention decides which checkpoints of a NAME to keep: a checkpoint is kept if any
rule keeps it (--keep-last, --keep-best by --metric, --keep-every, --keep-within),
and tagged checkpoints are always kept. Checkpoints without the metric are never
ranked as best.

Trainer's save_total_limit=N with load_best_model_at_end keeps the best plus the
N-1 newest (N newest when the best is among them): --keep-last N-1 --keep-best 1
is the same promise, except that when the best is among the newest it keeps N-1.

apply removes refs only; run "ckpt gc" to free the data. A cron line:
  ckpt retention apply --all && ckpt gc`,
	}
	cmd.AddCommand(a.retentionPlanCommand(), a.retentionApplyCommand(), a.retentionSetCommand())
	return cmd
}

// planFor returns the plan of NAME under the flags, or under its stored
// policy when no policy flag was given.
func (a *app) planFor(cmd *cobra.Command, r *store.Registry, name string, pf *policyFlags) (retention.Plan, bool, error) {
	var pol retention.Policy
	if pf.given() {
		p, err := pf.policy()
		if err != nil {
			return retention.Plan{}, false, err
		}
		pol = p
	} else {
		p, ok, err := r.Policy(cmd.Context(), name)
		if err != nil {
			return retention.Plan{}, false, err
		}
		if !ok {
			return retention.Plan{}, false, nil
		}
		pol = p
	}
	plan, err := r.RetentionPlan(cmd.Context(), name, pol)
	return plan, true, err
}

func (a *app) retentionPlanCommand() *cobra.Command {
	var pf policyFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plan NAME [policy flags]",
		Short: "Print what a policy keeps and deletes, with every reason (changes nothing)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := refs.CheckName(args[0]); err != nil {
				return err
			}
			r, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			plan, ok, err := a.planFor(cmd, r, args[0], &pf)
			if err != nil {
				return err
			}
			if !ok {
				return usagef("%s has no stored retention policy: give policy flags or run `ckpt retention set %s ...`", args[0], args[0])
			}
			if asJSON {
				return a.printJSON(newRetentionPlanOutput(args[0], plan))
			}
			a.printPlan(args[0], plan)
			return nil
		},
	}
	pf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON (docs/cli-json.md)")
	return cmd
}

func (a *app) retentionApplyCommand() *cobra.Command {
	var pf policyFlags
	var all, asJSON, allowAll bool
	cmd := &cobra.Command{
		Use:   "apply (NAME [policy flags] | --all)",
		Short: "Remove the refs a policy deletes (data is freed by gc)",
		Long: `Remove the checkpoints the plan deletes. With --all, every NAME is planned with
its stored policy (see "ckpt retention set"); NAMEs without one are skipped.
A plan that would delete every checkpoint of a NAME is refused unless
--allow-delete-all.`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return usagef("retention apply takes NAME or --all")
			}
			if all && pf.given() {
				return usagef("--all applies each NAME's stored policy; policy flags go with a NAME")
			}
			r, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			names := args
			if all {
				if names, err = r.Names(cmd.Context()); err != nil {
					return err
				}
			} else if err := refs.CheckName(args[0]); err != nil {
				return err
			}
			start := time.Now()
			out := retentionApplyOutput{Schema: schemaName("retention.apply"), Names: []retentionAppliedOutput{}}
			for _, name := range names {
				plan, ok, err := a.planFor(cmd, r, name, &pf)
				if err != nil {
					return err
				}
				if !ok {
					if !all {
						return usagef("%s has no stored retention policy: give policy flags or run `ckpt retention set %s ...`", name, name)
					}
					if !asJSON {
						a.printf("%s: no retention policy stored, skipped\n", name)
					}
					out.Names = append(out.Names, newRetentionSkipped(name))
					continue
				}
				if len(plan.Kept()) == 0 && !allowAll {
					return fmt.Errorf("the plan for %s deletes every checkpoint (%s); refusing without --allow-delete-all", name, plan.Policy)
				}
				removed, err := r.ApplyPlan(cmd.Context(), name, plan)
				out.DeletedCheckpoints += len(removed)
				if err != nil {
					return err
				}
				out.Names = append(out.Names, newRetentionApplied(name, plan, removed))
				if !asJSON {
					a.printf("%s: kept %d, removed %d %v\n", name, len(plan.Kept()), len(removed), removed)
				}
			}
			if asJSON {
				out.DurationSeconds = time.Since(start).Seconds()
				return a.printJSON(out)
			}
			if out.DeletedCheckpoints > 0 {
				a.printf("run `ckpt gc` to free the data of removed checkpoints\n")
			}
			return nil
		},
	}
	pf.register(cmd.Flags())
	cmd.Flags().BoolVar(&all, "all", false, "apply every NAME's stored policy")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON summary (docs/cli-json.md)")
	cmd.Flags().BoolVar(&allowAll, "allow-delete-all", false, "apply a plan even if it keeps nothing")
	return cmd
}

func (a *app) retentionSetCommand() *cobra.Command {
	var pf policyFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "set NAME [policy flags]",
		Short: "Store NAME's default retention policy in the registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := refs.CheckName(args[0]); err != nil {
				return err
			}
			if !pf.given() {
				return usagef("retention set needs policy flags (--keep-last, --keep-best, ...)")
			}
			pol, err := pf.policy()
			if err != nil {
				return err
			}
			r, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			if err := r.SetPolicy(cmd.Context(), args[0], pol); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(retentionSetOutput{Schema: schemaName("retention.set"), Name: args[0], Policy: newPolicyOutput(pol)})
			}
			a.printf("%s: retention policy set: %s\n", args[0], pol)
			return nil
		},
	}
	pf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the stored policy as JSON (docs/cli-json.md)")
	return cmd
}

func (a *app) printPlan(name string, plan retention.Plan) {
	a.printf("%s: %s\n", name, plan.Policy)
	for _, d := range plan.Decisions {
		verdict := "keep  "
		if !d.Keep {
			verdict = "delete"
		}
		a.printf("  %s %-12s %s\n", verdict, d.Checkpoint.Version, strings.Join(d.Reasons, "; "))
	}
	a.printf("  kept %d, deleted %d\n", len(plan.Kept()), len(plan.Deleted()))
}
