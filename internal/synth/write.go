package synth

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ckptdev/ckpt/layout"
)

// RunSpec describes one fine-tuning run whose checkpoints WriteRun and
// WriteCheckpoint write.
type RunSpec struct {
	Model Model
	// Seed makes the run: its perturbations, optimizer state, logs and (when
	// BaseDir is empty) its base weights.
	Seed uint64
	// Steps are the checkpoint steps, positive and increasing, e.g.
	// {100, 200, 300}. Steps[0] is save_steps and eval_steps; the last is
	// max_steps.
	Steps []int64
	// EvalLoss is the eval_loss logged at each step; NaN means no
	// evaluation at that step. nil: a realistic curve that falls, then rises
	// after the middle, so the best checkpoint is not the last.
	EvalLoss []float64
	// Drift is the standard deviation of each checkpoint's perturbation of
	// the base, relative to each tensor's own: 0 means 0.25 (almost every
	// bf16 element changes); small values (0.001) look like fine-tuning at a
	// low learning rate, where delta coding pays.
	Drift float64
	// FrozenEmbedding keeps wte.weight and wpe.weight byte-identical to the
	// base model's in every checkpoint (and out of the optimizer state).
	FrozenEmbedding bool
	// Shards: 0 or 1 writes model.safetensors; N > 1 writes
	// model-0000k-of-0000N.safetensors and model.safetensors.index.json.
	Shards int
	// WeightsOnly leaves out config.json, generation_config.json and the
	// tokenizer: checkpoints hold weights, trainer_state.json and, with
	// ResumeState, the resume state.
	WeightsOnly bool
	// ResumeState adds optimizer.pt, scheduler.pt, scaler.pt (fp16 models
	// only, as Trainer saves it only with a GradScaler), rng_state.pth and
	// training_args.bin, all in torch.save's zip format.
	ResumeState bool
	// OptimizerScale multiplies the size of optimizer.pt relative to the
	// float32 size of the trainable parameters; 0 means 2.0 (Adam's exp_avg
	// and exp_avg_sq). Tests use small values to stay fast.
	OptimizerScale float64
	// TokenizerDir is the folder tokenizer files and config.json are copied
	// from; config.json is rewritten to Model's shape. Required unless
	// WeightsOnly.
	TokenizerDir string
	// BaseDir, if set, is a model folder written by WriteBase (with the same
	// Model) that the run fine-tunes: every checkpoint is its weights plus a
	// perturbation, frozen tensors are copied byte for byte. If empty, the
	// base is the one WriteBase would write with Seed.
	BaseDir string
	// OutputDir is output_dir as the training script passed it: it appears
	// in best_model_checkpoint and training_args.bin. WriteRun and
	// WriteCheckpoint use their outputDir argument when it is empty;
	// TrainerStateJSON uses "output".
	OutputDir string
}

// Stages of WriteCheckpoint, in order. pause is called after each one that
// applies to the spec, except the last.
const (
	StageWeights      = "weights"       // model.safetensors or shards + index
	StageConfig       = "config"        // config.json, generation_config.json
	StageTokenizer    = "tokenizer"     // tokenizer files
	StageTrainingArgs = "training_args" // training_args.bin
	StageOptimizer    = "optimizer"     // optimizer.pt
	StageScheduler    = "scheduler"     // scheduler.pt (and scaler.pt)
	StageRNGState     = "rng_state"     // rng_state.pth
	StageTrainerState = "trainer_state" // trainer_state.json, always last
)

// validate checks spec before anything is written.
func (spec RunSpec) validate() error {
	if err := spec.Model.validate(); err != nil {
		return err
	}
	if len(spec.Steps) == 0 {
		return errors.New("synth: run has no checkpoint steps")
	}
	for i, step := range spec.Steps {
		if step <= 0 || (i > 0 && step <= spec.Steps[i-1]) {
			return fmt.Errorf("synth: checkpoint steps %v: want positive and increasing", spec.Steps)
		}
	}
	if spec.EvalLoss != nil && len(spec.EvalLoss) != len(spec.Steps) {
		return fmt.Errorf("synth: %d eval losses for %d checkpoint steps", len(spec.EvalLoss), len(spec.Steps))
	}
	if spec.Shards < 0 {
		return fmt.Errorf("synth: %d shards", spec.Shards)
	}
	if spec.OptimizerScale < 0 || math.IsNaN(spec.OptimizerScale) || math.IsInf(spec.OptimizerScale, 0) {
		return fmt.Errorf("synth: optimizer scale %v: want 0 (default) or positive", spec.OptimizerScale)
	}
	if !spec.WeightsOnly && spec.TokenizerDir == "" {
		return errors.New("synth: TokenizerDir is required unless WeightsOnly")
	}
	return nil
}

// WriteBase writes a runnable base model folder into dir: config.json and
// generation_config.json (from tokenizerDir's config.json, reshaped to m),
// the tokenizer files found in tokenizerDir, and model.safetensors with
// metadata {"format": "pt"} whose values are drawn from seed.
func WriteBase(dir string, m Model, seed uint64, tokenizerDir string) error {
	if err := m.validate(); err != nil {
		return err
	}
	if tokenizerDir == "" {
		return errors.New("synth: WriteBase needs a tokenizer folder")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if err := writeModelConfigs(dir, tokenizerDir, m); err != nil {
		return err
	}
	if err := copyTokenizer(dir, tokenizerDir); err != nil {
		return err
	}
	_, err := writeWeights(dir, &weightPlan{model: m, baseSeed: seed}, 1)
	return err
}

// WriteRun writes outputDir/checkpoint-<step>/ for every step of spec, as
// WriteCheckpoint does, and returns the checkpoint folders in step order.
func WriteRun(outputDir string, spec RunSpec) ([]string, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	dirs := make([]string, 0, len(spec.Steps))
	for i := range spec.Steps {
		dir, err := WriteCheckpoint(outputDir, spec, i, nil)
		if err != nil {
			return dirs, err
		}
		dirs = append(dirs, dir)
	}
	return dirs, nil
}

// WriteCheckpoint writes checkpoint i of spec into
// outputDir/checkpoint-<Steps[i]>/ in the order Trainer's _save_checkpoint
// does, trainer_state.json last: weights, config and tokenizer (unless
// WeightsOnly), then with ResumeState training_args.bin, optimizer.pt,
// scheduler.pt (+ scaler.pt for F16), rng_state.pth, and finally
// trainer_state.json. pause, if not nil, is called with the name of each
// finished stage (the Stage constants) before the next one starts, so a
// test can observe a half-written checkpoint. It returns the folder.
func WriteCheckpoint(outputDir string, spec RunSpec, i int, pause func(stage string)) (string, error) {
	if err := spec.validate(); err != nil {
		return "", err
	}
	if i < 0 || i >= len(spec.Steps) {
		return "", fmt.Errorf("synth: checkpoint %d of a run with %d steps", i, len(spec.Steps))
	}
	if spec.OutputDir == "" {
		spec.OutputDir = outputDir
	}
	step := spec.Steps[i]
	dir := filepath.Join(outputDir, "checkpoint-"+strconv.FormatInt(step, 10))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("synth: %w", err)
	}
	if pause == nil {
		pause = func(string) {}
	}
	s := newSchedule(spec)

	stages := []struct {
		name  string
		apply bool
		write func() error
	}{
		{StageWeights, true, func() error { return writeCheckpointWeights(dir, spec, step) }},
		{StageConfig, !spec.WeightsOnly, func() error { return writeModelConfigs(dir, spec.TokenizerDir, spec.Model) }},
		{StageTokenizer, !spec.WeightsOnly, func() error { return copyTokenizer(dir, spec.TokenizerDir) }},
		{StageTrainingArgs, spec.ResumeState, func() error { return writeTrainingArgs(dir, spec, s) }},
		{StageOptimizer, spec.ResumeState, func() error { return writeOptimizer(dir, spec, s, step) }},
		{StageScheduler, spec.ResumeState, func() error {
			if err := writeScheduler(dir, s, step); err != nil {
				return err
			}
			if spec.Model.Dtype == layout.DtypeF16 {
				return writeScaler(dir, step)
			}
			return nil
		}},
		{StageRNGState, spec.ResumeState, func() error { return writeRNGState(dir, spec, step) }},
		{StageTrainerState, true, func() error {
			return writeFileBytes(filepath.Join(dir, "trainer_state.json"), TrainerStateJSON(spec, i))
		}},
	}
	for k, stage := range stages {
		if !stage.apply {
			continue
		}
		if err := stage.write(); err != nil {
			return dir, err
		}
		if k < len(stages)-1 {
			pause(stage.name)
		}
	}
	return dir, nil
}

// writeCheckpointWeights writes the weights of the checkpoint at step: the
// base's values plus a perturbation drawn from (Seed, step), frozen tensors
// exactly the base's.
func writeCheckpointWeights(dir string, spec RunSpec, step int64) error {
	plan := &weightPlan{
		model:           spec.Model,
		baseSeed:        spec.Seed,
		perturb:         true,
		runSeed:         spec.Seed,
		step:            step,
		drift:           spec.Drift,
		frozenEmbedding: spec.FrozenEmbedding,
	}
	if spec.BaseDir != "" {
		base, err := openBaseWeights(spec.BaseDir)
		if err != nil {
			return err
		}
		defer base.Close()
		plan.base = base
	}
	_, err := writeWeights(dir, plan, spec.Shards)
	return err
}
