package store_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/refs"
)

// evalPoint is one evaluation of a run.
type evalPoint struct {
	step     int64
	loss     float64
	accuracy float64
}

// classifierEvals: eval_loss is lowest at step 300, eval_accuracy highest
// at step 400.
var classifierEvals = []evalPoint{{100, 2.0, 0.50}, {200, 1.5, 0.60}, {300, 1.2, 0.70}, {400, 1.4, 0.80}}

// writeTrainerStates rewrites the trainer_state.json of each checkpoint
// folder (one per eval point, in order) as Trainer writes it for a run
// with metric_for_best_model set to metric ("eval_accuracy" or
// "eval_loss") and greater_is_better its default: log_history holds every
// evaluation so far, best_* track the best of them. Without
// bestGlobalStep it leaves best_global_step out, as transformers before
// 4.47 do.
func writeTrainerStates(t *testing.T, ckpts []string, evals []evalPoint, metric string, bestGlobalStep bool) {
	t.Helper()
	require.Len(t, ckpts, len(evals))
	for i, dir := range ckpts {
		var history []map[string]any
		var best *evalPoint
		value := func(e evalPoint) float64 {
			if metric == "eval_accuracy" {
				return e.accuracy
			}
			return e.loss
		}
		for k := 0; k <= i; k++ {
			e := evals[k]
			history = append(history, map[string]any{
				"epoch": float64(e.step) / 200, "eval_loss": e.loss, "eval_accuracy": e.accuracy,
				"eval_runtime": 1.25, "eval_samples_per_second": 80.0, "step": e.step,
			})
			better := best == nil || (metric == "eval_accuracy" && value(e) > value(*best)) || (metric == "eval_loss" && value(e) < value(*best))
			if better {
				best = &evals[k]
			}
		}
		state := map[string]any{
			"global_step":           evals[i].step,
			"epoch":                 float64(evals[i].step) / 200,
			"log_history":           history,
			"best_metric":           value(*best),
			"best_model_checkpoint": "output/checkpoint-" + itoa(best.step),
		}
		if bestGlobalStep {
			state["best_global_step"] = best.step
		}
		data, err := json.MarshalIndent(state, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "trainer_state.json"), data, 0o644))
	}
}

func TestBestFollowsTheRunsMetric(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			t.Run("ByAccuracy", func(t *testing.T) { testBestByAccuracy(t, nb) })
			t.Run("ByLossAgreesWithTrainer", func(t *testing.T) { testBestByLoss(t, nb) })
			t.Run("UnreadablePolicy", func(t *testing.T) { testBestUnreadablePolicy(t, nb) })
		})
	}
}

// pushClassifier pushes a run selecting on metric as NAME "cls".
func pushClassifier(t *testing.T, e *env, metric string, bestGlobalStep bool) []string {
	t.Helper()
	_, ckpts := tinyRun(t, 61, nil)
	writeTrainerStates(t, ckpts, classifierEvals, metric, bestGlobalStep)
	for _, ck := range ckpts {
		e.push(ck, "cls", store.PushOptions{})
	}
	return ckpts
}

func testBestByAccuracy(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	pushClassifier(t, e, "eval_accuracy", true)

	// The record keeps what Trainer said.
	rec, err := e.r.Resolve(e.ctx, "cls", "400")
	require.NoError(t, err)
	require.NotNil(t, rec.TrainerBest)
	assert.Equal(t, "eval_accuracy", rec.TrainerBest.Metric)
	assert.Equal(t, 0.8, *rec.TrainerBest.Value)
	assert.Equal(t, int64(400), *rec.TrainerBest.GlobalStep)
	assert.Equal(t, "output/checkpoint-400", rec.TrainerBest.ModelCheckpoint)
	assert.InDelta(t, 0.8, rec.Metrics["eval_accuracy"], 1e-12)

	// No rule, no policy: eval_loss.
	best, err := e.r.Resolve(e.ctx, "cls", refs.Best)
	require.NoError(t, err)
	assert.Equal(t, "300", best.Version)

	// show's comparison: Trainer's best disagrees with ckpt's, and says why.
	c, err := e.r.Catalog(e.ctx, "cls")
	require.NoError(t, err)
	chk, err := c.CheckBest(rec)
	require.NoError(t, err)
	assert.True(t, chk.Comparable)
	assert.False(t, chk.Agree)
	assert.Equal(t, "300", chk.Ckpt.Version)
	assert.Equal(t, "400", chk.TrainerRecord.Version)
	assert.Equal(t, "Trainer ranked by eval_accuracy, ckpt by eval_loss", chk.Why)

	// An explicit metric: direction from its name (greater is better).
	byAcc, err := store.Open(e.ctx, e.b, store.Options{Best: refs.BestRule{Metric: "accuracy"}})
	require.NoError(t, err)
	best, err = byAcc.Resolve(e.ctx, "cls", refs.Best)
	require.NoError(t, err)
	assert.Equal(t, "400", best.Version)
	c, err = byAcc.Catalog(e.ctx, "cls")
	require.NoError(t, err)
	chk, err = c.CheckBest(rec)
	require.NoError(t, err)
	assert.True(t, chk.Agree)
	// ... and overridden.
	lower := false
	byAccLow, err := store.Open(e.ctx, e.b, store.Options{Best: refs.BestRule{Metric: "eval_accuracy", GreaterIsBetter: &lower}})
	require.NoError(t, err)
	best, err = byAccLow.Resolve(e.ctx, "cls", refs.Best)
	require.NoError(t, err)
	assert.Equal(t, "100", best.Version)

	// The stored retention policy's metric, for every handle without a rule.
	require.NoError(t, e.r.SetPolicy(e.ctx, "cls", retention.Policy{KeepLast: 1, KeepBest: 1, Metric: "eval_accuracy"}))
	for _, r := range []*store.Registry{e.r, e.withoutIndex()} {
		best, err = r.Resolve(e.ctx, "cls", refs.Best)
		require.NoError(t, err)
		assert.Equal(t, "400", best.Version)
	}
	// An explicit rule still wins over the policy.
	byLoss, err := store.Open(e.ctx, e.b, store.Options{Best: refs.BestRule{Metric: "eval_loss"}})
	require.NoError(t, err)
	best, err = byLoss.Resolve(e.ctx, "cls", refs.Best)
	require.NoError(t, err)
	assert.Equal(t, "300", best.Version)

	// Pull, tag and rm of @best follow the policy too.
	out := filepath.Join(t.TempDir(), "best")
	res, err := e.r.Pull(e.ctx, "cls", refs.Best, out, store.PullOptions{Full: true})
	require.NoError(t, err)
	assert.Equal(t, "400", res.Record.Version)
	state, err := os.ReadFile(filepath.Join(out, "trainer_state.json"))
	require.NoError(t, err)
	assert.Contains(t, string(state), `"global_step": 400`)
	require.NoError(t, e.r.Tag(e.ctx, "cls", refs.Best, "gold"))
	tagged, err := e.r.Resolve(e.ctx, "cls", "gold")
	require.NoError(t, err)
	assert.Equal(t, "400", tagged.Version)
	removed, tags, err := e.r.Remove(e.ctx, "cls", refs.Best)
	require.NoError(t, err)
	assert.Equal(t, "400", removed.Version)
	assert.Equal(t, []string{"gold"}, tags)
	best, err = e.r.Resolve(e.ctx, "cls", refs.Best)
	require.NoError(t, err)
	assert.Equal(t, "300", best.Version, "the next best by eval_accuracy")

	// A metric no version has is an error saying which metric.
	byF1, err := store.Open(e.ctx, e.b, store.Options{Best: refs.BestRule{Metric: "f1"}})
	require.NoError(t, err)
	_, err = byF1.Resolve(e.ctx, "cls", refs.Best)
	require.ErrorIs(t, err, refs.ErrNoMetric)
	assert.ErrorContains(t, err, "no version of cls has eval_f1 recorded")

	// A direction without a metric cannot be applied.
	_, err = store.Open(e.ctx, e.b, store.Options{Best: refs.BestRule{GreaterIsBetter: &lower}})
	require.ErrorIs(t, err, refs.ErrInvalidBestRule)
}

func testBestByLoss(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	// Older transformers: no best_global_step, the step is read from
	// best_model_checkpoint.
	pushClassifier(t, e, "eval_loss", false)
	rec, err := e.r.Resolve(e.ctx, "cls", refs.Latest)
	require.NoError(t, err)
	require.NotNil(t, rec.TrainerBest)
	assert.Nil(t, rec.TrainerBest.GlobalStep)
	assert.Equal(t, "eval_loss", rec.TrainerBest.Metric)
	step, ok := rec.TrainerBest.Step()
	require.True(t, ok)
	assert.Equal(t, int64(300), step)
	c, err := e.r.Catalog(e.ctx, "cls")
	require.NoError(t, err)
	chk, err := c.CheckBest(rec)
	require.NoError(t, err)
	assert.True(t, chk.Comparable)
	assert.True(t, chk.Agree)
	assert.Equal(t, "300", chk.Ckpt.Version)
	assert.Empty(t, chk.Why)
}

func testBestUnreadablePolicy(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	pushClassifier(t, e, "eval_accuracy", true)
	require.NoError(t, e.r.SetPolicy(e.ctx, "cls", retention.Policy{KeepLast: 3, Metric: "eval_accuracy"}))
	rewriteObject(t, e.b, "refs/cls/p/retention", func(d []byte) []byte {
		return replaceOnce(t, d, `"metric": "eval_accuracy"`, `"metric": "eval_loss"`)
	})
	// Which metric the policy names cannot be trusted: @best is refused,
	// naming the policy, by every reader (never guessed as eval_loss).
	for _, r := range []*store.Registry{e.r, e.withoutIndex()} {
		_, err := r.Resolve(e.ctx, "cls", refs.Best)
		require.ErrorIs(t, err, refs.ErrCorrupt)
		assert.ErrorContains(t, err, "refs/cls/p/retention")
	}
	_, _, err := e.r.Remove(e.ctx, "cls", refs.Best)
	require.ErrorIs(t, err, refs.ErrCorrupt)
	// Everything else works: listing, other refs, an explicit metric.
	c, err := e.r.Catalog(e.ctx, "cls")
	require.NoError(t, err)
	assert.Len(t, c.Records["cls"], 4)
	latest, err := e.r.Resolve(e.ctx, "cls", refs.Latest)
	require.NoError(t, err)
	assert.Equal(t, "400", latest.Version)
	byLoss, err := store.Open(e.ctx, e.b, store.Options{Best: refs.BestRule{Metric: "eval_loss"}})
	require.NoError(t, err)
	best, err := byLoss.Resolve(e.ctx, "cls", refs.Best)
	require.NoError(t, err)
	assert.Equal(t, "300", best.Version)
}
