package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/planes"
)

// PairAge is a run's weights at Step coded against the checkpoint at
// RefStep (-1: the base), Age checkpoints back (the base is one before the
// run's first): per chunk the smaller of standalone and the delta.
type PairAge struct {
	Step    int   `json:"step"`
	RefStep int   `json:"ref_step"`
	Age     int   `json:"age"`
	Raw     int64 `json:"raw"`
	Best    int64 `json:"best"`
}

// Strategy is what a run's weights store under one choice of references.
type Strategy struct {
	Run  string `json:"run"`
	Name string `json:"name"`
	// MaxDepth is the longest chain of deltas a read decodes (0: none).
	MaxDepth int   `json:"max_depth"`
	Stored   int64 `json:"stored"`
	Raw      int64 `json:"raw"`
}

// Chain is the cost of decoding a run's last weights through the chain of
// deltas against the previous checkpoint, against decoding it standalone.
type Chain struct {
	Run           string        `json:"run"`
	Depth         int           `json:"depth"` // deltas decoded after the first checkpoint's standalone chunk
	Bytes         int64         `json:"bytes"`
	ChainCPU      time.Duration `json:"chain_cpu_ns"`
	StandaloneCPU time.Duration `json:"standalone_cpu_ns"`
}

// measureMatrix codes each weights file against every earlier one of its
// run (and the base), evaluates reference strategies, and times decoding
// the last checkpoint through its chain.
func measureMatrix(rep *Report, run string, ckpts []checkpoint, files []*file, stds []coded, prevDeltas [][]chunkDelta, base *file, baseStd coded, fineTune bool) error {
	n := len(files)
	// best[i][j+1]: file i against file j (j = -1: the base), per chunk
	// the smaller of standalone and the delta; -1 when not measured.
	best := make([][]int64, n)
	var raw []int64
	for i, f := range files {
		best[i] = make([]int64, n+1)
		for j := range best[i] {
			best[i][j] = -1
		}
		var r int64
		for _, c := range f.chunks {
			r += c.size
		}
		raw = append(raw, r)
		refs := []int{}
		if fineTune {
			refs = append(refs, -1)
		}
		for j := 0; j < i; j++ {
			refs = append(refs, j)
		}
		for _, j := range refs {
			ref := base
			refStep := -1
			if j >= 0 {
				ref, refStep = files[j], ckpts[j].step
			}
			fmt.Fprintf(os.Stderr, "matrix %s step %d against %d\n", run, ckpts[i].step, refStep)
			st, _, err := compare(f, ref, stds[i], pairOptions{})
			if err != nil {
				return err
			}
			best[i][j+1] = st.BestChunk
			age := i - j
			rep.Distance[run] = append(rep.Distance[run], PairAge{Step: ckpts[i].step, RefStep: refStep, Age: age, Raw: r, Best: st.BestChunk})
		}
	}
	var totalRaw int64
	for _, r := range raw {
		totalRaw += r
	}
	std := func(i int) int64 {
		var s int64
		for _, x := range stds[i].sizes {
			s += int64(x)
		}
		return s
	}
	add := func(name string, depth int, stored int64) {
		rep.Strategies = append(rep.Strategies, Strategy{Run: run, Name: name, MaxDepth: depth, Stored: stored, Raw: totalRaw})
	}
	var s int64
	for i := range files {
		s += std(i)
	}
	add("standalone", 0, s)
	if fineTune {
		s = 0
		for i := range files {
			s += best[i][0]
		}
		add("base", 1, s)
	}
	// Chains of deltas against the previous checkpoint, at most k deep;
	// a checkpoint that would be deeper is a keyframe (standalone, or
	// against the base for a fine-tune: depth 1).
	for _, k := range []int{1, 2, 3, 5, n} {
		s, depth, maxDepth := int64(0), 0, 0 // depth of the previous checkpoint (the base: 0)
		for i := range files {
			switch {
			case depth < k && (i > 0 || fineTune):
				s += best[i][i] // against i-1 (the base when i == 0)
				depth++
			case fineTune:
				s += best[i][0]
				depth = 1
			default:
				s += std(i)
				depth = 0
			}
			maxDepth = max(maxDepth, depth)
		}
		name := fmt.Sprintf("prev, chains <= %d", k)
		if k == n {
			name = "prev, unbounded"
		}
		add(name, maxDepth, s)
	}
	// Keyframes every k checkpoints, standalone; the others against the
	// last keyframe (references only to blobs that are not deltas).
	for _, k := range []int{2, 3} {
		s = 0
		for i := range files {
			if key := i - i%k; key == i {
				s += std(i)
			} else {
				s += best[i][key+1]
			}
		}
		add(fmt.Sprintf("keyframe every %d, others against it", k), 1, s)
	}
	// After retention keeps the best checkpoint and the last two (the
	// ckpt default), with deltas against the previous checkpoint
	// re-encoded against the previous one kept.
	kept := keptAfterRetention(ckpts)
	var keptRaw, keptStd, keptBase, keptPrev int64
	for n, i := range kept {
		keptRaw += raw[i]
		keptStd += std(i)
		if fineTune {
			keptBase += best[i][0]
		}
		switch {
		case n > 0:
			keptPrev += best[i][kept[n-1]+1]
		case fineTune:
			keptPrev += best[i][0]
		default:
			keptPrev += std(i)
		}
	}
	addKept := func(name string, depth int, stored int64) {
		rep.Strategies = append(rep.Strategies, Strategy{Run: run, Name: name, MaxDepth: depth, Stored: stored, Raw: keptRaw})
	}
	addKept("after retention (best + last 2): standalone", 0, keptStd)
	if fineTune {
		addKept("after retention: base", 1, keptBase)
	}
	depth := len(kept) - 1
	if fineTune {
		depth++
	}
	addKept("after retention: prev, re-encoded against the previous kept", depth, keptPrev)
	return timeChain(rep, run, files, stds, prevDeltas)
}

// keptAfterRetention returns the indexes of the checkpoints that a best +
// last 2 retention keeps: the best by the last checkpoint's
// trainer_state.json (if it names one) and the last two.
func keptAfterRetention(ckpts []checkpoint) []int {
	keep := map[int]bool{}
	n := len(ckpts)
	for i := max(0, n-2); i < n; i++ {
		keep[i] = true
	}
	if st, err := layout.ReadTrainerState(filepath.Join(ckpts[n-1].dir, "trainer_state.json")); err == nil && st.BestGlobalStep != nil {
		for i, c := range ckpts {
			if int64(c.step) == *st.BestGlobalStep {
				keep[i] = true
			}
		}
	}
	var out []int
	for i := range ckpts {
		if keep[i] {
			out = append(out, i)
		}
	}
	return out
}

// timeChain decodes the last file's chunks from the first file's
// standalone chunks through each checkpoint's delta against the previous
// one, and compares the CPU time with decoding the last file's chunks
// standalone. Only chunks every link codes (or deduplicates) count.
func timeChain(rep *Report, run string, files []*file, stds []coded, prevDeltas [][]chunkDelta) error {
	n := len(files)
	if n < 2 {
		return nil
	}
	last := files[n-1]
	for _, f := range files {
		if len(f.chunks) != len(last.chunks) {
			return nil
		}
		for i, c := range f.chunks {
			if c.off != last.chunks[i].off || c.size != last.chunks[i].size {
				return nil
			}
		}
	}
	ch := Chain{Run: run, Depth: n - 1}
	// Two buffers, as a decoder that holds the reference and the result
	// would use them.
	bufs := [2][]byte{make([]byte, 0, maxChunk), make([]byte, 0, maxChunk)}
	for ci, c := range last.chunks {
		first, lastEnc := stds[0].enc[ci], stds[n-1].enc[ci]
		if first == nil || lastEnc == nil || c.elem < 2 {
			continue
		}
		usable := true
		for i := 1; i < n; i++ {
			d := prevDeltas[i][ci]
			if !d.same && (d.payload == nil || d.form != planes.RefSame) {
				usable = false
			}
		}
		if !usable {
			continue
		}
		start := threadCPU()
		x, err := planes.Decode(bufs[0][:0], first, int(c.size))
		if err != nil {
			return err
		}
		cur := 0
		for i := 1; i < n; i++ {
			if d := prevDeltas[i][ci]; !d.same {
				cur = 1 - cur
				if x, err = planes.DecodeDelta(bufs[cur][:0], d.payload, x, int(c.size)); err != nil {
					return fmt.Errorf("chain of %s at %d: %w", run, c.off, err)
				}
			}
		}
		ch.ChainCPU += threadCPU() - start
		if !bytes.Equal(x, last.bytesOf(c)) {
			return fmt.Errorf("chain of %s at %d decodes to other bytes", run, c.off)
		}
		start = threadCPU()
		if _, err := planes.Decode(bufs[1-cur][:0], lastEnc, int(c.size)); err != nil {
			return err
		}
		ch.StandaloneCPU += threadCPU() - start
		ch.Bytes += c.size
	}
	rep.Chains = append(rep.Chains, ch)
	return nil
}
