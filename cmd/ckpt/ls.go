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
Hugging Face cache (import-hf) is marked hf:ORG/NAME@COMMIT (12 hex digits).`,
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
				a.printVersions(n.Name, c.Records[n.Name], n.Versions)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON (docs/cli-json.md)")
	return cmd
}

// printVersions prints the records of name, vs their markers (newLsOutput).
func (a *app) printVersions(name string, recs []refs.Record, vs []lsVersionOutput) {
	if a.quiet {
		return
	}
	a.printf("%s\n", name)
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VERSION\tSTEP\tEVAL_LOSS\tSIZE\tNEW\tPUSHED\tMARKS")
	for i, rec := range recs {
		v := vs[i]
		loss := "-"
		if l, ok := rec.Metrics["eval_loss"]; ok {
			loss = strconv.FormatFloat(l, 'f', 4, 64)
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
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\n", rec.Version, rec.Step, loss, humanBytes(rec.Logical), humanBytes(rec.Stored),
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
