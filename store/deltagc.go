package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/object"
)

// gc and delta blobs (docs/format.md, section 9, "Delta blobs"). A blob is
// live when a ref reaches it, or when it is the reference of a live delta
// blob. When only deltas keep a reference alive, gc re-encodes those
// deltas standalone in place (replaceStandalone), and the reference is
// then deleted like any unreachable blob.

// deltaEdge is one listed edge object.
type deltaEdge struct {
	key      string
	ref, dep object.ID
	modTime  time.Time
}

// listDeltaEdges lists every edge object of the registry.
func (r *Registry) listDeltaEdges(ctx context.Context) ([]deltaEdge, error) {
	var edges []deltaEdge
	err := r.backend.List(ctx, deltasPrefix, func(oi backend.ObjectInfo) error {
		if ref, dep, ok := parseDeltaEdge(oi.Key); ok {
			edges = append(edges, deltaEdge{key: oi.Key, ref: ref, dep: dep, modTime: oi.ModTime})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", deltasPrefix, err)
	}
	return edges, nil
}

// deltaPlan is what gc decided about delta edges before it sweeps.
type deltaPlan struct {
	// keep holds blobs no ref reaches that must stay: references of live
	// deltas that could not be re-encoded, and of edges young enough to
	// belong to a push in flight.
	keep map[object.ID]bool
	// stale are edges whose blob exists and is not a delta against the
	// edge's reference: they protect nothing and go after the sweep.
	stale []string
}

// planDeltas reads the delta edges and makes the references of live deltas
// live. A live delta whose reference no ref reaches is re-encoded
// standalone (unless dryRun), so that the reference can be deleted; if
// that fails, the reference is kept. An edge whose blob no ref reaches
// keeps its reference while the edge is younger than grace (a push in
// flight may be writing that blob).
func (r *Registry) planDeltas(ctx context.Context, keeper *lockKeeper, reachable map[object.ID]bool, now time.Time, grace time.Duration, opts GCOptions, res *GCResult) (*deltaPlan, error) {
	plan := &deltaPlan{keep: map[object.ID]bool{}}
	if !opts.DryRun {
		if err := r.finishRescues(ctx, now); err != nil {
			return nil, err
		}
	}
	edges, err := r.listDeltaEdges(ctx)
	if err != nil {
		return nil, err
	}
	reencode := map[object.ID]object.ID{} // live delta -> its unreached reference
	for _, e := range edges {
		if !reachable[e.dep] {
			if now.Sub(e.modTime) < grace {
				plan.keep[e.ref] = true
			}
			continue
		}
		h, ref, err := r.blobHeaderRef(ctx, e.dep)
		switch {
		case err != nil:
			// A live blob whose header cannot be read: whether it needs
			// the reference is unproven, so the reference stays.
			plan.keep[e.ref] = true
		case h.Codec != object.CodecDelta || ref != e.ref:
			plan.stale = append(plan.stale, e.key)
		case reachable[e.ref]:
			res.DeltaBlobs++
		default:
			res.DeltaBlobs++
			reencode[e.dep] = e.ref
		}
	}
	// The live deltas of each reference no ref reaches are re-keyed
	// together: one of them becomes a keyframe, the others deltas against
	// it where that is smaller (rekey).
	groups := map[object.ID][]object.ID{}
	for dep, ref := range reencode {
		groups[ref] = append(groups[ref], dep)
	}
	for _, ref := range slices.SortedFunc(maps.Keys(groups), compareIDs) {
		deps := groups[ref]
		if err := keeper.check(); err != nil {
			return nil, err
		}
		res.Reencoded += len(deps)
		if opts.DryRun {
			continue
		}
		n, asDeltas, err := r.rekey(ctx, keeper, ref, deps)
		res.Reencoded -= len(deps) - n
		res.Rekeyed += asDeltas
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil || n < len(deps) {
			plan.keep[ref] = true
		}
	}
	return plan, nil
}

// rekey re-encodes deps, live delta blobs against the reference old that
// no ref reaches any more, so that old can be freed without storing them
// all standalone: the dep with the largest stored form (the furthest from
// old, usually the newest checkpoint) becomes the new keyframe, replaced
// in place by its standalone coding; every other dep of the same length
// is replaced in place by its delta against the keyframe where that is
// smaller than its standalone coding (its edge written first), else by
// the standalone coding. It returns how many deps it re-encoded and how
// many of them are now deltas; old is needed while any is left (its error
// is the first one met).
func (r *Registry) rekey(ctx context.Context, keeper *lockKeeper, old object.ID, deps []object.ID) (done, asDeltas int, err error) {
	type dep struct {
		id   object.ID
		size int64
	}
	ordered := make([]dep, 0, len(deps))
	for _, id := range deps {
		oi, err := r.backend.Stat(ctx, object.BlobKey(id))
		if err != nil {
			return 0, 0, err
		}
		ordered = append(ordered, dep{id, oi.Size})
	}
	slices.SortFunc(ordered, func(a, b dep) int {
		if a.size != b.size {
			return cmp.Compare(b.size, a.size)
		}
		return compareIDs(a.id, b.id)
	})
	kf, err := r.reencodeKeyframe(ctx, ordered[0].id)
	if err != nil {
		return 0, 0, err
	}
	defer kf.done()
	done = 1
	for _, d := range ordered[1:] {
		if cerr := keeper.check(); cerr != nil {
			return done, asDeltas, cerr
		}
		isDelta, rerr := r.reencodeAgainst(ctx, d.id, ordered[0].id, kf.content)
		if rerr != nil {
			if ctx.Err() != nil {
				return done, asDeltas, ctx.Err()
			}
			if err == nil {
				err = rerr
			}
			continue
		}
		done++
		if isDelta {
			asDeltas++
		}
	}
	return done, asDeltas, err
}

func compareIDs(a, b object.ID) int { return bytes.Compare(a[:], b[:]) }

// keyframe is the content of a blob just made a keyframe, held (under a
// chunk lease) while its group is coded against it.
type keyframe struct {
	content []byte
	lease   *chunkLease
}

func (k *keyframe) done() { k.lease.done() }

// readWhole reads blob id whole (a delta through its reference) under a
// chunk lease the caller gives back; h is its header.
func (r *Registry) readWhole(ctx context.Context, id object.ID) (h object.Header, content []byte, l *chunkLease, err error) {
	if h, err = r.blobHeader(ctx, id); err != nil {
		return h, nil, nil, err
	}
	if l, err = leaseChunk(ctx, int64(h.ContentLen)); err != nil {
		return h, nil, nil, err
	}
	if content, err = r.readBlob(ctx, id, int64(h.ContentLen), l.buf()); err != nil {
		l.done()
		return h, nil, nil, err
	}
	return h, content, l, nil
}

// reencodeKeyframe reads delta blob id (through its reference), replaces
// it in place by its standalone coding and returns its content.
func (r *Registry) reencodeKeyframe(ctx context.Context, id object.ID) (*keyframe, error) {
	h, content, l, err := r.readWhole(ctx, id)
	if err != nil {
		return nil, err
	}
	bp := takeBuf(object.StoredCap(int64(len(content)))) // held under the lease's objectCost
	err = r.replaceStandalone(ctx, id, object.Encode((*bp)[:0], content, object.EncodeHint{ElemSize: int(h.Param)}))
	dropBuf(bp)
	if err != nil {
		l.done()
		return nil, err
	}
	return &keyframe{content: content, lease: l}, nil
}

// reencodeAgainst reads delta blob id (through its old reference) and
// replaces it in place by its delta against the keyframe kfID, whose
// content is kf, when that is smaller than its standalone coding, else by
// the standalone coding; isDelta says which.
func (r *Registry) reencodeAgainst(ctx context.Context, id, kfID object.ID, kf []byte) (isDelta bool, err error) {
	h, content, l, err := r.readWhole(ctx, id)
	if err != nil {
		return false, err
	}
	defer l.done()
	size := int64(len(content))
	bp := takeBuf(object.StoredCap(size)) // held under the lease's objectCost
	defer dropBuf(bp)
	standalone := object.Encode((*bp)[:0], content, object.EncodeHint{ElemSize: int(h.Param)})
	if int64(len(kf)) != size {
		return false, r.replaceStandalone(ctx, id, standalone)
	}
	release, err := deltaBudget.acquire(ctx, bufCost(object.DeltaStoredCap(size)))
	if err != nil {
		return false, err
	}
	defer release()
	db := takeBuf(object.DeltaStoredCap(size))
	defer dropBuf(db)
	delta, err := object.EncodeDelta((*db)[:0], content, kf, kfID, int(h.Param), len(standalone))
	if err != nil {
		return false, r.replaceStandalone(ctx, id, standalone)
	}
	// The edge first: from now on the keyframe is live while id is.
	if err := r.backend.Put(ctx, deltaEdgeKey(kfID, id), bytes.NewReader(nil), 0); err != nil && !errors.Is(err, backend.ErrExists) {
		return false, fmt.Errorf("write delta edge: %w", err)
	}
	return true, r.replaceInPlace(ctx, id, standalone, delta, kfID, false)
}

// finishRescues completes re-encodings in place that were interrupted: a
// blob missing beside its rescue copy is created from it (restoring never
// hurts: a replacement still running then finds its blob standalone); a
// rescue copy beside its blob is removed once older than the lock stale
// time, which no replacement in flight takes.
func (r *Registry) finishRescues(ctx context.Context, now time.Time) error {
	type rescue struct {
		id  object.ID
		key string
		mod time.Time
	}
	var found []rescue
	err := r.backend.List(ctx, rescuePrefix, func(oi backend.ObjectInfo) error {
		id, err := object.ParseID(oi.Key[len(oi.Key)-64:])
		if err == nil && rescueKey(id) == oi.Key {
			found = append(found, rescue{id, oi.Key, oi.ModTime})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", rescuePrefix, err)
	}
	for _, rs := range found {
		_, err := r.backend.Stat(ctx, object.BlobKey(rs.id))
		switch {
		case errors.Is(err, backend.ErrNotFound):
			if err := r.checkObject(ctx, rs.key, rs.id); err != nil {
				continue // a damaged copy restores nothing; verify reports the blob
			}
			data, err := readAll(ctx, r.backend, rs.key, object.StoredCap(object.MaxBlobContent))
			if errors.Is(err, backend.ErrNotFound) {
				continue // its replacement finished meanwhile
			}
			if err != nil {
				return err
			}
			if err := r.backend.Put(ctx, object.BlobKey(rs.id), bytes.NewReader(data), int64(len(data))); err != nil && !errors.Is(err, backend.ErrExists) {
				return fmt.Errorf("restore %s from %s: %w", object.BlobKey(rs.id), rs.key, err)
			}
		case err != nil:
			return err
		case now.Sub(rs.mod) > r.staleAfter():
			if err := r.backend.Delete(ctx, rs.key); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// afterSweep tidies the edges once unreachable blobs are gone: edges whose
// blob exists and is not a delta against the edge's reference, and edges
// whose blob no longer exists (older than grace), are deleted. A
// blob that is a delta against a reference this gc deleted can only be one
// a push wrote after the edges were listed (no ref reached it): it is
// deleted too, as an unreachable blob; pushes in flight re-check their
// blobs under the protocol of section 9.
func (r *Registry) afterSweep(ctx context.Context, plan *deltaPlan, deleted map[object.ID]bool, now time.Time, grace time.Duration, res *GCResult) error {
	for _, k := range plan.stale {
		if err := r.backend.Delete(ctx, k); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("delete %s: %w", k, err)
		}
	}
	edges, err := r.listDeltaEdges(ctx)
	if err != nil {
		return err
	}
	for _, e := range edges {
		h, ref, err := r.blobHeaderRef(ctx, e.dep)
		switch {
		case errors.Is(err, backend.ErrNotFound):
			// A push writes the edge just before its blob: an edge whose
			// blob is not there yet may be one in flight, whatever grace
			// the gc was given, and without it the delta would have no
			// edge. It goes once older than stale_after.
			if now.Sub(e.modTime) >= max(grace, r.staleAfter()) {
				if err := r.backend.Delete(ctx, e.key); err != nil && !errors.Is(err, backend.ErrNotFound) {
					return fmt.Errorf("delete %s: %w", e.key, err)
				}
			}
		case err != nil:
			return err
		case h.Codec != object.CodecDelta || ref != e.ref:
			// The blob exists and is not this delta (re-encoded, or stored
			// first by another writer): it never will be, blobs do not
			// change.
			if err := r.backend.Delete(ctx, e.key); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return fmt.Errorf("delete %s: %w", e.key, err)
			}
		case deleted[e.ref]:
			// Its reference is gone: no push can code against it any
			// more, so the edge goes with the blob.
			if err := r.backend.Delete(ctx, object.BlobKey(e.dep)); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return fmt.Errorf("delete %s: %w", object.BlobKey(e.dep), err)
			}
			res.DeletedBlobs++
			if err := r.backend.Delete(ctx, e.key); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return fmt.Errorf("delete %s: %w", e.key, err)
			}
		}
	}
	return nil
}

// mustID is the ID at the end of a key the gc listing already parsed.
func mustID(key string) object.ID {
	id, _ := object.ParseID(key[len(key)-64:])
	return id
}

// deltaHeld returns the blobs that edges name as references of the
// reachable blobs: what du counts as held by deltas.
func (r *Registry) deltaHeld(ctx context.Context, reachable map[object.ID]bool) (map[object.ID]bool, error) {
	edges, err := r.listDeltaEdges(ctx)
	if err != nil {
		return nil, err
	}
	held := map[object.ID]bool{}
	for _, e := range edges {
		if reachable[e.dep] {
			held[e.ref] = true
		}
	}
	return held, nil
}

// checkDeltaReferences checks, for verify without reading data, that every
// delta blob among the checked ones still has its reference: the edges
// name the candidates, each candidate's header says whether it is a delta
// and against what, and the reference must exist (or its rescue copy).
func (r *Registry) checkDeltaReferences(ctx context.Context, checked map[object.ID][]string) ([]Problem, error) {
	edges, err := r.listDeltaEdges(ctx)
	if err != nil {
		return nil, err
	}
	var problems []Problem
	for _, e := range edges {
		if _, ok := checked[e.dep]; !ok {
			continue
		}
		h, ref, err := r.blobHeaderRef(ctx, e.dep)
		if err != nil || h.Codec != object.CodecDelta || ref != e.ref {
			continue // a missing or damaged blob is reported already; a stale edge needs nothing
		}
		if _, err := r.statBlob(ctx, e.ref); err != nil {
			if ctx.Err() != nil {
				return problems, ctx.Err()
			}
			problems = append(problems, Problem{Object: object.BlobKey(e.dep), Files: checked[e.dep],
				Err: fmt.Errorf("%w: reference blob %s: %w", ErrBadReference, e.ref, err)})
		}
	}
	return problems, nil
}
