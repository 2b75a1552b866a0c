package layout

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// modernTrainerState is shaped like what transformers 4.5x writes,
// including Python's bare NaN for a nan grad_norm.
const modernTrainerState = `{
  "best_global_step": 200,
  "best_metric": 0.4123,
  "best_model_checkpoint": "out/checkpoint-200",
  "epoch": 1.0,
  "eval_steps": 100,
  "global_step": 200,
  "is_hyper_param_search": false,
  "is_local_process_zero": true,
  "is_world_process_zero": true,
  "log_history": [
    {"epoch": 0.25, "grad_norm": 3.14, "learning_rate": 4.5e-05, "loss": 2.31, "step": 50},
    {"epoch": 0.5, "grad_norm": NaN, "learning_rate": 4e-05, "loss": 1.9, "step": 100},
    {"epoch": 0.5, "eval_accuracy": 0.6, "eval_loss": 1.8, "eval_runtime": 12.5, "eval_samples_per_second": 80.0, "eval_steps_per_second": 10.0, "step": 100},
    {"epoch": 1.0, "grad_norm": Infinity, "learning_rate": 0.0, "loss": 1.2, "step": 200},
    {"epoch": 1.0, "eval_accuracy": 0.7, "eval_loss": 0.4123, "eval_runtime": 12.1, "eval_samples_per_second": 82.6, "eval_steps_per_second": 10.3, "step": 200},
    {"epoch": 1.0, "step": 200, "total_flos": 1.2e15, "train_loss": 1.5, "train_runtime": 100.0, "train_samples_per_second": 32.0, "train_steps_per_second": 2.0}
  ],
  "logging_steps": 50,
  "max_steps": 200,
  "num_input_tokens_seen": 0,
  "num_train_epochs": 1,
  "save_steps": 100,
  "stateful_callbacks": {
    "TrainerControl": {
      "args": {"should_epoch_stop": false, "should_evaluate": false, "should_log": false, "should_save": true, "should_training_stop": true},
      "attributes": {}
    }
  },
  "total_flos": 1.2e15,
  "train_batch_size": 8,
  "trial_name": null,
  "trial_params": null
}`

// oldTrainerState is shaped like transformers 4.2x: no best_global_step,
// no stateful_callbacks, no best model.
const oldTrainerState = `{
  "best_metric": null,
  "best_model_checkpoint": null,
  "epoch": 2.5,
  "global_step": 500,
  "is_hyper_param_search": false,
  "is_local_process_zero": true,
  "is_world_process_zero": true,
  "log_history": [
    {"epoch": 1.25, "learning_rate": 3e-05, "loss": 2.5, "step": 250},
    {"epoch": 2.5, "learning_rate": 1e-05, "loss": -Infinity, "step": 500}
  ],
  "max_steps": 600,
  "num_train_epochs": 3,
  "total_flos": 123456789,
  "trial_name": null,
  "trial_params": null
}`

func ptr[T any](v T) *T { return &v }

func TestParseTrainerState(t *testing.T) {
	t.Run("modern, with NaN and Infinity", func(t *testing.T) {
		state, err := ParseTrainerState([]byte(modernTrainerState))
		require.NoError(t, err)
		assert.Equal(t, ptr(int64(200)), state.GlobalStep)
		assert.Equal(t, ptr(1.0), state.Epoch)
		assert.Equal(t, ptr(0.4123), state.BestMetric)
		assert.Equal(t, "out/checkpoint-200", state.BestModelCheckpoint)
		assert.Equal(t, ptr(int64(200)), state.BestGlobalStep)
		require.Len(t, state.LogHistory, 6)
		assert.Equal(t, LogEntry{
			Step:    ptr(int64(50)),
			Epoch:   ptr(0.25),
			Metrics: map[string]float64{"grad_norm": 3.14, "learning_rate": 4.5e-05, "loss": 2.31},
		}, state.LogHistory[0])
		assert.Equal(t, map[string]float64{"learning_rate": 4e-05, "loss": 1.9}, state.LogHistory[1].Metrics, "NaN grad_norm dropped")
		assert.Equal(t, map[string]float64{"learning_rate": 0, "loss": 1.2}, state.LogHistory[3].Metrics, "Infinity grad_norm dropped")
		assert.Equal(t, 1.2e15, state.LogHistory[5].Metrics["total_flos"])
	})

	t.Run("old, without newer keys", func(t *testing.T) {
		state, err := ParseTrainerState([]byte(oldTrainerState))
		require.NoError(t, err)
		assert.Equal(t, ptr(int64(500)), state.GlobalStep)
		assert.Equal(t, ptr(2.5), state.Epoch)
		assert.Nil(t, state.BestMetric)
		assert.Empty(t, state.BestModelCheckpoint)
		assert.Nil(t, state.BestGlobalStep)
		require.Len(t, state.LogHistory, 2)
		assert.Equal(t, map[string]float64{"learning_rate": 1e-05}, state.LogHistory[1].Metrics, "-Infinity loss dropped")
	})

	tests := []struct {
		name string
		json string
		want *TrainerState
	}{
		{"empty object", `{}`, &TrainerState{}},
		{"integral floats as steps", `{"global_step": 100.0, "best_global_step": 1e2, "log_history": [{"step": 5.0}]}`,
			&TrainerState{GlobalStep: ptr(int64(100)), BestGlobalStep: ptr(int64(100)), LogHistory: []LogEntry{{Step: ptr(int64(5))}}}},
		{"integer epoch", `{"epoch": 3}`, &TrainerState{Epoch: ptr(3.0)}},
		{"NaN best_metric and epoch read as absent", `{"best_metric": NaN, "epoch": -Infinity}`, &TrainerState{}},
		{"float beyond float64 read as absent", `{"best_metric": 1e999}`, &TrainerState{}},
		{"NaN and Infinity inside strings left alone", `{"best_model_checkpoint": "NaN \"Infinity\" -Infinity\\"}`,
			&TrainerState{BestModelCheckpoint: `NaN "Infinity" -Infinity\`}},
		{"non-numeric log values ignored", `{"log_history": [{"step": 1, "note": "NaN", "flag": true, "nested": {"a": 1}, "list": [1], "none": null}]}`,
			&TrainerState{LogHistory: []LogEntry{{Step: ptr(int64(1))}}}},
		{"null log_history", `{"log_history": null}`, &TrainerState{}},
		{"empty log_history", `{"log_history": []}`, &TrainerState{LogHistory: []LogEntry{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, err := ParseTrainerState([]byte(tt.json))
			require.NoError(t, err)
			assert.Equal(t, tt.want, state)
		})
	}
}

func TestParseTrainerStateErrors(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string
	}{
		{"empty", ``, "trainer_state.json: not a JSON object"},
		{"array", `[]`, "trainer_state.json: not a JSON object"},
		{"null", `null`, "trainer_state.json: not a JSON object"},
		{"truncated", `{"global_step": 10,`, "trainer_state.json: not valid JSON"},
		{"global_step a string", `{"global_step": "abc"}`, `trainer_state.json: global_step is "abc", want a number`},
		{"global_step fractional", `{"global_step": 1.5}`, `trainer_state.json: global_step is 1.5, want an integer`},
		{"global_step beyond int64", `{"global_step": 1e30}`, `global_step is 1e30, want an integer`},
		{"best_global_step a bool", `{"best_global_step": true}`, `best_global_step is true, want a number`},
		{"epoch an object", `{"epoch": {}}`, `epoch is {}, want a number`},
		{"best_metric a string", `{"best_metric": "0.1"}`, `best_metric is "0.1", want a number`},
		{"best_model_checkpoint a number", `{"best_model_checkpoint": 5}`, `best_model_checkpoint is 5, want a string`},
		{"log_history an object", `{"log_history": {}}`, `log_history is {}, want an array`},
		{"log entry a number", `{"log_history": [{}, 5]}`, `log_history[1]: is 5, want an object`},
		{"log entry step a string", `{"log_history": [{"step": "x"}]}`, `log_history[0]: step is "x", want a number`},
		{"log entry epoch a list", `{"log_history": [{"epoch": [1]}]}`, `log_history[0]: epoch is [1], want a number`},
		{"long value abbreviated", `{"global_step": "` + strings.Repeat("x", 100) + `"}`, `global_step is "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..., want a number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, err := ParseTrainerState([]byte(tt.json))
			assert.Nil(t, state)
			var stateErr *TrainerStateError
			require.ErrorAs(t, err, &stateErr)
			assert.Equal(t, "trainer_state.json", stateErr.Path)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestEvalMetrics(t *testing.T) {
	state, err := ParseTrainerState([]byte(modernTrainerState))
	require.NoError(t, err)

	assert.Equal(t, map[string]float64{"eval_accuracy": 0.6, "eval_loss": 1.8}, state.EvalMetrics(100))
	assert.Nil(t, state.EvalMetrics(50), "training log only")
	assert.Nil(t, state.EvalMetrics(7), "no entry")

	step, metrics, ok := state.LatestEvalMetrics()
	require.True(t, ok)
	assert.Equal(t, int64(200), step)
	assert.Equal(t, map[string]float64{"eval_accuracy": 0.7, "eval_loss": 0.4123}, metrics)

	t.Run("several entries at one step are merged, later ones winning", func(t *testing.T) {
		state, err := ParseTrainerState([]byte(`{"log_history": [
			{"step": 10, "eval_loss": 2.0, "eval_runtime": 1},
			{"step": 10, "eval_loss": 1.5, "eval_bleu": 30, "eval_tokens_per_second": 5, "eval_model_preparation_time": 0.1},
			{"step": 10, "loss": 3}
		]}`))
		require.NoError(t, err)
		assert.Equal(t, map[string]float64{"eval_loss": 1.5, "eval_bleu": 30}, state.EvalMetrics(10))
	})

	t.Run("falls back to the last evaluation when none at global_step", func(t *testing.T) {
		state, err := ParseTrainerState([]byte(`{"global_step": 300, "log_history": [
			{"step": 100, "eval_loss": 2.0},
			{"step": 200, "eval_loss": 1.0},
			{"eval_loss": 0.5},
			{"step": 300, "loss": 0.9, "eval_runtime": 3}
		]}`))
		require.NoError(t, err)
		step, metrics, ok := state.LatestEvalMetrics()
		require.True(t, ok)
		assert.Equal(t, int64(200), step, "entries without a step are skipped")
		assert.Equal(t, map[string]float64{"eval_loss": 1.0}, metrics)
	})

	t.Run("no evaluation at all", func(t *testing.T) {
		state, err := ParseTrainerState([]byte(oldTrainerState))
		require.NoError(t, err)
		step, metrics, ok := state.LatestEvalMetrics()
		assert.False(t, ok)
		assert.Zero(t, step)
		assert.Nil(t, metrics)
	})
}

func TestReadTrainerState(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "trainer_state.json")
	require.NoError(t, os.WriteFile(good, []byte(modernTrainerState), 0o644))
	state, err := ReadTrainerState(good)
	require.NoError(t, err)
	assert.Equal(t, ptr(int64(200)), state.GlobalStep)

	bad := filepath.Join(dir, "checkpoint-7", "trainer_state.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(bad), 0o755))
	require.NoError(t, os.WriteFile(bad, []byte(`{"global_step": "abc"}`), 0o644))
	_, err = ReadTrainerState(bad)
	require.EqualError(t, err, bad+`: global_step is "abc", want a number`)

	_, err = ReadTrainerState(filepath.Join(dir, "absent.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, "absent.json")
}

func FuzzParseTrainerState(f *testing.F) {
	for _, seed := range []string{
		modernTrainerState, oldTrainerState, accuracyTrainerState, `{}`, `[]`, ``, `{"global_step": "abc"}`, `{"global_step": 1.5}`,
		`{"log_history": [{"step": 1, "loss": NaN, "eval_loss": -Infinity}]}`, `{"a": "NaN\"NaN"}`, `{"log_history": [5]}`,
		`{"epoch": 1e999, "log_history": [{"step": 2.0, "eval_x": 1, "eval_runtime": 2}]}`, `{"global_step": NaNx}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var state *TrainerState
		var err error
		n := allocs(func() { state, err = ParseTrainerState(data) })
		require.LessOrEqual(t, n, jsonExpansion*uint64(len(data))+parseOverhead, "allocated %d bytes", n)
		if err != nil {
			require.Nil(t, state)
			var stateErr *TrainerStateError
			require.ErrorAs(t, err, &stateErr)
			require.Equal(t, "trainer_state.json", stateErr.Path)
			return
		}
		finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
		for _, v := range []*float64{state.Epoch, state.BestMetric} {
			if v != nil {
				require.True(t, finite(*v))
			}
		}
		for _, entry := range state.LogHistory {
			if entry.Epoch != nil {
				require.True(t, finite(*entry.Epoch))
			}
			require.NotContains(t, entry.Metrics, "step")
			require.NotContains(t, entry.Metrics, "epoch")
			for _, v := range entry.Metrics {
				require.True(t, finite(v))
			}
			if entry.Step != nil {
				for key := range state.EvalMetrics(*entry.Step) {
					require.True(t, strings.HasPrefix(key, "eval_") && !evalSpeedMetrics[key], key)
				}
			}
		}
		if name := state.BestMetricName(); name != "" {
			step, ok := state.BestStep()
			require.True(t, ok)
			require.Equal(t, *state.BestMetric, state.EvalMetrics(step)[name])
		}
		if step, metrics, ok := state.LatestEvalMetrics(); ok {
			require.NotEmpty(t, metrics)
			require.Equal(t, metrics, state.EvalMetrics(step))
		}
	})
}
