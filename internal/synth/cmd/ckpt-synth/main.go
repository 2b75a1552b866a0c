// Command ckpt-synth writes synthetic Hugging Face model folders and
// Trainer runs for `make demo` and `make bench`.
//
//	ckpt-synth -out DIR -preset demo|tiny|bench [-size 1GiB] [-dtype bf16|f32] [-steps 100,200,300]
//	           [-tokenizer testdata/gpt2] [-seed N] [-optimizer-scale X]
//
// Presets demo and tiny write DIR/base (a runnable base model), DIR/run-a
// (a full fine-tune of it: config, tokenizer and resume state in every
// checkpoint) and DIR/run-b (a second fine-tune of the same base with
// another seed, weights only, embeddings frozen). Preset bench writes only
// DIR/bench: one model folder with -size of bf16 (or -dtype f32) weights in
// a single model.safetensors, plus config and tokenizer.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/layout"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h: the flag package printed the usage
		}
		fmt.Fprintln(os.Stderr, "ckpt-synth:", err)
		os.Exit(1)
	}
}

type options struct {
	out, preset, tokenizer string
	size                   int64
	dtype                  layout.Dtype
	steps                  []int64
	seed                   uint64
	optimizerScale         float64
}

func parseFlags(args []string) (options, error) {
	var (
		opts              options
		sizeText, steps   string
		dtype             string
		flags             = flag.NewFlagSet("ckpt-synth", flag.ContinueOnError)
		defaultTokenizers = filepath.Join("testdata", "gpt2")
	)
	flags.StringVar(&opts.out, "out", "", "output folder (required)")
	flags.StringVar(&opts.preset, "preset", "demo", "what to write: demo, tiny or bench")
	flags.StringVar(&sizeText, "size", "1GiB", "bench preset: size of the weights (e.g. 1GiB, 256MiB, 100MB)")
	flags.StringVar(&dtype, "dtype", "bf16", "bench preset: dtype of the weights, bf16 or f32")
	flags.StringVar(&steps, "steps", "100,200,300", "checkpoint steps of each run")
	flags.StringVar(&opts.tokenizer, "tokenizer", defaultTokenizers, "folder with config.json and tokenizer files")
	flags.Uint64Var(&opts.seed, "seed", 1, "seed of the base model; the runs use seed+1 and seed+2")
	flags.Float64Var(&opts.optimizerScale, "optimizer-scale", 0, "optimizer.pt size as a multiple of the fp32 parameters (0: 2.0, like Adam)")
	if err := flags.Parse(args); err != nil {
		return opts, err
	}
	if flags.NArg() > 0 {
		return opts, fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	if opts.out == "" {
		return opts, errors.New("-out is required")
	}
	var err error
	if opts.size, err = parseSize(sizeText); err != nil {
		return opts, err
	}
	switch dtype {
	case "bf16":
		opts.dtype = layout.DtypeBF16
	case "f32", "fp32":
		opts.dtype = layout.DtypeF32
	default:
		return opts, fmt.Errorf("-dtype %q: want bf16 or f32", dtype)
	}
	for _, field := range strings.Split(steps, ",") {
		step, err := strconv.ParseInt(strings.TrimSpace(field), 10, 64)
		if err != nil {
			return opts, fmt.Errorf("-steps %q: %w", steps, err)
		}
		opts.steps = append(opts.steps, step)
	}
	return opts, nil
}

// parseSize reads a byte count such as 1073741824, 1GiB, 512MiB, 100MB or
// 2G (binary units for "G", "M", "K").
func parseSize(text string) (int64, error) {
	units := []struct {
		suffix string
		scale  float64
	}{
		{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
		{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1},
	}
	number, scale := strings.TrimSpace(text), 1.0
	for _, unit := range units {
		if strings.HasSuffix(number, unit.suffix) {
			number, scale = strings.TrimSpace(strings.TrimSuffix(number, unit.suffix)), unit.scale
			break
		}
	}
	value, err := strconv.ParseFloat(number, 64)
	if err != nil || value <= 0 {
		return 0, fmt.Errorf("-size %q: want a positive size such as 1GiB", text)
	}
	return int64(value * scale), nil
}

func run(args []string, stdout io.Writer) error {
	opts, err := parseFlags(args)
	if err != nil {
		return err
	}
	switch opts.preset {
	case "demo":
		return writeRuns(opts, synth.DemoModel(), stdout)
	case "tiny":
		return writeRuns(opts, synth.TinyModel(), stdout)
	case "bench":
		return writeBench(opts, stdout)
	}
	return fmt.Errorf("-preset %q: want demo, tiny or bench", opts.preset)
}

// writeRuns writes base, run-a and run-b.
func writeRuns(opts options, model synth.Model, stdout io.Writer) error {
	started := time.Now()
	baseDir := filepath.Join(opts.out, "base")
	if err := synth.WriteBase(baseDir, model, opts.seed, opts.tokenizer); err != nil {
		return err
	}
	report(stdout, baseDir, "base model", model)

	runA := synth.RunSpec{
		Model:          model,
		Seed:           opts.seed + 1,
		Steps:          opts.steps,
		ResumeState:    true,
		OptimizerScale: opts.optimizerScale,
		TokenizerDir:   opts.tokenizer,
		BaseDir:        baseDir,
	}
	runB := synth.RunSpec{
		Model:           model,
		Seed:            opts.seed + 2,
		Steps:           opts.steps,
		FrozenEmbedding: true,
		WeightsOnly:     true,
		BaseDir:         baseDir,
	}
	for _, r := range []struct {
		name, what string
		spec       synth.RunSpec
	}{
		{"run-a", "full fine-tune with resume state", runA},
		{"run-b", "weights only, frozen embeddings", runB},
	} {
		dirs, err := synth.WriteRun(filepath.Join(opts.out, r.name), r.spec)
		if err != nil {
			return err
		}
		for _, dir := range dirs {
			report(stdout, dir, r.what, model)
		}
	}
	fmt.Fprintf(stdout, "done in %s\n", time.Since(started).Round(time.Millisecond))
	return nil
}

// writeBench writes one model folder of opts.size weights of opts.dtype.
func writeBench(opts options, stdout io.Writer) error {
	model := synth.ModelOfSize(opts.size, opts.dtype)
	dir := filepath.Join(opts.out, "bench")
	started := time.Now()
	if err := synth.WriteBase(dir, model, opts.seed, opts.tokenizer); err != nil {
		return err
	}
	elapsed := time.Since(started)
	report(stdout, dir, "bench model", model)
	fmt.Fprintf(stdout, "done in %s (%.0f MB/s)\n", elapsed.Round(time.Millisecond),
		float64(model.WeightBytes())/1e6/elapsed.Seconds())
	return nil
}

// report prints one line about a folder written: path, total size, files
// and the model shape.
func report(stdout io.Writer, dir, what string, model synth.Model) {
	var total int64
	files := 0
	_ = filepath.WalkDir(dir, func(_ string, entry fs.DirEntry, err error) error {
		if err != nil || entry.IsDir() {
			return err
		}
		info, err := entry.Info()
		if err == nil {
			total += info.Size()
			files++
		}
		return err
	})
	fmt.Fprintf(stdout, "%-40s %9s  %2d files  %s (%d layers, hidden %d, vocab %d, %s)\n",
		dir, humanBytes(total), files, what, model.Layers, model.Hidden, model.Vocab, model.Dtype)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
