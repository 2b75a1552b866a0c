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
//   - telling where the tensors of the other weight formats lie, so that
//     files can be cut at tensor boundaries: torch.save zips
//     (ParseTorchZip), torch.distributed.checkpoint files (ParseDistCP,
//     ParseDistCPMetadata) and GGUF files (ParseGGUF), described below;
//   - scanning a local folder into a list of regular files (ScanDir) and
//     judging a folder, local or described by a manifest through fs.FS,
//     as a complete checkpoint (CheckComplete) or a runnable model
//     (CheckRunnable);
//   - selecting files for a partial pull (Selection): by category
//     (weights, config, tokenizer, resume) and by the include and exclude
//     patterns of `hf download` (MatchPattern);
//   - PEFT adapters: detecting an adapter folder (DetectAdapter), parsing
//     adapter_config.json as PEFT writes it (ParseAdapterConfig), and
//     telling a model that runs alone from an adapter that runs only on top
//     of its base (CheckRunnableAlone, NeedsBaseError).
//
// The package is pure: it only reads files and never touches storage.
//
// # torch.save zips
//
// Since PyTorch 1.6, torch.save writes an uncompressed zip archive (any
// .bin, .pt or .pth may be one; DeepSpeed's *_model_states.pt and
// *_optim_states.pt are too). Every record sits in one folder: data.pkl,
// a pickle of the saved object whose tensors refer to their storages by
// persistent ids ('storage', storage class, key, location, element count);
// data/<key>, the raw bytes of each storage, 64-byte aligned by an "FB"
// padding extra field; and small records (byteorder in newer torch,
// version, .data/serialization_id, ...).
//
// ParseTorchZip reads the end records (zip64 ones too), the central
// directory and every local header, and checks them as hostile input: no
// archive comment, the archive starting at byte 0, at most MaxZipEntries
// records within a MaxZipDirectory directory, records unencrypted, inside
// the file, before the directory and not overlapping, one top-level folder,
// data.pkl and storages stored. It reads data.pkl (at most MaxTorchPickle
// bytes) with a symbolic pickle reader that follows the opcodes of
// protocols 0 to 5 on inert values and never imports or calls anything,
// with at most MaxPickleValues values and a stack at most MaxPickleStack
// deep. From the persistent ids it takes
// each storage's dtype (FloatStorage is float32, ...) and element count,
// which must match the record's size; for dtypes torch saves as an
// untyped storage (float8, uint16, ...) it takes the dtype argument of
// _rebuild_tensor_v3. A dtype it cannot tell that way is left unknown
// (ElemSize 0). It trusts the storages' bytes, which it never reads, and
// does not verify CRCs. The legacy format (a bare pickle stream, before
// torch 1.6 or with _use_new_zipfile_serialization=False) is refused with
// ErrLegacyTorchSave: its storages are not delimited by any index.
//
// # torch.distributed.checkpoint
//
// A DCP save is a folder of rank files (__<rank>_<n>.distcp) and a
// .metadata pickle. With the default serialization, a rank file is the
// concatenation of its items, each one written by torch.save: every item is
// a complete torch.save zip whose zip offsets are relative to its own
// start. ParseDistCP walks such a file from its end: the last archive's
// directory tells where that archive starts, which is where the previous
// one ends. Items that are not archives (safetensors serialization, storage
// transforms) stop the walk and leave the start of the file as one opaque
// item. ParseDistCPMetadata reads the .metadata with the same pickle reader
// and returns the extent (file, offset, length) the metadata records for
// every item; it checks the pickle's shape, not that the extents fit their
// files.
//
// # GGUF
//
// GGUF (llama.cpp's export format) is a header (magic, version, tensor and
// metadata counts, typed key-value metadata, tensor infos: name, dims, ggml
// type, offset) followed by the data section, which starts at the end of
// the header rounded up to general.alignment (default 32). ParseGGUF reads
// versions 2 and 3 in either byte order and checks counts, lengths, array
// nesting and the header size against the MaxGGUF* limits before reading,
// value types, no duplicate keys or tensor names, the alignment (a UINT32
// power of two), at most four dimensions, a known ggml type whose block
// divides the first dimension, and every tensor aligned, inside the file
// and not overlapping another. Tensor sizes come from ggml's block
// layouts (ggml.c's type_traits). It never reads tensor data.
package layout
