// Package synth owns the generation of synthetic Hugging Face model folders
// and Trainer checkpoints: realistic in layout and format, cheap to produce,
// and byte-for-byte deterministic for a given seed.
//
// It writes what transformers' Trainer leaves in an output_dir for a GPT-2
// shaped model: checkpoint-<step>/ folders holding safetensors weights
// (single file or sharded with model.safetensors.index.json), config.json,
// generation_config.json, tokenizer files copied from a real tokenizer,
// resume state in torch.save's zip format (optimizer.pt, scheduler.pt,
// scaler.pt, rng_state.pth, training_args.bin) and trainer_state.json
// formatted exactly as Python's json.dumps(indent=2, sort_keys=True) does.
//
// Tests, `make demo` and the benchmarks use it so that no large data has to
// be committed: the weights are generated, never stored. Weight values look
// like a trained model's (normal around 0, layer norms around 1), each
// checkpoint of a run perturbs every tensor of its base except the frozen
// ones, so exactly the frozen tensors, config and tokenizer deduplicate.
package synth
