package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// TrainerState is what ckpt needs from trainer_state.json as transformers'
// Trainer writes it. Every key is optional: older transformers versions lack
// some (best_global_step, stateful_callbacks, ...), and unknown keys are
// ignored.
type TrainerState struct {
	GlobalStep          *int64
	Epoch               *float64
	BestMetric          *float64
	BestModelCheckpoint string
	BestGlobalStep      *int64
	LogHistory          []LogEntry
}

// LogEntry is one element of log_history.
type LogEntry struct {
	Step  *int64
	Epoch *float64
	// Metrics holds every other key whose value is a finite number (loss,
	// learning_rate, grad_norm, eval_loss, eval_runtime, ...); nil if none.
	// NaN and infinite values are left out.
	Metrics map[string]float64
}

// TrainerStateError reports a trainer_state.json that is not valid JSON or
// has a value of the wrong type.
type TrainerStateError struct {
	// Path is the file's path, or "trainer_state.json" when parsing bytes.
	Path string
	// Reason says what is wrong, e.g. `global_step is "abc", want a number`.
	Reason string
}

func (e *TrainerStateError) Error() string { return e.Path + ": " + e.Reason }

const trainerStateName = "trainer_state.json"

// evalSpeedMetrics are the eval_* keys Trainer logs about speed rather than
// quality; EvalMetrics leaves them out.
var evalSpeedMetrics = map[string]bool{
	"eval_runtime":                true,
	"eval_samples_per_second":     true,
	"eval_steps_per_second":       true,
	"eval_tokens_per_second":      true,
	"eval_jit_compilation_time":   true,
	"eval_model_preparation_time": true,
}

// ReadTrainerState reads and parses the trainer_state.json at path. Errors
// name the path.
func ReadTrainerState(path string) (*TrainerState, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	state, err := ParseTrainerState(data)
	if err != nil {
		var stateErr *TrainerStateError
		if errors.As(err, &stateErr) {
			stateErr.Path = path
			return nil, stateErr
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return state, nil
}

// ParseTrainerState parses the contents of a trainer_state.json. Python's
// json module writes NaN, Infinity and -Infinity as bare literals (a nan
// grad_norm, for instance); they are accepted and read as absent values.
// Malformed JSON and values of the wrong type return a *TrainerStateError.
func ParseTrainerState(data []byte) (*TrainerState, error) {
	fail := func(format string, args ...any) (*TrainerState, error) {
		return nil, &TrainerStateError{Path: trainerStateName, Reason: fmt.Sprintf(format, args...)}
	}
	data = replaceNonFiniteLiterals(data)
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return fail("not a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return fail("not valid JSON: %v", err)
	}

	state := &TrainerState{}
	var err error
	if state.GlobalStep, err = optionalInt("global_step", fields["global_step"]); err != nil {
		return fail("%v", err)
	}
	if state.Epoch, err = optionalFloat("epoch", fields["epoch"]); err != nil {
		return fail("%v", err)
	}
	if state.BestMetric, err = optionalFloat("best_metric", fields["best_metric"]); err != nil {
		return fail("%v", err)
	}
	if state.BestGlobalStep, err = optionalInt("best_global_step", fields["best_global_step"]); err != nil {
		return fail("%v", err)
	}
	if raw := fields["best_model_checkpoint"]; raw != nil && string(raw) != "null" {
		if err := json.Unmarshal(raw, &state.BestModelCheckpoint); err != nil {
			return fail("best_model_checkpoint is %s, want a string", abbreviate(raw))
		}
	}
	if raw := fields["log_history"]; raw != nil && string(raw) != "null" {
		if raw[0] != '[' {
			return fail("log_history is %s, want an array", abbreviate(raw))
		}
		var entries []json.RawMessage
		if err := json.Unmarshal(raw, &entries); err != nil {
			return fail("log_history: %v", err)
		}
		state.LogHistory = make([]LogEntry, 0, len(entries))
		for i, rawEntry := range entries {
			entry, err := parseLogEntry(rawEntry)
			if err != nil {
				return fail("log_history[%d]: %v", i, err)
			}
			state.LogHistory = append(state.LogHistory, entry)
		}
	}
	return state, nil
}

func parseLogEntry(raw json.RawMessage) (LogEntry, error) {
	if raw[0] != '{' {
		return LogEntry{}, fmt.Errorf("is %s, want an object", abbreviate(raw))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return LogEntry{}, err
	}
	var entry LogEntry
	var err error
	if entry.Step, err = optionalInt("step", fields["step"]); err != nil {
		return LogEntry{}, err
	}
	if entry.Epoch, err = optionalFloat("epoch", fields["epoch"]); err != nil {
		return LogEntry{}, err
	}
	for key, value := range fields {
		if key == "step" || key == "epoch" || !isNumberLiteral(value) {
			continue // strings, booleans, nulls (NaN), objects: not metrics
		}
		number, err := strconv.ParseFloat(string(value), 64)
		if err != nil || math.IsInf(number, 0) {
			continue // out of float64 range
		}
		if entry.Metrics == nil {
			entry.Metrics = map[string]float64{}
		}
		entry.Metrics[key] = number
	}
	return entry, nil
}

// optionalInt reads an integer that may be absent or null. Integral floats
// (100.0) are accepted.
func optionalInt(name string, raw json.RawMessage) (*int64, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	if !isNumberLiteral(raw) {
		return nil, fmt.Errorf("%s is %s, want a number", name, abbreviate(raw))
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return &n, nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return nil, fmt.Errorf("%s is %s, want an integer", name, abbreviate(raw))
	}
	n := int64(f)
	return &n, nil
}

// optionalFloat reads a number that may be absent or null; a value out of
// float64 range is read as absent, like NaN and Infinity.
func optionalFloat(name string, raw json.RawMessage) (*float64, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	if !isNumberLiteral(raw) {
		return nil, fmt.Errorf("%s is %s, want a number", name, abbreviate(raw))
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, nil
	}
	return &f, nil
}

// isNumberLiteral reports whether raw, a valid JSON value, is a number.
func isNumberLiteral(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'))
}

// abbreviate quotes a JSON value for an error message, shortened if long.
func abbreviate(raw json.RawMessage) string {
	const limit = 40
	if len(raw) > limit {
		return string(raw[:limit]) + "..."
	}
	return string(raw)
}

// replaceNonFiniteLiterals replaces the bare NaN, Infinity and -Infinity
// tokens Python's json module writes with null, leaving string contents
// alone. It returns data itself when there is nothing to replace.
func replaceNonFiniteLiterals(data []byte) []byte {
	if !bytes.Contains(data, []byte("NaN")) && !bytes.Contains(data, []byte("Infinity")) {
		return data
	}
	out := make([]byte, 0, len(data))
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			out = append(out, c)
			continue
		}
		rest := data[i:]
		switch {
		case c == '"':
			inString = true
		case bytes.HasPrefix(rest, []byte("NaN")):
			out = append(out, "null"...)
			i += len("NaN") - 1
			continue
		case bytes.HasPrefix(rest, []byte("Infinity")):
			out = append(out, "null"...)
			i += len("Infinity") - 1
			continue
		case bytes.HasPrefix(rest, []byte("-Infinity")):
			out = append(out, "null"...)
			i += len("-Infinity") - 1
			continue
		}
		out = append(out, c)
	}
	return out
}

// EvalMetrics returns the evaluation metrics (eval_* keys, without the
// speed ones such as eval_runtime, eval_samples_per_second and
// eval_steps_per_second) logged at step, merged over every entry for that
// step with later entries winning; nil if there are none.
func (s *TrainerState) EvalMetrics(step int64) map[string]float64 {
	var metrics map[string]float64
	for _, entry := range s.LogHistory {
		if entry.Step == nil || *entry.Step != step {
			continue
		}
		for key, value := range entry.Metrics {
			if !isEvalQualityMetric(key) {
				continue
			}
			if metrics == nil {
				metrics = map[string]float64{}
			}
			metrics[key] = value
		}
	}
	return metrics
}

// LatestEvalMetrics returns the evaluation metrics at GlobalStep if any were
// logged there, else those of the last log entry that has any. ok is false
// when no entry has evaluation metrics.
func (s *TrainerState) LatestEvalMetrics() (step int64, metrics map[string]float64, ok bool) {
	if s.GlobalStep != nil {
		if metrics := s.EvalMetrics(*s.GlobalStep); metrics != nil {
			return *s.GlobalStep, metrics, true
		}
	}
	for i := len(s.LogHistory) - 1; i >= 0; i-- {
		entry := s.LogHistory[i]
		if entry.Step == nil {
			continue
		}
		for key := range entry.Metrics {
			if isEvalQualityMetric(key) {
				return *entry.Step, s.EvalMetrics(*entry.Step), true
			}
		}
	}
	return 0, nil, false
}

func isEvalQualityMetric(key string) bool {
	return len(key) > len("eval_") && key[:len("eval_")] == "eval_" && !evalSpeedMetrics[key]
}

// BestStep returns Trainer's best step: best_global_step, else the N of
// the checkpoint-N folder best_model_checkpoint names (transformers before
// 4.47 write no best_global_step). ok is false when neither tells.
func (s *TrainerState) BestStep() (step int64, ok bool) {
	if s.BestGlobalStep != nil {
		return *s.BestGlobalStep, true
	}
	name := s.BestModelCheckpoint
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	digits, found := strings.CutPrefix(name, "checkpoint-")
	if !found || digits == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// BestMetricName names the metric best_metric is a value of.
// trainer_state.json does not record metric_for_best_model, but Trainer
// sets best_metric to that metric's value at the best step, which it also
// logs there: the name is the evaluation metric (EvalMetrics) logged at
// BestStep whose value equals best_metric, when exactly one does. It is ""
// when there is no best_metric or best step, or no metric or several
// match.
func (s *TrainerState) BestMetricName() string {
	if s.BestMetric == nil {
		return ""
	}
	step, ok := s.BestStep()
	if !ok {
		return ""
	}
	name := ""
	for key, value := range s.EvalMetrics(step) {
		if value != *s.BestMetric {
			continue
		}
		if name != "" {
			return "" // two metrics share the value: it cannot be told
		}
		name = key
	}
	return name
}
