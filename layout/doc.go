// Package layout knows how Hugging Face model folders and training
// checkpoints are laid out on disk, and nothing else.
//
// It owns:
//   - the role of every file in such a folder (weights, tokenizer, resume
//     state, ...), decided from its path alone (Classify);
//   - parsing and validating the formats ckpt has to understand itself: the
//     safetensors header (ParseSafetensorsHeader, enforcing the rules of the
//     reference implementation), trainer_state.json as transformers' Trainer
//     writes it (ParseTrainerState) and sharded-weights index files
//     (ParseShardIndex);
//   - scanning a local folder into a list of regular files (ScanDir) and
//     judging a folder, local or described by a manifest through fs.FS,
//     as a complete checkpoint (CheckComplete) or a runnable model
//     (CheckRunnable).
//
// The package is pure: it only reads files and never touches storage.
package layout
