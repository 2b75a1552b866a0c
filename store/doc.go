// Package store owns the bytes of a ckpt registry: chunking, hashing, the
// object envelope and its codecs, manifests, refs, the Backend interface that
// local folders and S3 buckets implement, push and pull, verification, and
// the per-machine bbolt index.
//
// The registry format is specified in docs/format.md. In short:
//
//	ckpt-registry.json                 format file {"format","version","id","created"}
//	blobs/<2 hex>/<sha256 of content>  16-byte header (magic "CKPT", version, codec, param, length) + payload
//	manifests/<2 hex>/<sha256 of JSON> the same envelope around a folder's manifest (files, chunks, tensors)
//	refs/<NAME>/v/<VERSION>            JSON record: manifest ID, step, metrics, base
//	refs/<NAME>/t/<TAG>                JSON: the version a tag points at
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
// since the push listed them at its start, the push re-checks, under its
// lock, that everything its manifest needs exists, and uploads again what a
// gc deleted. Staleness of locks is judged with the storage's clock only
// (ModTime against the reader's own fresh lock), or with one machine's
// monotonic clock; never across machines. The known-blob cache is keyed by
// the number of run markers seen, so a gc invalidates it. docs/format.md,
// section 9, gives the protocol step by step and the argument.
package store
