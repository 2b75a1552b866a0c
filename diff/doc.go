// Package diff compares two checkpoints and says what changed between them:
// files, the keys of JSON configuration files, the tokenizer (tokens,
// special tokens, merges) and the weights, tensor by tensor.
//
// It owns the comparison only. A checkpoint is a [Side]: a manifest plus a
// way to read byte ranges of its files, built from a registry ref
// ([FromRegistry]) or a local folder scanned the way push would scan it
// ([FromFolder]). [Compare] returns a [Report]; [Report.Summary] renders it
// in one line.
//
// What is read, and when:
//   - files are compared by digest, from the manifests alone;
//   - tensors are matched by name across every safetensors file of a side
//     (shard boundaries may differ) and compared by dtype, shape and digest,
//     from the manifests alone: no tensor data is read;
//   - JSON and tokenizer files are read only when their digests differ;
//   - with [Options.Stats], the data of tensors whose bytes changed (same
//     dtype and shape) is read in pieces of at most [Options.MaxRead] bytes
//     per side, so memory stays bounded whatever the tensor size.
package diff
