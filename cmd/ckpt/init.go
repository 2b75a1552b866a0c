package main

import (
	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/store"
)

func (a *app) initCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the registry (idempotent)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := a.backend(cmd.Context())
			if err != nil {
				return err
			}
			r, created, err := store.Init(cmd.Context(), b, store.Options{})
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(newInitOutput(r, created))
			}
			if created {
				a.printf("created registry %s at %s\n", r.ID(), textsafe.Name(r.Location()))
			} else {
				a.printf("registry %s at %s already exists\n", r.ID(), textsafe.Name(r.Location()))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON (docs/cli-json.md)")
	return cmd
}
