package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/store"
)

func (a *app) gcCommand() *cobra.Command {
	var opts store.GCOptions
	var asJSON bool
	var grace string
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Free blobs and manifests that no checkpoint references",
		Long: `Delete the blobs and manifests that no ref reaches. Safe while other machines
push: gc holds the registry's gc lock, pushes wait for it only to publish, and a
push that overlapped a gc re-checks its data before publishing (docs/format.md).
Unreferenced objects younger than --grace (by the storage's clock) are kept:
they probably belong to a push in flight. A second gc exits with an error
while one runs; a gc killed midway leaves a registry that verifies.

gc deletes only on positive proof: it reads every version ref from the
registry itself (never from the per-machine cache) and checks its checksum,
and checks that every manifest a ref needs exists and decodes. If any of
that fails it deletes nothing, names each ref and object at fault, and exits
with status 1.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if grace != "" {
				d, err := parseDuration(grace)
				if err != nil {
					return usagef("--grace %q: %v", grace, err)
				}
				opts.Grace, opts.NoGrace = d, d == 0
			}
			r, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			res, err := r.GC(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(newGCOutput(res))
			}
			verb := "deleted"
			if res.DryRun {
				verb = "would delete"
			}
			a.printf("%d checkpoints reach %d manifests and %d blobs\n", res.Checkpoints, res.ReachableManifests, res.ReachableBlobs)
			a.printf("%s %d manifests and %d blobs, %s, in %s\n", verb, res.DeletedManifests, res.DeletedBlobs, humanBytes(res.FreedBytes), res.Duration.Round(time.Millisecond))
			if res.KeptYoung > 0 {
				a.printf("kept %d unreferenced objects younger than the grace period\n", res.KeptYoung)
			}
			if res.Reencoded > 0 {
				a.printf("re-encoded %d deltas whose reference was freed (%d of them against a new keyframe)\n", res.Reencoded, res.Rekeyed)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.DryRun, "dry-run", false, "report what would be deleted, delete nothing")
	f.StringVar(&grace, "grace", "", "keep unreferenced objects younger than this (default 1h; 0 deletes them all)")
	f.BoolVar(&asJSON, "json", false, "print a JSON summary (docs/cli-json.md)")
	return cmd
}
