package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/internal/redact"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend/local"
)

func (a *app) copyCommand() *cobra.Command {
	var to string
	var allVersions, asJSON, noServerSide bool
	var opts store.CopyOptions
	cmd := &cobra.Command{
		Use:   "copy NAME@REF... --to REPO",
		Short: "Copy checkpoints to another registry",
		Long: `Copy checkpoints from the registry (--repo) to the registry REPO (a folder,
file:// or s3:// URL; created if it does not exist): each NAME@REF, or with
--all-versions every version of each NAME, with its base chain (the bases'
data and version refs, the deepest base first), keeping push times, metrics
and base links. --tags also copies the tags pointing at the versions copied.

Only what REPO lacks is transferred: REPO itself is asked (a listing or a stat
per object), never a per-machine cache. Every object is read from the source,
decoded and checked against its content hash before it is written to REPO,
so a corrupt source object is never copied (the checkpoints needing it are
not published, and named). Version refs are written last, create-only, under
REPO's publish lock exactly as a push writes them (a garbage collection
running in REPO meanwhile is detected and its deletions copied again). A ref
that REPO already holds with the same content counts as copied; one that
records other content is a conflict, named, and is never replaced.

An interrupted copy is resumed by running it again: it transfers only what is
still missing. When both registries are on the same S3 endpoint, REPO's
server copies each object itself after it was checked (--no-server-side
sends the bytes through this machine instead). Progress shows the bytes of
the blobs to copy, as for pull.

The exit code is 1 if any checkpoint or tag could not be copied; the others
are copied, and --json reports each with its status.`,
		Example: `  ckpt copy llama-sft@prod --to s3://prod-models/registry --tags
  ckpt --repo s3://team/ckpt copy llama-sft --all-versions --to /mnt/nvme/ckpt`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("copy takes at least one NAME@REF\nusage: %s", cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usagef("copy needs --to REPO, the registry to copy to")
			}
			var specs []store.CopySpec
			for _, arg := range args {
				if allVersions {
					if strings.Contains(arg, "@") {
						return usagef("copy --all-versions takes NAMEs, not %s", argText(arg))
					}
					name, _, err := parseRef(arg+"@latest", false)
					if err != nil {
						return err
					}
					specs = append(specs, store.CopySpec{Name: name})
					continue
				}
				name, ref, err := parseRef(arg, false)
				if err != nil {
					return err
				}
				specs = append(specs, store.CopySpec{Name: name, Ref: ref})
			}
			src, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			dst, err := a.openDestination(cmd.Context(), to)
			if err != nil {
				return err
			}
			if dst.ID() == src.ID() {
				return usagef("--to %s is the registry copied from (registry %s)", redact.URL(to), src.ID())
			}
			opts.ServerSide = !noServerSide
			res, err := src.CopyTo(cmd.Context(), dst, specs, opts)
			if res == nil || len(res.Versions) == 0 && len(res.Tags) == 0 {
				return err
			}
			if asJSON {
				if jerr := a.printJSON(newCopyOutput(res, src.Location(), dst.Location())); jerr != nil {
					return jerr
				}
			} else {
				a.printCopy(res, dst.Location())
			}
			return copyFailures(res, err)
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "registry to copy to: folder, file:// or s3:// URL")
	f.BoolVar(&allVersions, "all-versions", false, "copy every version of each NAME")
	f.BoolVar(&opts.Tags, "tags", false, "also copy the tags pointing at the versions copied")
	f.BoolVar(&noServerSide, "no-server-side", false, "never let the destination's S3 server copy objects itself")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON (docs/cli-json.md)")
	a.best.register(f)
	return cmd
}

// openDestination opens (creating it if missing) the registry at loc, with
// the same workers and per-machine index as the source but no progress of
// its own (the copy reports on the source's) and no pull caches.
func (a *app) openDestination(ctx context.Context, loc string) (*store.Registry, error) {
	b, err := a.backendAt(ctx, loc)
	if err != nil {
		return nil, err
	}
	workers := a.workers
	if _, isLocal := b.(*local.Backend); !isLocal && workers == 0 {
		workers = remoteWorkers
	}
	r, _, err := store.Init(ctx, b, store.Options{Index: a.index, Workers: workers, Warn: a.warn})
	if err != nil {
		return nil, fmt.Errorf("--to %s: %w", redact.URL(loc), err)
	}
	return r, nil
}

// copyFailures is the error of a copy whose result was printed: it counts
// what failed (each failure was printed with its reason) and keeps the
// typed errors for hints and errors.Is.
func copyFailures(res *store.CopyResult, err error) error {
	if err == nil {
		return nil
	}
	failed := 0
	for _, v := range res.Versions {
		if v.Status == store.CopyFailed {
			failed++
		}
	}
	for _, t := range res.Tags {
		if t.Status == store.CopyFailed {
			failed++
		}
	}
	if failed == 0 {
		return err
	}
	return fmt.Errorf("%d checkpoint(s) or tag(s) not copied: %w", failed, err)
}

// printCopy prints what a copy did, one line per ref, then the totals.
func (a *app) printCopy(res *store.CopyResult, to string) {
	for _, v := range res.Versions {
		line := fmt.Sprintf("  %-8s %s@%s", v.Status, v.Name, v.Version)
		if v.Base {
			line += "  (base)"
		}
		if v.Err != nil {
			line += ": " + v.Err.Error()
		}
		a.printf("%s\n", line)
	}
	for _, t := range res.Tags {
		line := fmt.Sprintf("  %-8s tag %s:%s -> %s", t.Status, t.Name, t.Tag, t.Version)
		if t.Err != nil {
			line += ": " + t.Err.Error()
		}
		a.printf("%s\n", line)
	}
	server := ""
	if res.ServerSide > 0 {
		server = fmt.Sprintf(", %d copied by the server", res.ServerSide)
	}
	a.printf("copied to %s: %d blob(s) and %d manifest(s), %s (%s stored); %d of %d object(s) were there already%s\n",
		to, res.Blobs, res.Manifests, humanBytes(res.ContentBytes), humanBytes(res.StoredBytes), res.Present, res.Objects, server)
}
