package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
)

func (a *app) pullCommand() *cobra.Command {
	var opts store.PullOptions
	var asJSON bool
	var only []string
	var hf hfCacheFlags
	cmd := &cobra.Command{
		Use:   "pull NAME@REF (DIR | --hf-cache)",
		Short: "Reassemble a runnable model folder",
		Long: `Write NAME@REF into DIR. REF is a version, a tag, latest (the highest version)
or best (by --best-by METRIC, else the metric of NAME's stored retention policy,
else lowest eval_loss).

Every pull feeds the per-machine content cache ($XDG_CACHE_HOME/ckpt/content):
a plain pull hard-links the files it wrote into it (no extra disk space while DIR
exists; --cache-size caps what only the cache holds), and later pulls read
shared chunks from it instead of downloading them. --link materializes the
folder from the cache by reflink where the file system supports it, else by
hard link, else by copy, and says which it used: pulling a model again, after a
plain or a --link pull of it, costs neither a copy nor a read of its bytes. A
hard link shares its bytes with the cache and every folder linked to the same
entry (after a plain pull, the plain pull's files): edit neither in place.
Every entry is checked before every link against its seal (inode, size, mtime,
ctime when its bytes last matched its hash) and hashed in full when it changed
(or a day after its last hash); one whose hash differs is fetched again.
Links keep the file's mode class (a 0600 file is never linked from a
world-readable entry).

By default the runnable set is written: weights, shard index, config, generation
config and tokenizer, inherited from the --base chain when the checkpoint lacks
them. --full adds resume state and trainer_state.json, so that
Trainer.train(resume_from_checkpoint=DIR) works.

--include GLOB, --exclude GLOB and --only weights|config|tokenizer|resume (each
repeatable) make the pull partial: of every file the checkpoint has or
inherits, those whose path matches an --include pattern (if any), no --exclude
pattern, and whose kind is one of --only (if any). Patterns follow hf download:
fnmatch, case-sensitive, '*' also matches '/', a pattern ending in '/' selects a
folder. A partial pull is not refused when the folder is not runnable: it says
whether it is, and lists what it left out.

A PEFT adapter (adapter_config.json and adapter_model.safetensors or .bin) is
runnable with its base. --with-base also writes the base its record links
(push links it by itself when adapter_config.json's base_model_name_or_path is
a NAME of the registry) into DIR/base/: a pair PEFT loads with
PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("DIR/base"), "DIR").

Every byte is checked against its digest. Files get their recorded mode less
the umask (like tar without -p). The folder is built beside DIR in a private
folder (mode 0700) with a name nobody can guess, without following symbolic
links, and renamed into place at the end; an interrupted pull is resumed by the
next identical one. A non-empty DIR is refused unless --force.
` + hfCacheHelp,
		Example: `  ckpt pull llama-sft@best ./model
  ckpt pull llama-sft@latest ./resume --full
  ckpt pull llama-sft@best ./weights --only weights
  ckpt pull llama-sft@latest ./no-optim --exclude optimizer.pt
  ckpt pull llama-sft@best ./st --include "*.safetensors" --include "*.json"
  ckpt pull llama-sft@best --hf-cache --hf-repo me/llama-sft`,
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, o := range only {
				for _, name := range strings.Split(o, ",") {
					c, err := layout.ParseCategory(strings.TrimSpace(name))
					if err != nil {
						return usagef("--only: %v", err)
					}
					opts.Select.Only = append(opts.Select.Only, c)
				}
			}
			if hf.enabled && (!opts.Select.All() || opts.WithBase) {
				return usagef("--include, --exclude, --only and --with-base do not apply to --hf-cache (it writes the runnable set, or everything with --full)")
			}
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
				a.printf("  materialized from the content cache:%s\n", formatLinked(res.Linked))
			}
			for _, f := range res.Files {
				from := ""
				if f.From != rec.Name+"@"+rec.Version {
					from = "  (from " + f.From + ")"
				}
				a.printf("  %-40s %10s  %s%s\n", textsafe.Name(f.Path), humanBytes(f.Size), textsafe.Name(f.Role), from)
			}
			a.printPullSummary(res, opts.Select)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.Full, "full", false, "also write resume state and trainer_state.json")
	f.BoolVar(&opts.Force, "force", false, "replace a non-empty DIR")
	f.BoolVar(&opts.Link, "link", false, "materialize from the per-machine content cache by reflink, else hard link, else copy")
	f.BoolVar(&opts.AllowIncomplete, "allow-incomplete", false, "write the folder even if it is not runnable")
	f.BoolVar(&opts.WithBase, "with-base", false, "for a PEFT adapter: also write its base model into DIR/base/")
	f.StringArrayVar(&opts.Select.Include, "include", nil, "partial pull: only files whose path matches GLOB (repeatable; hf download rules)")
	f.StringArrayVar(&opts.Select.Exclude, "exclude", nil, "partial pull: leave out files whose path matches GLOB (repeatable)")
	f.StringArrayVar(&only, "only", nil, "partial pull: only files of a kind: weights, config, tokenizer or resume (repeatable)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON (docs/cli-json.md)")
	a.best.register(cmd.Flags())
	hf.register(f)
	return cmd
}

// printPullSummary says whether the folder is runnable and, for a partial
// pull, what it left out.
func (a *app) printPullSummary(res *store.PullResult, sel layout.Selection) {
	for _, p := range res.RemovedOld {
		a.printf("removed %s: the earlier content of the folder, moved aside by a pull --force that was killed\n", textsafe.Name(p))
	}
	if res.Partial {
		var bytes int64
		names := make([]string, len(res.LeftOut))
		for i, f := range res.LeftOut {
			bytes += f.Size
			names[i] = textsafe.Name(f.Path)
		}
		a.printf("partial pull (%s): left out %d files, %s", sel.Describe(), len(res.LeftOut), humanBytes(bytes))
		if len(names) > 0 {
			a.printf(": %s", strings.Join(names, ", "))
		}
		a.printf("\n")
	}
	if res.Base != nil {
		a.printf("base %s@%s written into %s/ (runs with the adapter: PeftModel.from_pretrained(base model, DIR))\n",
			res.Base.Name, res.Base.Version, store.BaseDir)
	}
	if res.Runnable {
		if res.Partial {
			a.printf("the folder is runnable\n")
		}
		return
	}
	a.printf("the folder is NOT runnable: %s\n", textsafe.Name(res.NotRunnable))
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
