package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// summary sums a role's rows of one run.
type summary struct {
	raw, standalone, bestAll int64
	base, prev               Stats
	hasBase, hasPrev         bool
	encStd, encDelta         time.Duration
	encDeltaBytes            int64
}

func (r *Report) summaries() (keys [][2]string, sums map[[2]string]*summary) {
	sums = map[[2]string]*summary{}
	for _, row := range r.Rows {
		k := [2]string{row.Role, row.Run}
		s, ok := sums[k]
		if !ok {
			s = &summary{}
			sums[k] = s
			keys = append(keys, k)
		}
		st := row.Prev
		if st == nil {
			st = row.Base
		}
		if st == nil {
			// A base-run first checkpoint: its size is in neither
			// delta column; count it in standalone only.
			continue
		}
		s.raw += st.Raw
		s.standalone += st.Standalone
		s.bestAll += row.BestAll
		if row.Base != nil {
			s.base.add(*row.Base)
			s.hasBase = true
		}
		if row.Prev != nil {
			s.prev.add(*row.Prev)
			s.hasPrev = true
		}
		s.encStd += row.EncodeStandalone
		s.encDelta += row.EncodeDelta
		s.encDeltaBytes += row.EncodedDelta
	}
	return keys, sums
}

func ratio(a, b int64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.3f", float64(a)/float64(b))
}

func mbps(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", float64(bytes)/d.Seconds()/1e6)
}

func (r *Report) print(out io.Writer) {
	w := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintf(w, "data %s, base %s", r.Data, r.Base)
	if !r.Complete {
		fmt.Fprint(w, " (no DONE marker: the data may be incomplete)")
	}
	fmt.Fprint(w, "\n\nstored / raw (16-byte envelope per object; deltas + 1 + 32 bytes per reference blob; identical chunks store nothing)\n")
	fmt.Fprint(w, "role\trun\tstandalone\tvs base\tvs prev\tbest of all per chunk\tckpts\n")
	keys, sums := r.summaries()
	for _, k := range keys {
		s := sums[k]
		base, prev := "—", "—"
		if s.hasBase {
			base = ratio(s.base.Delta, s.base.Raw)
		}
		if s.hasPrev {
			prev = ratio(s.prev.Delta, s.prev.Raw)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", k[0], k[1], ratio(s.standalone, s.raw), base, prev, ratio(s.bestAll, s.raw), len(r.Runs[k[1]]))
	}
	fmt.Fprint(w, "\nstandalone counts every checkpoint that has a reference (a base run's first has none); vs prev is over a run's 2nd..last checkpoint\n")

	fmt.Fprint(w, "\ndecisions and ops, stored / raw\n")
	fmt.Fprint(w, "role\trun\tref\tdelta always\tbest per chunk\tbest per tensor\txor only\tsub only\tissue's method (xor, v1 planes)\twhole-tensor / per-chunk delta\tchunks: ref / dedup / smaller / all\n")
	for _, k := range keys {
		s := sums[k]
		for _, ref := range []struct {
			name string
			has  bool
			st   Stats
		}{{"base", s.hasBase, s.base}, {"prev", s.hasPrev, s.prev}} {
			if !ref.has {
				continue
			}
			st := ref.st
			xor, sub, v1 := "—", "—", "—"
			if st.XOR > 0 {
				xor, sub, v1 = ratio(st.XOR, st.Raw), ratio(st.Sub, st.Raw), ratio(st.XORv1, st.Raw)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d / %d / %d / %d\n", k[0], k[1], ref.name,
				ratio(st.Delta, st.Raw), ratio(st.BestChunk, st.Raw), ratio(st.BestTensor, st.Raw), xor, sub, v1,
				ratio(st.TensorWhole, st.TensorChunked), st.Referenced, st.Deduped, st.DeltaWins, st.Chunks)
		}
	}

	fmt.Fprint(w, "\nspeed, MB/s of content per CPU second (one core; the machine is shared, compare within a row)\n")
	fmt.Fprint(w, "role\trun\tdecode standalone\tdecode delta\tencode standalone\tencode delta\n")
	for _, k := range keys {
		s := sums[k]
		var dec Stats
		dec.add(s.base)
		dec.add(s.prev)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", k[0], k[1], mbps(dec.DecodedBytes, dec.DecodeStandalone), mbps(dec.DecodedBytes, dec.DecodeDelta),
			mbps(s.raw, s.encStd), mbps(s.encDeltaBytes, s.encDelta))
	}

	fmt.Fprint(w, "\nper checkpoint, stored / raw\n")
	fmt.Fprint(w, "role\trun\tstep\traw MB\tstandalone\tvs base\tvs prev\tbest\n")
	for _, row := range r.Rows {
		st := row.Prev
		if st == nil {
			st = row.Base
		}
		if st == nil {
			continue
		}
		base, prev := "—", "—"
		if row.Base != nil {
			base = ratio(row.Base.Delta, row.Base.Raw)
		}
		if row.Prev != nil {
			prev = ratio(row.Prev.Delta, row.Prev.Raw)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%.1f\t%s\t%s\t%s\t%s\n", row.Role, row.Run, row.Step, float64(st.Raw)/1e6, ratio(st.Standalone, st.Raw), base, prev, ratio(row.BestAll, st.Raw))
	}

	if len(r.Distance) > 0 {
		fmt.Fprint(w, "\nweights against a checkpoint k back (per chunk best of standalone and delta), stored / raw, mean over pairs\n")
		fmt.Fprint(w, "run\tk=1\tk=2\tk=3\tk=4\tk=5\tk=6\n")
		for _, run := range orderedRuns(r) {
			pairs := r.Distance[run]
			if len(pairs) == 0 {
				continue
			}
			var best, raw [7]int64
			for _, p := range pairs {
				if p.Age < len(best) {
					best[p.Age] += p.Best
					raw[p.Age] += p.Raw
				}
			}
			fmt.Fprintf(w, "%s", run)
			for k := 1; k < len(best); k++ {
				fmt.Fprintf(w, "\t%s", ratio(best[k], raw[k]))
			}
			fmt.Fprintln(w)
		}
		fmt.Fprint(w, "(for a fine-tune, k counts the base as one checkpoint before the run's first)\n")
	}
	if len(r.Strategies) > 0 {
		fmt.Fprint(w, "\nreference strategies, weights of whole runs, stored / raw\n")
		fmt.Fprint(w, "run\tstrategy\tmax chain depth\tstored / raw\n")
		for _, s := range r.Strategies {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", s.Run, s.Name, s.MaxDepth, ratio(s.Stored, s.Raw))
		}
	}
	if len(r.Chains) > 0 {
		fmt.Fprint(w, "\ndecoding the last checkpoint's weights through the chain of deltas against the previous one (CPU, decode only)\n")
		fmt.Fprint(w, "run\tdepth\tMB\tchain MB/s\tstandalone MB/s\tchain / standalone time\n")
		for _, c := range r.Chains {
			x := "—"
			if c.StandaloneCPU > 0 {
				x = fmt.Sprintf("%.1fx", c.ChainCPU.Seconds()/c.StandaloneCPU.Seconds())
			}
			fmt.Fprintf(w, "%s\t%d\t%.1f\t%s\t%s\t%s\n", c.Run, c.Depth, float64(c.Bytes)/1e6, mbps(c.Bytes, c.ChainCPU), mbps(c.Bytes, c.StandaloneCPU), x)
		}
	}
	w.Flush()
}

func orderedRuns(r *Report) []string {
	var out []string
	seen := map[string]bool{}
	for _, row := range r.Rows {
		if !seen[row.Run] {
			seen[row.Run] = true
			out = append(out, row.Run)
		}
	}
	return out
}
