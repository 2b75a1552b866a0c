package main

import (
	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/store/refs"
)

func (a *app) tagCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "tag NAME@REF TAG",
		Short: "Point TAG at a checkpoint (moving it if it pointed elsewhere)",
		Long:  "Tagged checkpoints are always kept by retention. A TAG is a word of letters, digits, '.', '_', '-' that is not all digits.",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, ref, err := parseRef(args[0], false)
			if err != nil {
				return err
			}
			if err := refs.CheckTag(args[1]); err != nil {
				return err
			}
			r, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			rec, err := r.Resolve(cmd.Context(), name, ref)
			if err != nil {
				return err
			}
			if err := r.Tag(cmd.Context(), name, rec.Version, args[1]); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(tagOutput{Schema: schemaName("tag"), Name: name, Version: rec.Version, Tag: args[1]})
			}
			a.printf("tagged %s@%s as %s\n", name, rec.Version, args[1])
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON (docs/cli-json.md)")
	a.best.register(cmd.Flags())
	return cmd
}

func (a *app) untagCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "untag NAME TAG",
		Short: "Remove a tag",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := refs.CheckName(args[0]); err != nil {
				return err
			}
			if err := refs.CheckTag(args[1]); err != nil {
				return err
			}
			r, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			if err := r.Untag(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(untagOutput{Schema: schemaName("untag"), Name: args[0], Tag: args[1]})
			}
			a.printf("removed tag %s from %s\n", args[1], args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON (docs/cli-json.md)")
	return cmd
}
