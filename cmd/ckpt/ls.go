package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/store/refs"
)

func (a *app) lsCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls [NAME]",
		Short: "List recorded checkpoints",
		Long: `List every NAME with its versions: step, eval_loss, best/latest/tag markers,
logical size and the bytes its push newly stored. A version imported from the
Hugging Face cache (import-hf) is marked hf:ORG/NAME@COMMIT (12 hex digits).

The best marker is NAME@best: the best version by --best-by METRIC if given,
else by the metric of NAME's stored retention policy, else by eval_loss; each
NAME says which metric it ranks by (and a column shows that metric when it is
not eval_loss).`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				if err := refs.CheckStoredName(args[0]); err != nil {
					return usageError{err}
				}
				name = args[0]
			}
			r, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			c, err := r.Catalog(cmd.Context(), name)
			if err != nil {
				return err
			}
			if name != "" && len(c.Records[name]) == 0 {
				_, err := r.Resolve(cmd.Context(), name, refs.Latest)
				return err
			}
			out := newLsOutput(c)
			if asJSON {
				return a.printJSON(out)
			}
			if len(out.Names) == 0 {
				a.printf("no checkpoints in %s\n", textsafe.Name(r.Location()))
				return nil
			}
			for i, n := range out.Names {
				if i > 0 {
					a.printf("\n")
				}
				a.printVersions(n, c.Records[n.Name])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON (docs/cli-json.md)")
	a.best.register(cmd.Flags())
	return cmd
}

// printVersions prints the records of a NAME with their markers
// (newLsOutput).
func (a *app) printVersions(n lsNameOutput, recs []refs.Record) {
	if a.quiet {
		return
	}
	metric := ""
	switch {
	case n.BestBy != nil:
		a.printf("%s  (best by %s)\n", n.Name, bestByText(refs.BestBy{Metric: n.BestBy.Metric, GreaterIsBetter: n.BestBy.GreaterIsBetter, Source: refs.BestSource(n.BestBy.Source)}))
		if n.BestBy.Metric != "eval_loss" {
			metric = n.BestBy.Metric
		}
	default:
		a.printf("%s  (best cannot be told: %s)\n", n.Name, textsafe.Name(n.BestError))
	}
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	header := "  VERSION\tSTEP\tEVAL_LOSS\t"
	if metric != "" {
		header += strings.ToUpper(textsafe.Name(metric)) + "\t"
	}
	fmt.Fprintln(tw, header+"SIZE\tNEW\tPUSHED\tMARKS")
	for i, rec := range recs {
		v := n.Versions[i]
		value := func(m string) string {
			if l, ok := rec.Metrics[m]; ok {
				return strconv.FormatFloat(l, 'f', 4, 64)
			}
			return "-"
		}
		var marks []string
		if v.Best {
			marks = append(marks, "best")
		}
		if v.Latest {
			marks = append(marks, "latest")
		}
		marks = append(marks, v.Tags...)
		if rec.HF != nil {
			marks = append(marks, "hf:"+textsafe.Name(rec.HF.Repo)+"@"+textsafe.Name(shortRevision(rec.HF.Revision)))
		}
		cols := rec.Version + "\t" + strconv.FormatInt(rec.Step, 10) + "\t" + value("eval_loss") + "\t"
		if metric != "" {
			cols += value(metric) + "\t"
		}
		fmt.Fprintf(tw, "  %s%s\t%s\t%s\t%s\n", cols, humanBytes(rec.Logical), humanBytes(rec.Stored),
			rec.Pushed.Local().Format("2006-01-02 15:04"), strings.Join(marks, ","))
	}
	tw.Flush()
}

// shortRevision is the first 12 hex digits of a commit hash, as git
// abbreviates it; anything shorter is kept whole.
func shortRevision(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
