package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/store"
)

func (a *app) pullCommand() *cobra.Command {
	var opts store.PullOptions
	var asJSON bool
	var hf hfCacheFlags
	cmd := &cobra.Command{
		Use:   "pull NAME@REF (DIR | --hf-cache)",
		Short: "Reassemble a runnable model folder",
		Long: `Write NAME@REF into DIR. REF is a version, a tag, latest (the highest version)
or best (lowest eval_loss).

--link fills the per-machine file cache ($XDG_CACHE_HOME/ckpt/files) and
materializes the folder from it by reflink where the file system supports it,
else by read-only hard link, else by copy, and says which it used: a second
pull of the same files costs a read of them, not a copy. Every cache entry is
checked in full before every link (a hard link can be made writable and edited,
a disk can flip a bit); one that changed is fetched again. Hard links are
read-only and keep the file's mode class (a 0600 file is never linked from a
world-readable entry).

By default the runnable set is written: weights, shard index, config, generation
config and tokenizer, inherited from the --base chain when the checkpoint lacks
them. --full adds resume state and trainer_state.json, so that
Trainer.train(resume_from_checkpoint=DIR) works.

Every byte is checked against its digest. Files get their recorded mode less
the umask (like tar without -p). The folder is built beside DIR in a private
folder (mode 0700) with a name nobody can guess, without following symbolic
links, and renamed into place at the end; an interrupted pull is resumed by the
next identical one. A non-empty DIR is refused unless --force.
` + hfCacheHelp,
		Example: `  ckpt pull llama-sft@best ./model
  ckpt pull llama-sft@latest ./resume --full
  ckpt pull llama-sft@best --hf-cache --hf-repo me/llama-sft`,
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if hf.enabled || len(args) == 1 {
				return a.pullHFCache(cmd, args, opts, hf, asJSON)
			}
			name, ref, err := parseRef(args[0], false)
			if err != nil {
				return err
			}
			r, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			res, err := r.Pull(cmd.Context(), name, ref, args[1], opts)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(newPullOutput(res, args[1]))
			}
			rec := res.Record
			a.printf("pulled %s@%s into %s: %d files, %s\n", rec.Name, rec.Version, textsafe.Name(args[1]), len(res.Files), humanBytes(res.Bytes))
			if len(res.Linked) > 0 {
				a.printf("  materialized from the file cache:%s\n", formatLinked(res.Linked))
			}
			for _, f := range res.Files {
				from := ""
				if f.From != rec.Name+"@"+rec.Version {
					from = "  (from " + f.From + ")"
				}
				a.printf("  %-40s %10s  %s%s\n", textsafe.Name(f.Path), humanBytes(f.Size), textsafe.Name(f.Role), from)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.Full, "full", false, "also write resume state and trainer_state.json")
	f.BoolVar(&opts.Force, "force", false, "replace a non-empty DIR")
	f.BoolVar(&opts.Link, "link", false, "materialize from the per-machine file cache by reflink, else read-only hard link, else copy")
	f.BoolVar(&opts.AllowIncomplete, "allow-incomplete", false, "write the folder even if it is not runnable")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON (docs/cli-json.md)")
	hf.register(f)
	return cmd
}

func formatLinked(m map[store.LinkMethod]int) string {
	out := ""
	for _, k := range []store.LinkMethod{store.LinkReflink, store.LinkHardlink, store.LinkCopy} {
		if m[k] > 0 {
			out += fmt.Sprintf(" %d by %s", m[k], k)
		}
	}
	return out
}
