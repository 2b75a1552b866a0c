package main

import (
	"github.com/spf13/cobra"
)

func (a *app) duCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "du",
		Short: "Show logical and stored bytes and the dedupe ratio",
		Long: `logical: the sum of every recorded checkpoint's file sizes.
unique:  the content bytes of the distinct blobs they reference.
stored:  the bytes of every blob and manifest object (after compression;
         includes data not yet freed by gc).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			u, err := r.Usage(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(newDuOutput(u))
			}
			a.printf("%d names, %d checkpoints, %d blobs, %d manifests\n", u.Names, u.Checkpoints, u.Blobs, u.Manifests)
			a.printf("  logical  %s\n", humanBytes(u.Logical))
			a.printf("  unique   %s  (dedupe %.2fx)\n", humanBytes(u.Unique), u.DedupeRatio())
			a.printf("  stored   %s  (compression %.2fx)\n", humanBytes(u.Stored), u.CompressionRatio())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON (docs/cli-json.md)")
	return cmd
}
