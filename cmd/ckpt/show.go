package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/internal/textsafe"
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
			if asJSON {
				return a.printJSON(newShowOutput(rec, tags, m))
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
	return cmd
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
