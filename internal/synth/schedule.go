package synth

import (
	"math"
	"strconv"
	"strings"
)

// Hyperparameters of the simulated training run.
const (
	baseLearningRate = 5e-5
	weightDecay      = 0.01
	trainBatchSize   = 8
	evalSamples      = 512
	defaultEpochs    = 3
	// defaultOutputDir is output_dir when neither RunSpec.OutputDir nor a
	// folder to write to says otherwise.
	defaultOutputDir = "output"
)

// schedule is the Trainer configuration a RunSpec implies.
type schedule struct {
	maxSteps      int64 // the last checkpoint's step
	saveSteps     int64 // also eval_steps: the first checkpoint's step
	loggingSteps  int64
	stepsPerEpoch int64
	epochs        int64
	outputDir     string
}

func newSchedule(spec RunSpec) schedule {
	s := schedule{outputDir: spec.OutputDir, maxSteps: 1, saveSteps: 1}
	if s.outputDir == "" {
		s.outputDir = defaultOutputDir
	}
	if n := len(spec.Steps); n > 0 {
		s.maxSteps = max(1, spec.Steps[n-1])
		s.saveSteps = max(1, spec.Steps[0])
	}
	s.loggingSteps = min(10, s.saveSteps)
	s.stepsPerEpoch = (s.maxSteps + defaultEpochs - 1) / defaultEpochs
	s.epochs = (s.maxSteps + s.stepsPerEpoch - 1) / s.stepsPerEpoch
	return s
}

// epoch is TrainerState.epoch after step optimizer steps.
func (s schedule) epoch(step int64) float64 {
	return float64(step) / float64(s.stepsPerEpoch)
}

// learningRate is the linear schedule's rate after step steps, computed as
// LambdaLR does in Python: base_lr * (float(max - step) / float(max)).
func (s schedule) learningRate(step int64) float64 {
	return baseLearningRate * (float64(s.maxSteps-step) / float64(s.maxSteps))
}

// checkpointPath is os.path.join(output_dir, "checkpoint-<step>").
func (s schedule) checkpointPath(step int64) string {
	dir := s.outputDir
	if !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	return dir + "checkpoint-" + strconv.FormatInt(step, 10)
}

// evalLoss returns the eval loss of checkpoint i and whether there was an
// evaluation: spec.EvalLoss[i] (NaN: none; missing entries: none), or the
// default curve when spec.EvalLoss is nil.
func evalLoss(spec RunSpec, i int) (float64, bool) {
	if spec.EvalLoss != nil {
		if i >= len(spec.EvalLoss) || math.IsNaN(spec.EvalLoss[i]) {
			return 0, false
		}
		return spec.EvalLoss[i], true
	}
	return defaultEvalLoss(spec, i), true
}

// defaultEvalLoss is a U-shaped curve over the checkpoints: falling, then
// rising after 40% of the run as the model overfits, so with two or more
// checkpoints the best is never the last. A jitter well below the curve's
// slope makes runs with different seeds differ. The value is rounded
// through float32, as Trainer's eval_loss comes from a float32 tensor.
func defaultEvalLoss(spec RunSpec, i int) float64 {
	x := 0.0
	if n := len(spec.Steps); n > 1 {
		x = float64(i) / float64(n-1)
	}
	jitter := newRand(spec.Seed, domainEval, "eval_loss", uint64(i)).Float64()
	loss := 2.0 + 1.2*(x-0.4)*(x-0.4) + 0.002*jitter
	return float64(float32(loss))
}
