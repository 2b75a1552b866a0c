package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/hfcache"
	"github.com/ckptdev/ckpt/hfcache/hfbridge"
	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/store"
)

func (a *app) importHFCommand() *cobra.Command {
	var push store.PushOptions
	var cacheDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "import-hf ORG/NAME[@REVISION] NAME[@VERSION]",
		Short: "Record a model from the Hugging Face cache",
		Long: `Record a model that huggingface_hub (hf download, from_pretrained) or another
Hub client left in the Hugging Face cache as NAME@VERSION, with the Hub repo id
and commit in the ref (show and ls print them). Nothing is downloaded: the Hub
is never contacted.

The cache is --cache-dir, else $HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub. REVISION is a branch or tag (default main), resolved
through the cache's refs/REVISION to the commit it was downloaded at, or a full
40-hex-digit commit. VERSION defaults to the commit's first 12 hex digits, so
importing the same commit again is a no-op.

The snapshot's files are symbolic links into the repo's blobs/ folder; each
must stay inside it (a cache is outside input). Only the files that were
downloaded are in the snapshot.`,
		Example: `  hf download Qwen/Qwen2.5-0.5B
  ckpt import-hf Qwen/Qwen2.5-0.5B qwen-base
  ckpt import-hf openai-community/gpt2@607a30d783dfa663caf39e06633721c8d4cfcd7e gpt2@1 --tag base`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, revision, _ := strings.Cut(args[0], "@")
			if _, err := hfcache.ParseRepoID(repo); err != nil {
				return usageError{err}
			}
			name, version, err := parseRef(args[1], true)
			if err != nil {
				return err
			}
			push.Name, push.Version = name, version
			if cacheDir == "" {
				if cacheDir, err = hfcache.Dir(); err != nil {
					return err
				}
			}
			r, err := a.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			res, err := hfbridge.Import(cmd.Context(), r, hfbridge.ImportOptions{CacheDir: cacheDir, Repo: repo, Revision: revision, Push: push})
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(newImportHFOutput(res))
			}
			snap := res.Snapshot
			via := ""
			if snap.Ref != "" {
				via = " (" + textsafe.Name(snap.Ref) + ")"
			}
			a.printf("found %s at commit %s%s in %s: %d files\n", textsafe.Name(snap.Repo.String()), snap.Commit, via, textsafe.Name(snap.Dir), len(snap.Files))
			a.printPush(res.Push)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cacheDir, "cache-dir", "", "the Hugging Face cache folder (default $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub)")
	f.StringArrayVar(&push.Tags, "tag", nil, "tag the imported version (repeatable)")
	f.BoolVar(&push.Force, "force", false, "replace an existing version that has different content")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON (docs/cli-json.md)")
	return cmd
}
