package retention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// This file compares retention plans with what Hugging Face transformers'
// Trainer leaves on disk with save_total_limit=N and
// load_best_model_at_end=True. trainerRun re-implements, step by step, the
// parts of src/transformers/trainer.py (huggingface/transformers, commit
// 000945a9b726d87a93e61e873b88ff8f3cd411b5) that decide this:
//
//   - _maybe_log_save_evaluate: evaluate (and _determine_best_metric) first,
//     then _save_checkpoint;
//   - _determine_best_metric: best_metric starts at -inf/+inf and is replaced
//     only when np.greater/np.less says the new value is strictly better;
//     best_global_step is then set to the current step;
//   - _save_checkpoint: save, then best_model_checkpoint =
//     checkpoint-{best_global_step} only if that directory exists, then
//     _rotate_checkpoints;
//   - _sorted_checkpoints: sort by step, then bubble the best checkpoint
//     towards the end with "for i in range(best_model_index,
//     len(checkpoints_sorted) - 2): swap(i, i+1)", i.e. to the second-to-last
//     place, unless it already is last or second-to-last;
//   - _rotate_checkpoints: nothing if len <= save_total_limit; a limit of 1
//     becomes 2 when the best exists and is not the last; delete the first
//     len - limit of the sorted list.
//
// (Trainer sorts by mtime and falls back to step numbers on coarse clocks; in
// one run both orders agree.)

type trainerRun struct {
	limit   int
	greater bool

	bestMetric     float64 // state.best_metric; only meaningful once evaluated
	evaluated      bool
	bestGlobalStep int64 // state.best_global_step; 0 = none
	bestCheckpoint int64 // state.best_model_checkpoint as a step; 0 = none
	folder         []int64
}

func (r *trainerRun) evaluate(step int64, v float64) {
	if !r.evaluated {
		r.evaluated = true
		r.bestMetric = math.Inf(1)
		if r.greater {
			r.bestMetric = math.Inf(-1)
		}
	}
	if better(v, r.bestMetric, r.greater) { // false for NaN, like np.less/np.greater
		r.bestMetric = v
		r.bestGlobalStep = step
	}
}

func (r *trainerRun) save(step int64) {
	r.folder = append(r.folder, step)
	if r.bestGlobalStep != 0 && slices.Contains(r.folder, r.bestGlobalStep) {
		r.bestCheckpoint = r.bestGlobalStep
	}
	r.rotate()
}

func (r *trainerRun) sorted() []int64 {
	s := slices.Clone(r.folder)
	slices.Sort(s)
	if i := slices.Index(s, r.bestCheckpoint); r.bestCheckpoint != 0 && i >= 0 {
		for ; i < len(s)-2; i++ {
			s[i], s[i+1] = s[i+1], s[i]
		}
	}
	return s
}

func (r *trainerRun) rotate() {
	s := r.sorted()
	if len(s) <= r.limit {
		return
	}
	limit := r.limit
	if r.bestCheckpoint != 0 && r.limit == 1 && s[len(s)-1] != r.bestCheckpoint {
		limit = 2
	}
	for _, step := range s[:max(0, len(s)-limit)] {
		r.folder = slices.DeleteFunc(r.folder, func(x int64) bool { return x == step })
	}
}

// event is one moment of a training run.
type event struct {
	step    int64
	value   float64
	hasEval bool // an evaluation produced the metric (possibly NaN)
	saved   bool // a checkpoint was saved (and pushed to the registry)
}

func save(step int64, v float64) event {
	return event{step: step, value: v, hasEval: true, saved: true}
}
func saveNoEval(step int64) event          { return event{step: step, saved: true} }
func evalOnly(step int64, v float64) event { return event{step: step, value: v, hasEval: true} }

// simulate runs Trainer over events and returns what remains on disk, as
// versions, together with the registry history of every saved checkpoint.
func simulate(limit int, metric string, events []event) (kept []string, history []Checkpoint) {
	metric = NormalizeMetric(metric)
	run := &trainerRun{limit: limit, greater: GreaterIsBetter(metric)}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range events {
		if e.hasEval {
			run.evaluate(e.step, e.value)
		}
		if !e.saved {
			continue
		}
		run.save(e.step)
		cp := Checkpoint{Version: strconv.FormatInt(e.step, 10), Step: e.step, Pushed: base.Add(time.Duration(e.step) * time.Second)}
		if e.hasEval {
			cp.Metrics = map[string]float64{metric: e.value}
		}
		history = append(history, cp)
	}
	folder := slices.Clone(run.folder)
	slices.Sort(folder)
	for _, s := range folder {
		kept = append(kept, strconv.FormatInt(s, 10))
	}
	return kept, history
}

// trainerPolicy is the policy that mirrors save_total_limit=n as the issue
// states it: the best plus the n-1 newest, except that for n=1 Trainer keeps
// the latest as well, so KeepLast is at least 1.
func trainerPolicy(n int, metric string) Policy {
	return Policy{KeepLast: max(n-1, 1), KeepBest: 1, Metric: metric}
}

func planKept(t *testing.T, p Policy, history []Checkpoint) []string {
	t.Helper()
	plan, err := p.Plan(history, now)
	require.NoError(t, err)
	kept := versions(plan.Kept())
	if len(kept) == 0 {
		return nil
	}
	slices.SortFunc(kept, CompareVersions)
	return kept
}

func TestTrainerRotationMatchesPlan(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name   string
		limit  int
		metric string
		events []event
		// wantTrainer is what Trainer leaves on disk (worked out by hand from
		// trainer.py, and checked against the simulation).
		wantTrainer []string
		// trainerOnly is what Trainer keeps beyond trainerPolicy's plan: the
		// N-th newest when the best is among the N-1 newest or there is no best.
		trainerOnly []string
	}{
		{
			name: "limit 1: best in the middle, Trainer keeps best and latest", limit: 1,
			events:      []event{save(100, 2.0), save(200, 1.0), save(300, 1.5), save(400, 1.7)},
			wantTrainer: []string{"200", "400"},
		},
		{
			name: "limit 1: best is the latest", limit: 1,
			events:      []event{save(100, 2.0), save(200, 1.5), save(300, 1.0)},
			wantTrainer: []string{"300"},
		},
		{
			name: "limit 1: best is the oldest", limit: 1,
			events:      []event{save(100, 1.0), save(200, 1.5), save(300, 1.1)},
			wantTrainer: []string{"100", "300"},
		},
		{
			name: "limit 2: best is the oldest", limit: 2,
			events:      []event{save(100, 1.0), save(200, 1.5), save(300, 1.7), save(400, 1.2)},
			wantTrainer: []string{"100", "400"},
		},
		{
			name: "limit 2: best is the latest", limit: 2,
			events:      []event{save(100, 2.0), save(200, 1.5), save(300, 1.7), save(400, 1.2)},
			wantTrainer: []string{"300", "400"}, trainerOnly: []string{"300"},
		},
		{
			name: "limit 3: best in the middle", limit: 3,
			events:      []event{save(100, 2.0), save(200, 1.8), save(300, 1.1), save(400, 1.4), save(500, 1.5), save(600, 1.3)},
			wantTrainer: []string{"300", "500", "600"},
		},
		{
			name: "limit 3: best is the third newest", limit: 3,
			events:      []event{save(100, 2.0), save(200, 1.9), save(300, 1.0), save(400, 1.5), save(500, 1.6)},
			wantTrainer: []string{"300", "400", "500"},
		},
		{
			name: "limit 3: best is the second newest", limit: 3,
			events:      []event{save(100, 2.0), save(200, 1.9), save(300, 1.8), save(400, 1.0), save(500, 1.5)},
			wantTrainer: []string{"300", "400", "500"}, trainerOnly: []string{"300"},
		},
		{
			name: "limit 3: no eval metric at some steps", limit: 3,
			events:      []event{save(100, 2.0), saveNoEval(200), save(300, 1.2), saveNoEval(400), saveNoEval(500), save(600, 1.5)},
			wantTrainer: []string{"300", "500", "600"},
		},
		{
			name: "limit 2: no eval metric at all", limit: 2,
			events:      []event{saveNoEval(100), saveNoEval(200), saveNoEval(300), saveNoEval(400)},
			wantTrainer: []string{"300", "400"}, trainerOnly: []string{"300"},
		},
		{
			name: "limit 2: NaN eval_loss is never best", limit: 2,
			events:      []event{save(100, 1.5), save(200, nan), save(300, 1.6), save(400, nan)},
			wantTrainer: []string{"100", "400"},
		},
		{
			name: "limit 3: ties, the earliest best wins", limit: 3,
			events:      []event{save(100, 1.0), save(200, 1.0), save(300, 1.0), save(400, 1.2), save(500, 1.3), save(600, 1.0)},
			wantTrainer: []string{"100", "500", "600"},
		},
		{
			name: "limit 2: accuracy, greater is better", limit: 2, metric: "accuracy",
			events:      []event{save(100, 0.5), save(200, 0.9), save(300, 0.7), save(400, 0.8)},
			wantTrainer: []string{"200", "400"},
		},
		{
			name: "limit 5: best is the latest", limit: 5,
			events:      []event{save(100, 7), save(200, 6), save(300, 5), save(400, 4), save(500, 3), save(600, 2), save(700, 1)},
			wantTrainer: []string{"300", "400", "500", "600", "700"}, trainerOnly: []string{"300"},
		},
		{
			name: "limit 5: best is the oldest", limit: 5,
			events:      []event{save(100, 1), save(200, 6), save(300, 5), save(400, 4), save(500, 3), save(600, 2), save(700, 1.5)},
			wantTrainer: []string{"100", "400", "500", "600", "700"},
		},
		{
			name: "limit 5: fewer checkpoints than the limit", limit: 5,
			events:      []event{save(100, 1), save(200, 2), save(300, 3)},
			wantTrainer: []string{"100", "200", "300"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trainer, history := simulate(tt.limit, tt.metric, tt.events)
			require.Equal(t, tt.wantTrainer, trainer, "simulation disagrees with the hand-worked Trainer result")

			plan := planKept(t, trainerPolicy(tt.limit, tt.metric), history)
			assert.Subset(t, trainer, plan, "a plan must not keep what Trainer deleted")
			var extra []string
			for _, v := range trainer {
				if !slices.Contains(plan, v) {
					extra = append(extra, v)
				}
			}
			assert.Equal(t, tt.trainerOnly, extra, "Trainer keeps these beyond the plan")
		})
	}
}

// TestTrainerLimitOneNeedsKeepLast documents why trainerPolicy uses
// KeepLast 1 for save_total_limit=1: the literal {KeepLast: 0, KeepBest: 1}
// drops the latest checkpoint, which Trainer keeps so training can resume.
func TestTrainerLimitOneNeedsKeepLast(t *testing.T) {
	trainer, history := simulate(1, "", []event{save(100, 2.0), save(200, 1.0), save(300, 1.5)})
	require.Equal(t, []string{"200", "300"}, trainer)
	assert.Equal(t, []string{"200"}, planKept(t, Policy{KeepBest: 1}, history))
	assert.Equal(t, trainer, planKept(t, Policy{KeepLast: 1, KeepBest: 1}, history))
}

// TestTrainerEvalOnlyStepsDiverge documents a case no plan over the registry
// can reproduce. With eval_steps finer than save_steps (allowed: save_steps
// must only be a multiple of eval_steps), the best evaluation can happen at a
// step that is never saved. Trainer then records best_global_step=150, finds
// no checkpoint-150 directory, and keeps protecting the previous best
// (checkpoint-100) for the rest of the run, although later checkpoints score
// better. The registry never sees step 150, so its best is checkpoint-200.
func TestTrainerEvalOnlyStepsDiverge(t *testing.T) {
	trainer, history := simulate(2, "", []event{
		save(100, 1.0), evalOnly(150, 0.5), save(200, 0.8), save(300, 0.9), save(400, 0.95),
	})
	assert.Equal(t, []string{"100", "400"}, trainer)
	assert.Equal(t, []string{"200", "400"}, planKept(t, trainerPolicy(2, ""), history))
}

// TestTrainerRotationRandomRuns checks, over random runs without eval-only
// steps, the exact relation between Trainer's final folder and one-shot
// plans over the whole history: Trainer's incremental rotation never deletes
// something a later state would have kept, because a checkpoint can only
// become best at its own save, when it is the latest.
func TestTrainerRotationRandomRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(20250601, 42))
	values := []float64{0.5, 1.0, 1.0, 1.5, 2.0, math.NaN()}
	for iter := range 2000 {
		limit := 1 + rng.IntN(6)
		metric := []string{"", "loss", "accuracy"}[rng.IntN(3)]
		var events []event
		for i := range rng.IntN(16) {
			step := int64(i+1) * 100
			if rng.IntN(5) == 0 {
				events = append(events, saveNoEval(step))
			} else {
				events = append(events, save(step, values[rng.IntN(len(values))]))
			}
		}
		trainer, history := simulate(limit, metric, events)
		msg := fmt.Sprintf("iter %d: limit %d, metric %q, events %v", iter, limit, metric, events)

		// Trainer's best is Best's best: strict improvement, earliest wins ties.
		run := &trainerRun{greater: GreaterIsBetter(metric)}
		for _, e := range events {
			if e.hasEval {
				run.evaluate(e.step, e.value)
			}
		}
		best, ok := Best(history, metric, GreaterIsBetter(metric))
		if ok {
			require.Equal(t, strconv.FormatInt(run.bestGlobalStep, 10), best.Version, msg)
		} else {
			require.Zero(t, run.bestGlobalStep, msg)
		}

		// Sandwich: {N-1 newest + best} ⊆ Trainer ⊆ {N newest + best}.
		lower := planKept(t, Policy{KeepLast: limit - 1, KeepBest: 1, Metric: metric}, history)
		upper := planKept(t, Policy{KeepLast: limit, KeepBest: 1, Metric: metric}, history)
		require.Subset(t, trainer, lower, msg)
		require.Subset(t, upper, trainer, msg)

		// Exact characterization.
		var want []string
		switch {
		case limit == 1:
			want = planKept(t, Policy{KeepLast: 1, KeepBest: 1, Metric: metric}, history)
		case ok && !slices.ContainsFunc(history[max(0, len(history)-(limit-1)):], func(c Checkpoint) bool { return c.Version == best.Version }):
			want = lower // the best is older than the N-1 newest
		default:
			want = planKept(t, Policy{KeepLast: limit, Metric: metric}, history) // the N newest
		}
		require.Equal(t, want, trainer, msg)
	}
}
