package main

import (
	"github.com/spf13/cobra"
)

func (a *app) duCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "du",
		Short: "Show logical and stored bytes and the dedupe ratio",
		Long: `logical:      the sum of every recorded checkpoint's file sizes.
unique:       the content bytes of the distinct blobs the refs reach (their
              bases' included).
stored:       the bytes (after compression) of the blobs and manifests the
              refs reach; compression is unique over stored.
unreferenced: the bytes of the blobs and manifests no ref reaches (removed
              checkpoints, interrupted pushes): gc frees them once they are
              older than its grace period.

The counts of blobs and manifests are of those the refs reach.`,
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
			a.printf("  logical       %s\n", humanBytes(u.Logical))
			a.printf("  unique        %s  (dedupe %.2fx)\n", humanBytes(u.Unique), u.DedupeRatio())
			a.printf("  stored        %s  (compression %.2fx)\n", humanBytes(u.Stored), u.CompressionRatio())
			a.printf("  unreferenced  %s in %d objects, awaiting gc\n", humanBytes(u.Unreferenced), u.UnreferencedObjects)
			if u.DeltaReferenceObjects > 0 {
				a.printf("  delta refs    %s in %d objects that only deltas still need (gc re-encodes them, then frees these)\n",
					humanBytes(u.DeltaReferences), u.DeltaReferenceObjects)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON (docs/cli-json.md)")
	return cmd
}
