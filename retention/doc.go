// Package retention owns ckpt's retention policy: given the checkpoint
// records of one model name, it decides which checkpoints to keep and which
// to delete, and why.
//
// The package is pure. It performs no I/O, reads no clock (the caller passes
// "now") and deletes nothing: [Policy.Plan] returns a [Plan] with one
// [Decision] per checkpoint, and acting on it is the caller's business.
//
// A checkpoint is kept if any rule keeps it:
//
//   - keep-last K: the K newest checkpoints, ordered by Step, then Version
//     (numerically when both are decimal integers), then Pushed;
//   - keep-best N: the N best checkpoints by a metric (default "eval_loss"),
//     lower or greater being better as in Hugging Face's Trainer;
//   - keep-every S: checkpoints whose (known, non-zero) step is a multiple of S;
//   - keep-within D: checkpoints pushed at most D before now;
//   - tags: a checkpoint with a non-blank tag is always kept.
//
// Metric names follow transformers' TrainingArguments: a name without the
// "eval_" prefix gets it ("loss" means "eval_loss"), and unless told
// otherwise greater is better except for metrics ending in "loss".
// Checkpoints lacking the metric, or recording NaN, are never ranked as best.
//
// # Relation to Trainer's save_total_limit
//
// With load_best_model_at_end=True, Trainer's save_total_limit=N keeps the
// best checkpoint plus the N-1 newest when the best is older than those; when
// the best is among the N-1 newest, or there is no best, it keeps the N
// newest; and save_total_limit=1 keeps best and latest. So Trainer's final
// set always lies between the plans of {KeepLast: N-1, KeepBest: 1} and
// {KeepLast: N, KeepBest: 1}, and equals the former whenever the best is
// older than the N-1 newest. For N=1, {KeepLast: 1, KeepBest: 1} reproduces
// it exactly. The tests carry a simulation of Trainer's rotation that checks
// this.
package retention
