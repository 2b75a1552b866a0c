package synth

import (
	"cmp"
	"math"
	"slices"
)

// TrainerStateJSON returns the trainer_state.json of checkpoint i of spec
// as transformers 4.4x writes it: json.dumps(state, indent=2,
// sort_keys=True) + "\n". log_history has a training entry (epoch,
// grad_norm, learning_rate, loss, step) every logging_steps (10, or the
// first checkpoint's step if smaller) and an evaluation entry (epoch,
// eval_loss, eval_runtime, eval_samples_per_second, eval_steps_per_second,
// step) at every checkpoint step up to Steps[i] that has an eval loss.
// best_metric, best_model_checkpoint and best_global_step track the lowest
// eval_loss so far (null before the first evaluation);
// best_model_checkpoint is "<output_dir>/checkpoint-<step>" with
// spec.OutputDir, or "output" if that is empty. eval_steps and save_steps
// are Steps[0] and max_steps is the last step. It returns nil if i is out of
// range.
func TrainerStateJSON(spec RunSpec, i int) []byte {
	if i < 0 || i >= len(spec.Steps) {
		return nil
	}
	s := newSchedule(spec)
	step := spec.Steps[i]

	type event struct {
		step       int64
		checkpoint int // index into spec.Steps, or -1 for a training log
	}
	var events []event
	for logged := s.loggingSteps; logged <= step; logged += s.loggingSteps {
		events = append(events, event{logged, -1})
	}
	for k := 0; k <= i; k++ {
		events = append(events, event{spec.Steps[k], k})
	}
	// Trainer logs the training loss, then evaluates, then saves.
	slices.SortStableFunc(events, func(a, b event) int {
		return cmp.Or(cmp.Compare(a.step, b.step), cmp.Compare(a.checkpoint, b.checkpoint))
	})

	history := []any{}
	var (
		bestMetric     any // nil until the first evaluation
		bestCheckpoint any
		bestStep       any
		bestLoss       = math.Inf(1)
	)
	params := spec.Model.params()
	for _, e := range events {
		if e.checkpoint < 0 {
			history = append(history, trainingLogEntry(spec, s, e.step))
			continue
		}
		loss, ok := evalLoss(spec, e.checkpoint)
		if !ok {
			continue
		}
		history = append(history, evalLogEntry(spec, s, e.step, loss))
		if loss < bestLoss { // Trainer keeps the first of equal values
			bestLoss = loss
			bestMetric, bestStep = loss, e.step
			bestCheckpoint = s.checkpointPath(e.step)
		}
	}

	tokens := float64(step) * trainBatchSize * float64(spec.Model.Positions)
	state := pyObject{
		"best_global_step":      bestStep,
		"best_metric":           bestMetric,
		"best_model_checkpoint": bestCheckpoint,
		"epoch":                 s.epoch(step),
		"eval_steps":            s.saveSteps,
		"global_step":           step,
		"is_hyper_param_search": false,
		"is_local_process_zero": true,
		"is_world_process_zero": true,
		"log_history":           history,
		"logging_steps":         s.loggingSteps,
		"max_steps":             s.maxSteps,
		"num_input_tokens_seen": 0,
		"num_train_epochs":      s.epochs,
		"save_steps":            s.saveSteps,
		"stateful_callbacks": pyObject{
			"TrainerControl": pyObject{
				"args": pyObject{
					"should_epoch_stop":    false,
					"should_evaluate":      false,
					"should_log":           false,
					"should_save":          true,
					"should_training_stop": step >= s.maxSteps,
				},
				"attributes": pyObject{},
			},
		},
		"total_flos":       math.Round(6 * float64(params) * tokens),
		"train_batch_size": trainBatchSize,
		"trial_name":       nil,
		"trial_params":     nil,
	}
	return append(pyJSON(state), '\n')
}

// trainingLogEntry is the log_history entry Trainer writes every
// logging_steps: the loss (rounded to 4 places, as Trainer does) falls
// steadily, grad_norm (a float32 .item()) decays with noise.
func trainingLogEntry(spec RunSpec, s schedule, step int64) pyObject {
	r := newRand(spec.Seed, domainLog, "train", uint64(step))
	progress := float64(step) / float64(s.maxSteps)
	loss := 1.55 + 1.6*math.Exp(-4*progress) + 0.04*r.NormFloat64()
	gradNorm := float32(0.4 + 1.5*math.Exp(-3*progress) + 0.15*math.Abs(r.NormFloat64()))
	return pyObject{
		"epoch":         s.epoch(step),
		"grad_norm":     gradNorm,
		"learning_rate": s.learningRate(step),
		"loss":          pyRound(loss, 4),
		"step":          step,
	}
}

// evalLogEntry is the log_history entry of an evaluation with Trainer's
// speed metrics (runtime rounded to 4 places, rates to 3).
func evalLogEntry(spec RunSpec, s schedule, step int64, loss float64) pyObject {
	r := newRand(spec.Seed, domainLog, "eval", uint64(step))
	runtime := pyRound(1.4+0.4*r.Float64(), 4)
	evalBatches := float64((evalSamples + trainBatchSize - 1) / trainBatchSize)
	return pyObject{
		"epoch":                   s.epoch(step),
		"eval_loss":               loss,
		"eval_runtime":            runtime,
		"eval_samples_per_second": pyRound(evalSamples/runtime, 3),
		"eval_steps_per_second":   pyRound(evalBatches/runtime, 3),
		"step":                    step,
	}
}
