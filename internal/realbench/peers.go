package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"

	"github.com/ckptdev/ckpt/layout"
)

// benchPeers measures restic and the ZipLLM estimate on the checkpoints the
// ckpt bench pushed, with the retention decision it applied, and prints the
// peers table next to ckpt's results.
func benchPeers(ctx context.Context, results []benchResult, o options) error {
	last := results[len(results)-1]
	tmp, err := os.MkdirTemp("", "realbench-peers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	fmt.Println("\nZipLLM estimate (weights files: identical tensors stored once across the family; a fine-tune's")
	fmt.Println("other tensors XOR-ed against the same tensor of the base when that codes smaller; planes codec)")
	z, err := estimateZipLLM(last)
	if err != nil {
		return err
	}
	zBefore, zAfter := zipBeforeAfter(z, last)
	printZipTotals(zBefore, zAfter)
	fmt.Printf("fine-tune tensors with a base tensor to XOR against: %d by name (safetensors), %d torch storages by nearest\n", z.paired["named"], z.paired["nearest"])
	fmt.Printf("content among the base's tensors of their dtype and size (torch zips name no tensors; %d of them with less\n", z.ambiguous)
	fmt.Printf("than %d leading bit per element more in common than the next candidate); %d without one\n", ambiguousMargin, z.unpaired)

	var rs *resticResult
	bin, lookErr := exec.LookPath(o.restic)
	if lookErr != nil {
		fmt.Printf("\nrestic: column skipped: %v\n", lookErr)
	} else {
		fmt.Printf("\nrestic: %s, %d checkpoint folders backed up into one repository (version 2, compression auto)\n", bin, len(last.pushes))
		r, err := benchRestic(ctx, bin, tmp, last.pushes, last.removed)
		if err != nil {
			return err
		}
		fmt.Printf("restic: forgot %d snapshots, prune --max-unused 0\n", r.forgotten)
		rs = &r
	}
	printPeers(os.Stdout, results, rs, zBefore, zAfter)
	return nil
}

// estimateZipLLM codes the weights files of res's pushes: the base
// checkpoint first, then every push in order.
func estimateZipLLM(res benchResult) (*zipLLM, error) {
	z := newZipLLM()
	baseRun, baseVersion, _ := strings.Cut(res.base, "@")
	if baseRun != "" {
		i := slices.IndexFunc(res.pushes, func(p pushed) bool { return p.run == baseRun && p.version == baseVersion })
		if i < 0 {
			return nil, fmt.Errorf("base %s was not pushed", res.base)
		}
		w, err := readWeights(res.pushes[i].dir)
		if err != nil {
			return nil, err
		}
		if w == nil {
			return nil, fmt.Errorf("base %s: no weights file in %s", res.base, res.pushes[i].dir)
		}
		z.setBase(w)
	}
	for _, p := range res.pushes {
		w, err := readWeights(p.dir)
		if err != nil {
			return nil, err
		}
		if w == nil {
			continue
		}
		if err := z.add(p.run, p.version, w, baseRun != "" && p.run != baseRun); err != nil {
			return nil, err
		}
	}
	return z, nil
}

// zipBeforeAfter sums the estimate over every checkpoint and over those
// retention kept plus the base (stored, its raw bytes not counted, when
// retention removed it).
func zipBeforeAfter(z *zipLLM, res benchResult) (before, after zipTotals) {
	before = z.totals(func(zipFile) (bool, bool) { return true, true })
	baseRun, baseVersion, _ := strings.Cut(res.base, "@")
	after = z.totals(func(f zipFile) (bool, bool) {
		kept := !slices.Contains(res.removed[f.run], f.version)
		return kept || (f.run == baseRun && f.version == baseVersion), kept
	})
	return before, after
}

func printZipTotals(before, after zipTotals) {
	runs := make([]string, 0, len(before.runs))
	for run := range before.runs {
		runs = append(runs, run)
	}
	sort.Strings(runs)
	fmt.Printf("%-14s %12s %12s %7s   %12s %12s %7s\n", "run", "raw", "stored", "ratio", "raw after", "stored after", "ratio")
	for _, run := range runs {
		b, a := before.runs[run], after.runs[run]
		if a == nil {
			a = &tally{}
		}
		fmt.Printf("%-14s %12d %12d %7s   %12d %12d %7s\n", run, b.raw, b.stored, b.ratio(), a.raw, a.stored, a.ratio())
	}
	fmt.Printf("%-14s %12d %12d %7s   %12d %12d %7s\n", "family", before.family.raw, before.family.stored, before.family.ratio(),
		after.family.raw, after.family.stored, after.family.ratio())
	fmt.Printf("distinct tensors stored: %d before retention (%d as XOR against the base), %d after (%d as XOR)\n",
		before.tensors, before.xorTensors, after.tensors, after.xorTensors)
}

// sumRoles adds up roles' tallies; only the named roles if any are given.
func sumRoles(roles map[string]*tally, only ...string) tally {
	var t tally
	for role, r := range roles {
		if len(only) > 0 && !slices.Contains(only, role) {
			continue
		}
		t.raw += r.raw
		t.stored += r.stored
	}
	return t
}

// cell formats stored bytes in MiB and their ratio to raw.
func cell(stored, raw int64) string {
	if raw == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f (%.3f)", float64(stored)/(1<<20), float64(stored)/float64(raw))
}

// printPeers prints the peers table: stored MiB and stored/raw of every
// file and of the weights files, before and after retention, for ckpt (each
// mode run), restic and the ZipLLM estimate.
func printPeers(out io.Writer, results []benchResult, rs *resticResult, zBefore, zAfter zipTotals) {
	header := []string{"", "raw MiB"}
	for _, r := range results {
		if r.deltas {
			header = append(header, "ckpt --deltas")
		} else {
			header = append(header, "ckpt")
		}
	}
	header = append(header, "restic", "ZipLLM est.")
	weights := string(layout.RoleWeights)
	type row struct {
		label string
		cells []string
	}
	var rows []row
	for _, scope := range []struct {
		label   string
		weights bool
		after   bool
	}{
		{"all files, before retention", false, false},
		{"all files, after retention", false, true},
		{"weights, before retention", true, false},
		{"weights, after retention", true, true},
	} {
		var cells []string
		var raw int64
		for i, r := range results {
			roles := r.before
			if scope.after {
				roles = r.after
			}
			var t tally
			if scope.weights {
				t = sumRoles(roles, weights)
			} else {
				t = sumRoles(roles)
			}
			if i == 0 {
				raw = t.raw
				cells = append(cells, fmt.Sprintf("%.1f", float64(raw)/(1<<20)))
			}
			cells = append(cells, cell(t.stored, t.raw))
		}
		switch {
		case rs == nil:
			cells = append(cells, "skipped")
		case scope.weights:
			cells = append(cells, "n/a")
		case scope.after:
			cells = append(cells, cell(rs.after, raw))
		default:
			cells = append(cells, cell(rs.before, raw))
		}
		z := zBefore
		if scope.after {
			z = zAfter
		}
		if scope.weights {
			cells = append(cells, cell(z.family.stored, z.family.raw))
		} else {
			cells = append(cells, "n/a")
		}
		rows = append(rows, row{scope.label, cells})
	}
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len(h)
	}
	for _, r := range rows {
		widths[0] = max(widths[0], len(r.label))
		for i, c := range r.cells {
			widths[i+1] = max(widths[i+1], len(c))
		}
	}
	fmt.Fprintln(out, "\npeers: stored MiB (stored/raw)")
	line := func(first string, rest []string) {
		fmt.Fprintf(out, "%-*s", widths[0], first)
		for i, c := range rest {
			fmt.Fprintf(out, "  %*s", widths[i+1], c)
		}
		fmt.Fprintln(out)
	}
	line(header[0], header[1:])
	for _, r := range rows {
		line(r.label, r.cells)
	}
	fmt.Fprintln(out, "restic backs up whole folders and cannot split its repository by file role (n/a for weights);")
	fmt.Fprintln(out, "the ZipLLM estimate covers the weights files only (n/a for all files); its after-retention")
	fmt.Fprintln(out, "figure keeps the base checkpoint it XORs against. ckpt counts blobs held only as references")
	fmt.Fprintln(out, "of deltas for the role that stored them.")
}
