package layout

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// accuracyTrainerState is a run with metric_for_best_model="accuracy"
// (greater is better): Trainer's best is step 400, where eval_accuracy
// peaked, while eval_loss was lowest at step 300.
const accuracyTrainerState = `{
  "best_global_step": 400,
  "best_metric": 0.91,
  "best_model_checkpoint": "out/checkpoint-400",
  "global_step": 500,
  "log_history": [
    {"epoch": 1.0, "eval_accuracy": 0.80, "eval_loss": 0.60, "eval_runtime": 1.5, "step": 300},
    {"epoch": 1.3, "eval_accuracy": 0.91, "eval_loss": 0.65, "eval_runtime": 1.5, "step": 400},
    {"epoch": 1.6, "eval_accuracy": 0.88, "eval_loss": 0.70, "eval_runtime": 1.5, "step": 500}
  ]
}`

func TestTrainerStateBest(t *testing.T) {
	cases := []struct {
		name       string
		state      string
		step       int64
		hasStep    bool
		metricName string
	}{
		{"accuracy, greater is better", accuracyTrainerState, 400, true, "eval_accuracy"},
		{"eval_loss, transformers 4.5x", modernTrainerState, 200, true, "eval_loss"},
		{"no best yet", oldTrainerState, 0, false, ""},
		// transformers before 4.47: the step comes from the folder name.
		{"no best_global_step", `{"best_metric": 0.6, "best_model_checkpoint": "/data/run/checkpoint-300",
			"log_history": [{"eval_loss": 0.6, "eval_accuracy": 0.8, "step": 300}]}`, 300, true, "eval_loss"},
		{"windows path", `{"best_metric": 0.8, "best_model_checkpoint": "C:\\run\\checkpoint-300",
			"log_history": [{"eval_loss": 0.6, "eval_accuracy": 0.8, "step": 300}]}`, 300, true, "eval_accuracy"},
		// Two metrics with the best value: which one Trainer used cannot be told.
		{"ambiguous", `{"best_metric": 0.5, "best_global_step": 10,
			"log_history": [{"eval_loss": 0.5, "eval_f1": 0.5, "step": 10}]}`, 10, true, ""},
		// Speed metrics are never the best metric.
		{"runtime is not a metric", `{"best_metric": 1.5, "best_global_step": 10,
			"log_history": [{"eval_loss": 0.5, "eval_runtime": 1.5, "step": 10}]}`, 10, true, ""},
		{"value not logged at the step", `{"best_metric": 0.4, "best_global_step": 10,
			"log_history": [{"eval_loss": 0.5, "step": 10}]}`, 10, true, ""},
		{"folder not checkpoint-N", `{"best_metric": 0.4, "best_model_checkpoint": "out/final"}`, 0, false, ""},
		{"negative step in folder", `{"best_metric": 0.4, "best_model_checkpoint": "out/checkpoint--5"}`, 0, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state, err := ParseTrainerState([]byte(tc.state))
			require.NoError(t, err)
			step, ok := state.BestStep()
			assert.Equal(t, tc.hasStep, ok)
			assert.Equal(t, tc.step, step)
			assert.Equal(t, tc.metricName, state.BestMetricName())
		})
	}
}
