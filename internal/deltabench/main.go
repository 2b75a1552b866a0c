// Command deltabench measures delta-coded blobs (issue 12, item 2) on real
// training output: every checkpoint file of a model family coded the way
// the store codes it today (byte planes per chunk) and as deltas
// (store/planes.EncodeDelta) against the same chunk of the family's base
// and of the previous checkpoint of the same run. It is a measurement, not a
// test: nothing runs it but a person (go run ./internal/deltabench).
//
//	go run ./internal/deltabench -data /work/data/family [-json out.json]
//
// The data folder holds one folder per run (checkpoint-N folders inside),
// as ../shared/train/train.py writes them; -base names the checkpoint the
// fine-tunes started from. For each run and file role (weights:
// model.safetensors or pytorch_model.bin; optimizer: optimizer.pt) it
// reports stored/raw for
//
//	standalone   today's coding (planes for weights, per chunk)
//	vs base      each chunk with a reference coded as a delta against the
//	             base's (identical chunks store nothing)
//	vs prev      the same against the previous checkpoint of the run
//	best         per chunk the smallest of standalone and the deltas
//
// with the op forced to XOR or subtraction, decisions per chunk or per
// tensor, whole-tensor coding, decode speeds (CPU time, which a loaded
// machine distorts less than the wall clock), and, with -matrix, every
// checkpoint against every earlier one: reference strategies (base only,
// previous with chains, keyframes) and the cost of decoding a chain.
//
// Chunks are planned as store/chunk.go plans them (safetensors at tensor
// boundaries); torch zips both as today (every 8 MiB) and at storage
// boundaries (issue 12 item 1). Object sizes include the 16-byte envelope
// header, and deltas the reference IDs the proposed envelope adds (store/
// planes doc.go: a count byte and 32 bytes per reference blob).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ckptdev/ckpt/store/planes"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.data, "data", "/work/data/family", "folder with one folder of checkpoint-N folders per run")
	runs := flag.String("runs", "pre,ft32,ftmix,ftbf16,frozen", "runs to measure, comma-separated, in order")
	flag.StringVar(&cfg.base, "base", "pre/checkpoint-600", "the checkpoint the fine-tunes started from (relative to -data)")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write all numbers to this file")
	flag.BoolVar(&cfg.matrix, "matrix", true, "code weights against every earlier checkpoint: strategies and chain decode cost")
	flag.BoolVar(&cfg.ops, "ops", true, "also code with each op forced (XOR, subtraction)")
	flag.IntVar(&cfg.timing, "timing", 3, "time each planes chunk's decode this many times both ways (best CPU time); 0: skip")
	flag.BoolVar(&cfg.optimizer, "optimizer", true, "measure optimizer.pt")
	flag.BoolVar(&looseRefs, "loose-refs", false, "let a delta reference any bytes of the reference file, not only up to 2 whole chunks")
	flag.Parse()
	cfg.runs = strings.Split(*runs, ",")
	// One OS thread does all the work, so thread CPU time measures it.
	runtime.LockOSThread()
	rep, err := measure(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deltabench:", err)
		os.Exit(1)
	}
	rep.print(os.Stdout)
	if cfg.jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", " ")
		if err == nil {
			err = os.WriteFile(cfg.jsonOut, b, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "deltabench:", err)
			os.Exit(1)
		}
	}
}

type config struct {
	data, base, jsonOut string
	runs                []string
	matrix, ops         bool
	timing              int
	optimizer           bool
}

// checkpoint is one checkpoint-N folder.
type checkpoint struct {
	dir  string
	step int
}

// listCheckpoints returns the checkpoint-N folders of dir by step.
func listCheckpoints(dir string) ([]checkpoint, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []checkpoint
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "checkpoint-")
		if !e.IsDir() || !ok {
			continue
		}
		step, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		out = append(out, checkpoint{filepath.Join(dir, e.Name()), step})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].step < out[j].step })
	return out, nil
}

// role is a file of a checkpoint read with one chunk plan.
type role struct {
	name string
	load func(dir string) (*file, error) // nil file: the checkpoint has none
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func roles(optimizer bool) []role {
	rs := []role{
		{"weights", func(dir string) (*file, error) {
			if p := filepath.Join(dir, "model.safetensors"); exists(p) {
				return readSafetensors(p)
			}
			if p := filepath.Join(dir, "pytorch_model.bin"); exists(p) {
				return readTorchZip(p, true, 0)
			}
			return nil, nil
		}},
		{"weights-bin-today", func(dir string) (*file, error) {
			if p := filepath.Join(dir, "pytorch_model.bin"); exists(p) {
				return readTorchZip(p, false, 0)
			}
			return nil, nil
		}},
	}
	if optimizer {
		rs = append(rs,
			role{"optimizer", func(dir string) (*file, error) {
				if p := filepath.Join(dir, "optimizer.pt"); exists(p) {
					return readTorchZip(p, true, 0)
				}
				return nil, nil
			}},
			role{"optimizer-today", func(dir string) (*file, error) {
				if p := filepath.Join(dir, "optimizer.pt"); exists(p) {
					return readTorchZip(p, false, 4)
				}
				return nil, nil
			}})
	}
	return rs
}

// Row is one checkpoint file against its references.
type Row struct {
	Run  string `json:"run"`
	Step int    `json:"step"`
	Role string `json:"role"`
	// Base and Prev are against the base and the previous checkpoint
	// of the run (Prev of a run's first checkpoint is absent).
	Base *Stats `json:"base,omitempty"`
	Prev *Stats `json:"prev,omitempty"`
	// BestAll is per chunk the smallest of standalone and both deltas.
	BestAll int64 `json:"best_all"`
	// EncodeStandalone and EncodeDelta are CPU times of coding the file
	// standalone and as deltas (auto op, all references).
	EncodeStandalone time.Duration `json:"encode_standalone_ns"`
	EncodeDelta      time.Duration `json:"encode_delta_ns"`
	EncodedDelta     int64         `json:"encoded_delta_bytes"`
}

// Report is everything deltabench measured.
type Report struct {
	Data       string               `json:"data"`
	Base       string               `json:"base"`
	Complete   bool                 `json:"complete"` // the data folder has its DONE marker
	Runs       map[string][]int     `json:"runs"`
	Rows       []Row                `json:"rows"`
	Strategies []Strategy           `json:"strategies,omitempty"`
	Chains     []Chain              `json:"chains,omitempty"`
	Distance   map[string][]PairAge `json:"distance,omitempty"`
}

func measure(cfg config) (*Report, error) {
	rep := &Report{Data: cfg.data, Base: cfg.base, Runs: map[string][]int{}, Distance: map[string][]PairAge{}}
	rep.Complete = exists(filepath.Join(cfg.data, "DONE"))
	baseDir := filepath.Join(cfg.data, cfg.base)
	baseRun := filepath.Dir(cfg.base)
	for _, rl := range roles(cfg.optimizer) {
		base, err := rl.load(baseDir)
		if err != nil {
			return nil, err
		}
		var baseStd coded
		if base != nil {
			baseStd = codeStandalone(base)
		}
		for _, run := range cfg.runs {
			ckpts, err := listCheckpoints(filepath.Join(cfg.data, run))
			if err != nil {
				return nil, err
			}
			if len(ckpts) == 0 {
				continue
			}
			steps := make([]int, len(ckpts))
			for i, c := range ckpts {
				steps[i] = c.step
			}
			rep.Runs[run] = steps
			fineTune := run != baseRun && base != nil && !strings.HasPrefix(rl.name, "optimizer")
			if err := measureRun(cfg, rep, rl, run, ckpts, base, baseStd, fineTune); err != nil {
				return nil, err
			}
		}
	}
	return rep, nil
}

// measureRun measures one role of one run's checkpoints, in order.
func measureRun(cfg config, rep *Report, rl role, run string, ckpts []checkpoint, base *file, baseStd coded, fineTune bool) error {
	var files []*file // all of them in matrix mode
	var stds []coded
	var prevPayloads [][]chunkDelta
	var prev *file
	matrix := cfg.matrix && rl.name == "weights"
	for _, ck := range ckpts {
		f, err := rl.load(ck.dir)
		if err != nil {
			return err
		}
		if f == nil {
			return nil
		}
		fmt.Fprintf(os.Stderr, "%s %s step %d\n", rl.name, run, ck.step)
		row := Row{Run: run, Step: ck.step, Role: rl.name}
		start := threadCPU()
		std := codeStandalone(f)
		row.EncodeStandalone = threadCPU() - start
		opt := pairOptions{ops: cfg.ops, perTensor: true, timing: cfg.timing, keep: matrix}
		var vsBase, vsPrev []chunkDelta
		start = threadCPU()
		if fineTune {
			st, d, err := compare(f, base, std, opt)
			if err != nil {
				return err
			}
			row.Base, vsBase = &st, d
			row.EncodedDelta += st.Raw
		}
		if prev != nil {
			st, d, err := compare(f, prev, std, opt)
			if err != nil {
				return err
			}
			row.Prev, vsPrev = &st, d
			row.EncodedDelta += st.Raw
		}
		row.EncodeDelta = threadCPU() - start
		// Timing and forced ops are inside EncodeDelta's time; report
		// encode speed from a pass without them.
		if row.EncodedDelta > 0 && (cfg.ops || cfg.timing > 0) {
			row.EncodeDelta, row.EncodedDelta = encodeOnlyTime(f, base, prev, fineTune)
		}
		row.BestAll = bestAll(std, vsBase, vsPrev)
		rep.Rows = append(rep.Rows, row)
		if matrix {
			files = append(files, f)
			stds = append(stds, std)
			prevPayloads = append(prevPayloads, vsPrev)
		}
		prev = f
	}
	if matrix {
		return measureMatrix(rep, run, ckpts, files, stds, prevPayloads, base, baseStd, fineTune)
	}
	return nil
}

// encodeOnlyTime returns the CPU time of coding f's chunks as deltas
// against base (if fineTune) and prev (if any), auto op only, and the
// bytes coded.
func encodeOnlyTime(f, base, prev *file, fineTune bool) (time.Duration, int64) {
	var total time.Duration
	var n int64
	for _, ref := range []*file{base, prev} {
		if ref == nil || (ref == base && !fineTune) {
			continue
		}
		for _, c := range f.chunks {
			rb, form, ok := reference(f, ref, c)
			if !ok {
				continue
			}
			start := threadCPU()
			if _, err := encodeDelta(f.bytesOf(c), rb, form, c.elem, planes.OpAuto); err == nil {
				total += threadCPU() - start
				n += c.size
			}
		}
	}
	return total, n
}

// bestAll sums per chunk the smallest of standalone and the deltas.
func bestAll(std coded, deltas ...[]chunkDelta) int64 {
	var total int64
	for i, s := range std.sizes {
		best := int64(s)
		for _, ds := range deltas {
			if ds == nil {
				continue
			}
			switch d := ds[i]; {
			case d.same:
				best = 0
			case d.has:
				best = min(best, int64(d.size))
			}
		}
		total += best
	}
	return total
}
