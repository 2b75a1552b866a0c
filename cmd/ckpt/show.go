package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/store/refs"
)

func (a *app) showCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show NAME@REF",
		Short: "Show one checkpoint: its record and files",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, ref, err := parseRef(args[0], false)
			if err != nil {
				return err
			}
			r, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			c, err := r.Catalog(cmd.Context(), name)
			if err != nil {
				return err
			}
			rec, err := c.Resolve(name, ref)
			if err != nil {
				return err
			}
			m, err := r.Manifest(cmd.Context(), rec.Manifest)
			if err != nil {
				return err
			}
			tags := c.TagsOf(name, rec.Version)
			var best *showBestOutput
			chk, bestErr := c.CheckBest(rec)
			var overall *refs.Record
			if bestErr == nil {
				if b, _, ok, err := c.Best(name); err == nil && ok {
					overall = &b
				}
				best = newShowBestOutput(chk, overall)
			}
			if asJSON {
				return a.printJSON(newShowOutput(rec, tags, best, m))
			}
			a.printf("%s@%s\n", rec.Name, rec.Version)
			a.printf("  manifest  %s\n", rec.Manifest)
			a.printf("  step      %d\n", rec.Step)
			a.printf("  pushed    %s from %s\n", rec.Pushed.Local().Format("2006-01-02 15:04:05"), textsafe.Name(rec.Source))
			if rec.Base != nil {
				a.printf("  base      %s\n", rec.Base)
			}
			if rec.HF != nil {
				a.printf("  hf        %s at commit %s (imported from the Hugging Face cache)\n", textsafe.Name(rec.HF.Repo), textsafe.Name(rec.HF.Revision))
			}
			if len(rec.Metrics) > 0 {
				a.printf("  metrics   %s\n", formatMetrics(rec.Metrics))
			}
			if len(tags) > 0 {
				a.printf("  tags      %v\n", tags)
			}
			a.printShowBest(rec, chk, overall, bestErr)
			a.printf("  size      %s in %d files, %s newly stored by its push\n\n", humanBytes(rec.Logical), rec.Files, humanBytes(rec.Stored))
			if a.quiet {
				return nil
			}
			// The files as pull writes them: its own, and those its base
			// chain gives it, marked with the base.
			chain, err := r.ResolveChain(cmd.Context(), rec)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  PATH\tROLE\tSIZE\tCHUNKS\tTENSORS\tDIGEST")
			for _, f := range chain.Files {
				tensors := "-"
				if f.Safetensors != nil {
					tensors = fmt.Sprint(len(f.Safetensors.Tensors))
				}
				path := textsafe.Name(f.Path)
				if f.Inherited {
					path += " (from " + textsafe.Name(f.From) + ")"
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\n", path, textsafe.Name(f.Role), humanBytes(f.Size), len(f.Chunks), tensors, textsafe.Name(shortDigest(f.Digest)))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print record, tags and files as JSON (docs/cli-json.md)")
	a.best.register(cmd.Flags())
	return cmd
}

// printShowBest prints ckpt's NAME@best and, when the checkpoint recorded
// one, Trainer's best next to it, flagging a disagreement.
func (a *app) printShowBest(rec refs.Record, chk refs.BestCheck, overall *refs.Record, err error) {
	if err != nil {
		a.printf("  best      cannot be told: %s\n", textsafe.Name(err.Error()))
		return
	}
	if overall != nil {
		a.printf("  best      %s@%s by %s\n", rec.Name, overall.Version, bestByText(chk.By))
	} else {
		a.printf("  best      none: no version has %s recorded\n", textsafe.Name(chk.By.Metric))
	}
	if chk.Trainer == nil {
		return
	}
	line := trainerBestText(chk.Trainer)
	if chk.TrainerRecord != nil {
		line += " = " + rec.Name + "@" + chk.TrainerRecord.Version
	}
	a.printf("  trainer   %s\n", line)
	switch {
	case !chk.Comparable:
		a.printf("            (not compared: Trainer's best step or ckpt's pick as of step %d is unknown)\n", rec.Step)
	case chk.Agree:
		a.printf("            agrees with ckpt's best as of step %d (%s@%s)\n", rec.Step, rec.Name, chk.Ckpt.Version)
	default:
		a.printf("            DISAGREES with ckpt's best as of step %d (%s@%s): %s\n", rec.Step, rec.Name, chk.Ckpt.Version, textsafe.Name(chk.Why))
	}
}

// shortDigest keeps the algorithm and 12 hex digits.
func shortDigest(d string) string {
	for i := 0; i < len(d); i++ {
		if d[i] == ':' && len(d) > i+13 {
			return d[:i+13]
		}
	}
	return d
}
