// Package store is the engine of a ckpt registry: a Registry on a backend,
// push (chunking, hashing, uploading, publishing under a lock), pull,
// garbage collection, verification, the base-chain resolver, and the
// per-machine bbolt index and caches. What it works on lives in packages of
// its own, each importable without the engine:
//
//	store/backend    the Backend contract (standard library only); backends in
//	                 store/backend/local, s3 and mem, the conformance suite in
//	                 store/backend/backendtest
//	store/object     IDs, blob and manifest keys, the envelope, codecs, limits
//	store/manifest   the manifest of a folder: files, chunks, tensors, digests
//	store/refs       records, tags, policies, ref checksums, the catalog and
//	                 its pure resolution of NAME@REF
//	store/planes     the byte-plane weights codec
//
// Imports point downward only (store/layering_test.go checks it).
//
// The registry format is specified in docs/format.md. In short:
//
//	ckpt-registry.json                 format file {"format","version","id","created"}
//	blobs/<2 hex>/<sha256 of content>  16-byte header (magic "CKPT", version, codec, param, length) + payload
//	manifests/<2 hex>/<sha256 of JSON> the same envelope around a folder's manifest (files, chunks, tensors)
//	refs/<NAME>/v/<VERSION>            JSON record: manifest ID, step, metrics, base
//	refs/<NAME>/t/<TAG>                JSON: the version a tag points at
//	refs/<NAME>/p/retention            JSON: the stored retention policy
//
// Every ref carries "checksum": "sha256:<hex>", the SHA-256 of its canonical
// form (its members but the checksum, sorted by name, values as written
// without white space outside strings; docs/format.md, section 5). Every
// reader verifies it before acting on the ref and fails with refs.ErrCorrupt,
// naming the key; refs written before checksums existed have none and are
// read as written.
//
// Invariants every writer keeps:
//
//   - Objects other than refs are created once (create-only puts) and never
//     change; an object's key is derived from its content, so a second
//     writer of the same key writes the same content.
//   - A push writes every blob, then the manifest, then the ref: a reader that
//     sees a ref can read all of its data.
//   - Every read of a blob or manifest checks the SHA-256 of the decoded
//     content against the ID in its key.
//   - The per-machine Index is only a cache; with it deleted, damaged or
//     unwritable every operation still gives the same result, only slower.
//     Before a push publishes, it checks in the registry every object that
//     only a cache vouched for, and uploads again what is missing.
//
// # Bounded memory
//
// Everything read from a registry is hostile input. An object's header
// declares its content length, which is capped per kind (MaxBlobContent,
// MaxManifestContent) and, for a chunk, must equal the size its manifest
// gives; readers check it before they read the payload, read no more payload
// than the codec may need, allocate the declared length only after the
// payload's framing checks out, and stop decoding as soon as the output
// passes it (docs/format.md, section 4, "Limits").
//
// Across workers, TransferBudget (128 MiB) bounds the object data one
// process holds at once: every worker of pull, verify --read-data, ReadRange
// and push acquires what its object needs (its content and its stored form,
// counted at the capacity of the buffers it takes) from one weighted
// semaphore before it reads, and releases it when done, so the memory of a
// transfer does not grow with the number of workers or with how often a
// manifest repeats one large blob. An object that needs more than the whole
// budget takes all of it and runs alone. Chunk buffers (9 MiB) are pooled
// in a free list and, on Unix, mapped outside the Go heap, at most as many
// as the transfer and delta budgets can hold at once, so the collector
// neither scans them nor counts them against a soft memory limit; larger
// buffers are never pooled, and before one is taken the idle pooled ones
// give their pages back and a garbage collection runs, so large objects
// reuse each other's memory. The manifest JSON a reader decodes, and the
// codecs' own scratch (at most 8 pooled states of the planes codec, about
// 8 MiB each while pushing), come on top.
//
// # Delta blobs
//
// With Options.Deltas a push codes a tensor chunk as a delta (codec delta,
// store/object) against the same tensor extent in the previous version of
// the NAME or in the base, when that is smaller; the blob ID stays the
// SHA-256 of the content. References are never deltas (depth 1). Every
// delta has an edge object deltas/<ref>/<delta>, written before it, so gc
// keeps a live delta's reference live, and re-encodes the delta standalone
// in place (through a rescue/ copy that readers fall back to) when nothing
// else keeps the reference. The first delta raises the registry's format
// to version 2. A delta's reference is held from a separate 54 MiB budget
// (deltaBudget) on top of TransferBudget. See delta.go and deltagc.go.
//
// # Garbage collection and its safety invariant
//
// Every blob and manifest reachable from a version ref exists, except while
// a push holding a fresh publish lock is writing that very ref.
//
// GC deletes only while it holds a fresh "gc" lock (locks/gc-*.json), and
// only what no ref reached when it read the refs; it writes a run marker
// (gc/runs/*) before deleting anything. A push uploads without any lock, then
// publishes under a "publish" lock, which excludes the gc lock (both sides
// create their lock before listing the others'). If a run marker appeared
// since the push listed them at its start, or a gc lock was listed right
// after them (that gc may still be deleting), the push re-checks, under its
// lock, that everything its manifest needs exists, and uploads again what a
// gc deleted. Staleness of locks is judged with the storage's clock only
// (ModTime against the reader's own fresh lock), or with one machine's
// monotonic clock; never across machines. The known-blob cache is keyed by
// the number of run markers seen, so a gc invalidates it. docs/format.md,
// section 9, gives the protocol step by step and the argument.
//
// # gc deletes only on positive proof
//
// "Could not read" never counts as "unreferenced". gc reads every version
// ref from the registry itself (ReadCatalog with FromRegistry), never from
// the per-machine cache. If any version ref cannot be read, parsed or its
// checksum verified, names another NAME@VERSION than its key, or names no
// manifest, or if a manifest a ref needs (its own or its base's) is missing
// from the registry's listing of manifests/ (whatever is cached here) or
// does not decode, gc deletes nothing, not even in a dry run, and fails
// with ErrUnproven listing every ref and object at fault.
//
// # A cache is a hint, never a verdict
//
// The per-machine Index may save work but never decides what a ref says,
// that an object exists or that data is intact when the answer leads to a
// deletion (gc, retention, rm) or to a success verdict (verify): those read
// refs from the registry, prove manifests exist by a stat in the registry,
// and verify --read-data downloads every manifest and blob. A cached ref is
// used (for listing) only while its ETag is unchanged, its bytes hash to the
// SHA-256 stored with them and its own checksum matches; otherwise it is a
// miss and is read again. Cached manifests and blobs are used only after
// their content hashes to their ID. The per-machine content cache
// (ContentCache) serves bytes only after a check: a chunk read from it
// must hash to its ID, and a whole file is linked only while its inode
// still shows the seal taken when its bytes last matched its hash (any
// write through any hard link changes the inode's ctime, which no user can
// set back), else after hashing it again in full (link.go gives the
// argument and its limits).
package store
