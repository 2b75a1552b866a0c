package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/refs"
)

func (a *app) verifyCommand() *cobra.Command {
	var all, readData, asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [NAME@REF | --all]",
		Short: "Check that checkpoints have all their data",
		Long: `Check that the manifests and every blob of a checkpoint (or of all, with --all)
exist in the registry: its own manifest and those of its base chain, as pull
reads them. --read-data also downloads and decodes every manifest
and blob and checks its digest. Everything is read from the registry itself:
the per-machine caches never vouch for anything.

--all also reads every ref from the registry and checks it: refs whose
checksum does not match or that cannot be read, tags pointing at versions
that do not exist, retention policies that cannot be read. It reports every
problem it finds, not only the first.

Problems name the object (ref, manifest or blob) and the checkpoints or files
that use it; the exit code is 1 if any.`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return usagef("verify takes NAME@REF or --all")
			}
			r, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			var rep *store.VerifyReport
			if all {
				rep, err = r.VerifyAll(cmd.Context(), readData)
			} else {
				name, ref, perr := parseRef(args[0], false)
				if perr != nil {
					return perr
				}
				rec, rerr := r.Resolve(cmd.Context(), name, ref)
				if rerr != nil {
					return rerr
				}
				rep, err = r.Verify(cmd.Context(), []refs.Record{rec}, readData)
			}
			if errors.Is(err, store.ErrVerifyFailed) && rep != nil && len(rep.Problems) > 0 {
				// The problems are printed below, their file names escaped;
				// the error only counts them (its own text would repeat the
				// first one with the names raw).
				err = fmt.Errorf("%w: %d problem(s), first: %s", store.ErrVerifyFailed, len(rep.Problems), problemText(rep.Problems[0]))
			}
			if asJSON && rep != nil {
				if jerr := a.printJSON(newVerifyOutput(rep, all, readData)); jerr != nil {
					return jerr
				}
			} else if rep != nil {
				for _, p := range rep.Problems {
					a.printf("PROBLEM %s\n", problemText(p))
				}
				if err == nil {
					what := "present"
					if readData {
						what = "intact (" + humanBytes(rep.BytesRead) + " read and checked)"
					}
					refs := ""
					if all {
						refs = fmt.Sprintf("%d ref(s), ", rep.Refs)
					}
					a.printf("%s%d checkpoint(s), %d manifest(s), %d blob(s): all %s\n", refs, rep.Checkpoints, rep.Manifests, rep.Blobs, what)
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&all, "all", false, "verify every checkpoint")
	f.BoolVar(&readData, "read-data", false, "download and check every blob's content")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON (docs/cli-json.md)")
	return cmd
}

// problemText is store.Problem's line with the names of the files that use
// the object escaped (textsafe.Name): file names come from manifests.
func problemText(p store.Problem) string {
	s := fmt.Sprintf("%s: %s", textsafe.Name(p.Object), textsafe.Line(p.Err.Error()))
	if len(p.Files) > 0 {
		used := textsafe.Names(p.Files)
		if len(used) > 5 {
			used = append(used[:5:5], fmt.Sprintf("and %d more", len(p.Files)-5))
		}
		s += " (used by " + strings.Join(used, ", ") + ")"
	}
	return s
}
