package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ckptdev/ckpt/hfcache"
	"github.com/ckptdev/ckpt/hfcache/hfbridge"
	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/store"
)

// hfCacheHelp is the part of pull's help about --hf-cache.
const hfCacheHelp = `
With --hf-cache (and no DIR), NAME@REF goes into the Hugging Face cache
(--cache-dir, else $HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub) as Hub clients lay out a download, so that
from_pretrained("ORG/NAME", local_files_only=True), vLLM or TGI offline find it
by id:

  models--ORG--NAME/blobs/<sha256 of the content>
  models--ORG--NAME/snapshots/<revision>/<path>  relative symlinks into blobs/
  models--ORG--NAME/refs/<branch>                holding <revision>

ORG/NAME is --hf-repo, else the repo id recorded by import-hf, else
ckpt/NAME (a "/" in NAME becomes "."). The branch is --hf-revision (default
main). The revision is 40 hex digits derived from the manifest ID, the same for
the same checkpoint, so pulling it again changes nothing; a client given it as
revision= resolves every file without asking the Hub. Blobs already in the
cache are reused only once their content is checked. The files are the ones a
pull writes (--full adds resume state); the ref is written last.`

// hfCacheFlags are pull's --hf-cache flags.
type hfCacheFlags struct {
	enabled  bool
	repo     string
	branch   string
	cacheDir string
}

func (h *hfCacheFlags) register(f *pflag.FlagSet) {
	f.BoolVar(&h.enabled, "hf-cache", false, "write into the Hugging Face cache instead of DIR")
	f.StringVar(&h.repo, "hf-repo", "", "with --hf-cache: the repo id ORG/NAME (default: the one import-hf recorded, else ckpt/NAME)")
	f.StringVar(&h.branch, "hf-revision", "", "with --hf-cache: the branch refs/BRANCH points at the snapshot (default main)")
	f.StringVar(&h.cacheDir, "cache-dir", "", "with --hf-cache: the Hugging Face cache folder (default $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub)")
}

// pullHFCache is pull --hf-cache.
func (a *app) pullHFCache(cmd *cobra.Command, args []string, opts store.PullOptions, hf hfCacheFlags, asJSON bool) error {
	switch {
	case !hf.enabled:
		return usagef("pull takes NAME@REF DIR, or NAME@REF --hf-cache\nusage: %s", cmd.UseLine())
	case len(args) != 1:
		return usagef("pull --hf-cache writes into the Hugging Face cache and takes no DIR (got %s); --cache-dir chooses the cache", argText(args[1]))
	case opts.Link || opts.Force:
		return usagef("--link and --force do not apply to --hf-cache (the cache is written atomically and idempotently)")
	}
	if hf.repo != "" {
		if _, err := hfcache.ParseRepoID(hf.repo); err != nil {
			return usageError{err}
		}
	}
	name, ref, err := parseRef(args[0], false)
	if err != nil {
		return err
	}
	cacheDir := hf.cacheDir
	if cacheDir == "" {
		if cacheDir, err = hfcache.Dir(); err != nil {
			return err
		}
	}
	r, err := a.open(cmd.Context(), false)
	if err != nil {
		return err
	}
	res, err := hfbridge.PullToCache(cmd.Context(), r, name, ref, hfbridge.PullOptions{
		CacheDir: cacheDir, Repo: hf.repo, Branch: hf.branch, Full: opts.Full, AllowIncomplete: opts.AllowIncomplete,
		Progress: a.progress(),
	})
	if err != nil {
		return err
	}
	if asJSON {
		return a.printJSON(newPullHFCacheOutput(res, cacheDir))
	}
	rec := res.Record
	a.printf("pulled %s@%s into the Hugging Face cache as %s, revision %s (refs/%s): %d files, %s\n",
		rec.Name, rec.Version, textsafe.Name(res.Repo), res.Revision, textsafe.Name(res.Branch), len(res.Files), humanBytes(res.Bytes))
	a.printf("  snapshot  %s\n", textsafe.Name(res.SnapshotDir))
	a.printf("  load it   from_pretrained(%q, revision=%q)  (or local_files_only=True)\n", res.Repo, res.Revision)
	return nil
}
