package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// selectOnAccuracy rewrites the trainer_state.json of writeRun's
// checkpoints (steps 10, 20, 30; eval_loss 1.9, 1.1, 1.3) as Trainer
// writes them with metric_for_best_model="accuracy": every evaluation
// also logs eval_accuracy (0.5, 0.7, 0.9), and best_* follow it. By
// eval_loss the best is step 20, by accuracy step 30.
func selectOnAccuracy(t *testing.T, ckpts []string) {
	t.Helper()
	accuracy := map[float64]float64{10: 0.5, 20: 0.7, 30: 0.9}
	for _, ck := range ckpts {
		editJSON(t, filepath.Join(ck, "trainer_state.json"), func(m map[string]any) {
			var best float64
			for _, e := range m["log_history"].([]any) {
				entry := e.(map[string]any)
				if _, ok := entry["eval_loss"]; !ok {
					continue
				}
				step := entry["step"].(float64)
				entry["eval_accuracy"] = accuracy[step]
				if accuracy[step] > accuracy[best] {
					best = step
				}
			}
			m["best_metric"] = accuracy[best]
			m["best_global_step"] = best
			m["best_model_checkpoint"] = fmt.Sprintf("output/checkpoint-%d", int(best))
		})
	}
}

// lsBest is, per NAME, the version ls --json marks best and what it
// ranks by.
func lsBest(t *testing.T, out string) map[string][2]string {
	t.Helper()
	var ls lsOutput
	require.NoError(t, json.Unmarshal([]byte(out), &ls))
	got := map[string][2]string{}
	for _, n := range ls.Names {
		by := "-"
		if n.BestBy != nil {
			by = fmt.Sprintf("%s/%v/%s", n.BestBy.Metric, n.BestBy.GreaterIsBetter, n.BestBy.Source)
		}
		best := "-"
		for _, v := range n.Versions {
			if v.Best {
				best = v.Version
			}
		}
		got[n.Name] = [2]string{best, by}
	}
	return got
}

func TestBestByMetricCLI(t *testing.T) {
	c := newCLI(t)
	_, ckpts := writeRun(t, false)
	selectOnAccuracy(t, ckpts)
	for _, ck := range ckpts {
		c.ok("push", ck, "run")
	}

	// Default: eval_loss, and ls says so.
	assert.Equal(t, [2]string{"20", "eval_loss/false/default"}, lsBest(t, c.ok("ls", "--json"))["run"])
	out := c.ok("ls")
	assert.Contains(t, out, "run  (best by eval_loss, lower is better (default))")
	assert.NotContains(t, out, "EVAL_ACCURACY")

	// --best-by: direction from the name, overridable.
	assert.Equal(t, [2]string{"30", "eval_accuracy/true/explicit"}, lsBest(t, c.ok("ls", "--best-by", "accuracy", "--json"))["run"])
	out = c.ok("ls", "--best-by", "eval_accuracy")
	assert.Contains(t, out, "run  (best by eval_accuracy, greater is better (--best-by))")
	assert.Contains(t, out, "EVAL_ACCURACY")
	assert.Contains(t, out, "0.9000")
	assert.Equal(t, [2]string{"10", "eval_accuracy/false/explicit"},
		lsBest(t, c.ok("ls", "--best-by", "accuracy", "--lower-is-better", "--json"))["run"])
	assert.Equal(t, [2]string{"10", "eval_loss/true/explicit"},
		lsBest(t, c.ok("ls", "--best-by", "loss", "--greater-is-better", "--json"))["run"])

	// pull, tag and show resolve @best the same way.
	dir := filepath.Join(t.TempDir(), "acc")
	var pulled pullOutput
	require.NoError(t, json.Unmarshal([]byte(c.ok("pull", "run@best", dir, "--best-by", "accuracy", "--json")), &pulled))
	assert.Equal(t, "30", pulled.Record.Version)
	c.ok("tag", "run@best", "by-loss")
	c.ok("tag", "run@best", "by-acc", "--best-by", "accuracy")
	var shown showOutput
	require.NoError(t, json.Unmarshal([]byte(c.ok("show", "run@by-loss", "--json")), &shown))
	assert.Equal(t, "20", shown.Record.Version)
	require.NoError(t, json.Unmarshal([]byte(c.ok("show", "run@by-acc", "--json")), &shown))
	assert.Equal(t, "30", shown.Record.Version)

	// The record keeps Trainer's best; show compares it with ckpt's.
	require.NotNil(t, shown.Record.TrainerBest)
	assert.Equal(t, 0.9, *shown.Record.TrainerBest.BestMetric)
	assert.Equal(t, "eval_accuracy", *shown.Record.TrainerBest.Metric)
	assert.Equal(t, int64(30), *shown.Record.TrainerBest.Step)
	require.NotNil(t, shown.Best)
	assert.Equal(t, "eval_loss", shown.Best.By.Metric)
	assert.Equal(t, "20", *shown.Best.Version)
	assert.Equal(t, "30", *shown.Best.TrainerVersion)
	assert.True(t, shown.Best.Comparable)
	assert.False(t, shown.Best.Agree)
	assert.Equal(t, "Trainer ranked by eval_accuracy, ckpt by eval_loss", shown.Best.Disagreement)
	out = c.ok("show", "run@30")
	assert.Contains(t, out, "best      run@20 by eval_loss, lower is better (default)")
	assert.Contains(t, out, "trainer   best_metric 0.9 (eval_accuracy), best_global_step 30, best_model_checkpoint output/checkpoint-30 = run@30")
	assert.Contains(t, out, "DISAGREES with ckpt's best as of step 30 (run@20): Trainer ranked by eval_accuracy, ckpt by eval_loss")
	out = c.ok("show", "run@30", "--best-by", "accuracy")
	assert.Contains(t, out, "best      run@30 by eval_accuracy, greater is better (--best-by)")
	assert.Contains(t, out, "agrees with ckpt's best as of step 30 (run@30)")

	// NAME's stored retention policy's metric, when no --best-by.
	c.ok("retention", "set", "run", "--keep-last", "3", "--metric", "eval_accuracy")
	assert.Equal(t, [2]string{"30", "eval_accuracy/true/policy"}, lsBest(t, c.ok("ls", "--json"))["run"])
	assert.Contains(t, c.ok("ls"), "run  (best by eval_accuracy, greater is better (NAME's retention policy))")
	require.NoError(t, json.Unmarshal([]byte(c.ok("show", "run@best", "--json")), &shown))
	assert.Equal(t, "30", shown.Record.Version)
	assert.True(t, shown.Best.Agree)
	// --best-by still wins.
	require.NoError(t, json.Unmarshal([]byte(c.ok("show", "run@best", "--best-by", "loss", "--json")), &shown))
	assert.Equal(t, "20", shown.Record.Version)

	// A corrupt stored policy: ls and show still work and say why best
	// cannot be told; resolving @best fails naming the policy, unless
	// --best-by decides.
	policy := filepath.Join(c.repo, "refs", "run", "p", "retention")
	data, err := os.ReadFile(policy)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(policy, bytes.Replace(data, []byte(`"eval_accuracy"`), []byte(`"eval_loss"`), 1), 0o644))
	assert.Contains(t, c.ok("ls"), "run  (best cannot be told: ")
	var ls lsOutput
	require.NoError(t, json.Unmarshal([]byte(c.ok("ls", "--json")), &ls))
	assert.Nil(t, ls.Names[0].BestBy)
	assert.Contains(t, ls.Names[0].BestError, "refs/run/p/retention")
	for _, v := range ls.Names[0].Versions {
		assert.False(t, v.Best, v.Version)
	}
	assert.Contains(t, c.ok("show", "run@30"), "best      cannot be told: ")
	code, _, errs := c.run("show", "run@best")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "refs/run/p/retention")
	assert.Equal(t, [2]string{"30", "eval_accuracy/true/explicit"}, lsBest(t, c.ok("ls", "--best-by", "accuracy", "--json"))["run"])
	require.NoError(t, os.WriteFile(policy, data, 0o644))

	// A metric no version has: a clear error, not a guess.
	code, _, errs = c.run("pull", "run@best", t.TempDir(), "--best-by", "f1")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "no version of run has eval_f1 recorded")

	// Bad combinations are usage errors.
	for _, args := range [][]string{
		{"ls", "--lower-is-better"},
		{"ls", "--best-by", "accuracy", "--lower-is-better", "--greater-is-better"},
		{"show", "run@best", "--best-by", "eval_"},
	} {
		code, _, errs := c.run(args...)
		assert.Equal(t, 2, code, "%v: %s", args, errs)
	}
}
