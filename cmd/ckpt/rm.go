package main

import (
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) rmCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rm NAME@REF",
		Short: "Remove a recorded checkpoint (its data is freed by gc)",
		Long: `Remove the ref NAME@REF and the tags that point at it. Blobs and manifests stay
until garbage collection finds that nothing references them.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, ref, err := parseRef(args[0], false)
			if err != nil {
				return err
			}
			r, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			rec, tags, err := r.Remove(cmd.Context(), name, ref)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(rmOutput{Schema: schemaName("rm"), Record: newRecordOutput(rec), RemovedTags: orEmpty(tags)})
			}
			a.printf("removed %s@%s", rec.Name, rec.Version)
			if len(tags) > 0 {
				a.printf(" and its tags %s", strings.Join(tags, ", "))
			}
			a.printf("\n")
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON (docs/cli-json.md)")
	a.best.register(cmd.Flags())
	return cmd
}
