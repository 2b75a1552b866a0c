package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/diff"
	"github.com/ckptdev/ckpt/store/refs"
)

func (a *app) diffCommand() *cobra.Command {
	var opts diff.Options
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Compare two checkpoints: files, config keys, tokenizer, tensors",
		Long: `Compare A with B. Each is NAME@REF or a local folder (an existing directory is
a folder; a folder is read the way push reads it, nothing is stored).

Files are compared by digest, JSON config files key by key, tokenizers by
tokens, special tokens and merges, and weights tensor by tensor, matched by name
across shards. Tensors are compared from the manifests alone; --stats also reads
the data of changed tensors and reports max |delta| and the relative L2 change
||b-a|| / ||a|| (BF16, F16, F32, F64). Two PEFT adapters are also compared by
their settings (rank, alpha, dropout, target modules as a set, ...).

A registry checkpoint includes the config and tokenizer it inherits from its
--base chain, as pull would write them.`,
		Example: `  ckpt diff run@100 run@200
  ckpt diff gpt2@1 run@best --stats
  ckpt diff run@latest ./output/checkpoint-500 --json`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			sides := make([]*diff.Side, 2)
			for i, arg := range args {
				s, err := a.diffSide(ctx, arg)
				if err != nil {
					return err
				}
				sides[i] = s
			}
			rep, err := diff.Compare(ctx, sides[0], sides[1], opts)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(newDiffOutput(rep))
			}
			if a.quiet {
				return nil
			}
			return rep.WriteText(a.stdout)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the whole report as JSON (docs/cli-json.md)")
	f.BoolVar(&opts.Stats, "stats", false, "read changed tensors and report max |delta| and relative L2 change")
	a.best.register(cmd.Flags())
	return cmd
}

// diffSide opens arg as a folder when it is an existing directory, else as
// NAME@REF in the registry.
func (a *app) diffSide(ctx context.Context, arg string) (*diff.Side, error) {
	if info, err := os.Stat(arg); err == nil && info.IsDir() {
		return diff.FromFolder(ctx, arg)
	}
	name, ref, err := refs.Parse(arg, false)
	if err != nil {
		return nil, usagef("%s is neither a folder nor NAME@REF: %w", argText(arg), refError(arg, err))
	}
	r, err := a.open(ctx, false)
	if err != nil {
		return nil, err
	}
	return diff.FromRegistry(ctx, r, name, ref)
}
