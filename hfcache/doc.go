// Package hfcache knows the on-disk layout of the Hugging Face Hub cache,
// the folder that huggingface_hub (and through it transformers, diffusers,
// vLLM, TGI), @huggingface/hub, hf-hub and llama.cpp share: it finds a
// cached model to read (FindSnapshot) and writes a model into it so that
// those clients find it by id (WriteSnapshot). It reads and writes local
// files only and never touches the network or a registry.
//
// # Where the cache is
//
// HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE (its older name), else
// $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub (Dir).
//
// # Layout
//
// Each repository has one folder at the top of the cache, named by its
// type, pluralized, and its id with "/" replaced by "--" (the Hub forbids
// "--" in ids): models--ORG--NAME, models--NAME, datasets--ORG--NAME,
// spaces--ORG--NAME. Inside it:
//
//	blobs/<etag>                    the content of each file, once
//	snapshots/<commit>/<path>       a relative symlink to ../../blobs/<etag>,
//	                                one more ../ per folder in <path>
//	                                (onnx/model.onnx -> ../../../blobs/<etag>)
//	refs/<branch or tag>            the 40-hex-digit commit it stood for when
//	                                last downloaded, without a newline;
//	                                pull requests as refs/refs/pr/<n>
//	.no_exist/<commit>/<path>       empty files: paths known to be absent at
//	                                that commit (optional)
//
// A snapshot folder is named by the full commit hash and mirrors the
// repository's paths; it may hold only some of the commit's files. The Hub
// clients name a blob by the file's etag: the SHA-256 of the content for a
// file stored with Git LFS, the git blob SHA-1 for other files. Where
// symlinks are not available (Windows without developer mode), clients put
// regular files in the snapshot folder instead, and FindSnapshot accepts
// those. Lock files live outside repository folders, in <cache>/.locks/.
//
// # Resolving a file without the network
//
// Clients resolve a revision to a commit (a 40-hex-digit revision is used
// as it is; any other is read from refs/<revision>) and then look for
// snapshots/<commit>/<path>. A revision given as a full commit hash is the
// one they trust without asking the Hub: @huggingface/hub's
// downloadFileToCacheDir returns a cached file without a request only for
// such a revision, and otherwise asks the Hub which commit the branch is
// at; huggingface_hub takes the same shortcut and falls back to
// refs/<branch> only when offline (HF_HUB_OFFLINE=1, local_files_only).
// No client expands an abbreviated hash. So a snapshot must be named by a
// 40-hex-digit revision, and refs/<branch> must hold exactly that name,
// with nothing after it: the clients compare a ref's raw content with
// snapshot folder names.
//
// # What ckpt writes, and why
//
// Blob names: the SHA-256 of the content for every file, small ones
// included, never the git SHA-1. No client checks a blob's name against
// its content (they follow the snapshot's symlink and stat or read the
// target), so any unique name works; the SHA-256 is the one ckpt knows or
// computes while writing, it is the Hub's own name for every LFS file
// (weights, ONNX graphs, large tokenizers), so a real download of those
// into the same folder reuses ckpt's blob and vice versa, and computing a
// git SHA-1 would need to know which files the Hub keeps outside LFS,
// which a checkpoint does not say. A small file that the Hub keeps in git
// (config.json) may thus exist twice if the same repository is also
// downloaded from the Hub: a few kilobytes.
//
// Revision: RevisionFor(manifest ID), the first 40 hex digits of
// SHA-256("ckpt hf-cache revision v1" || 0x00 || manifest ID). It looks
// like a commit hash, as it must for offline resolution; it is stable (the
// same checkpoint always lands in the same snapshot, so pulling it again
// is a no-op); and it cannot be mistaken for a prefix of a ckpt ID. It is
// not a commit on the Hub: asked online for that revision, the Hub would
// answer that it does not exist, which is why the pulled snapshot is
// meant to be used offline or by commit.
//
// Writes are atomic and idempotent: blobs and refs go through temporary
// files in blobs/ that are fsynced and renamed into place, symlinks are
// made under a temporary name and renamed, the ref is written last, and
// an existing blob is reused only after its content is hashed. A file
// whose SHA-256 the caller does not know in advance (ckpt knows a large
// file by the IDs of its chunks) comes with a Verifier: the blob its
// snapshot links to, or any other blob of its size, is reused only if it
// hashes to its name and the Verifier recognizes the content, so content
// already in the cache is not fetched again and a link pointed at other
// content is not believed. Writes go
// through an os.Root on the repository folder and refuse symlinked
// blobs/, snapshots/ and refs/ folders, so a planted symlink cannot send
// them elsewhere. ckpt never writes .no_exist/, and removes a marker there
// for any file it writes.
//
// # Reading hostile caches
//
// FindSnapshot treats the cache as outside input: ref files must hold
// exactly 40 lowercase hex digits (one trailing newline tolerated),
// snapshot symlinks must resolve to regular files inside the repository's
// blobs/ folder (one that does not is refused, not followed), file names
// must pass CheckPath, and listings are bounded. Errors are typed:
// RepoNotFoundError and RevisionNotFoundError (ErrNotCached) say what is
// missing and list what is there; CorruptError (ErrCorrupt) names the
// offending path.
package hfcache
