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

// lsVersion is one line of `ckpt ls`.
type lsVersion struct {
	refs.Record
	Tags   []string `json:"tags,omitempty"`
	Latest bool     `json:"latest"`
	Best   bool     `json:"best"`
}

func (a *app) lsCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls [NAME]",
		Short: "List recorded checkpoints",
		Long: `List every NAME with its versions: step, eval_loss, best/latest/tag markers,
logical size and the bytes its push newly stored.`,
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
			out := map[string][]lsVersion{}
			for _, n := range c.Names() {
				out[n] = listVersions(c, n)
			}
			if asJSON {
				return a.printJSON(out)
			}
			if len(out) == 0 {
				a.printf("no checkpoints in %s\n", textsafe.Name(r.Location()))
				return nil
			}
			for i, n := range c.Names() {
				if i > 0 {
					a.printf("\n")
				}
				a.printVersions(n, out[n])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func listVersions(c *refs.Catalog, name string) []lsVersion {
	recs := c.Records[name]
	best, hasBest := refs.BestRecord(recs, "")
	vs := make([]lsVersion, len(recs))
	for i, rec := range recs {
		vs[i] = lsVersion{
			Record: rec,
			Tags:   c.TagsOf(name, rec.Version),
			Latest: i == len(recs)-1,
			Best:   hasBest && rec.Version == best.Version,
		}
	}
	return vs
}

func (a *app) printVersions(name string, vs []lsVersion) {
	if a.quiet {
		return
	}
	a.printf("%s\n", name)
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VERSION\tSTEP\tEVAL_LOSS\tSIZE\tNEW\tPUSHED\tMARKS")
	for _, v := range vs {
		loss := "-"
		if l, ok := v.Metrics["eval_loss"]; ok {
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
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\n", v.Version, v.Step, loss, humanBytes(v.Logical), humanBytes(v.Stored),
			v.Pushed.Local().Format("2006-01-02 15:04"), strings.Join(marks, ","))
	}
	tw.Flush()
}
