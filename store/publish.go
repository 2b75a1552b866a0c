package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// Publishing is the last step of a push: under a publish lock, make sure no
// garbage collection took data the checkpoint needs, then write its ref
// (docs/format.md, section 9).

// publish writes the ref under a publish lock, after making sure that no
// garbage collection deleted data the checkpoint needs since the push
// started (docs/format.md, "Garbage collection").
func (op *pushOp) publish(ctx context.Context) error {
	return op.r.publishUnderLock(ctx, op.gc, func(ctx context.Context, runs map[string]bool) error {
		op.gen = op.r.index.syncGCRuns(op.r.format.ID, runs)
		return op.restoreMissing(ctx)
	}, op.writeRecord)
}

// publishUnderLock is the publish step of docs/format.md, section 9, for
// any writer of version refs (push, copy): under a publish lock, if a
// garbage collection may have deleted something since gc was taken
// (before the writer checked what exists), recheck makes sure again that
// everything the refs need exists; then write writes the refs while the
// lock is surely still valid. A lock held too long is dropped and the step
// starts over.
func (r *Registry) publishUnderLock(ctx context.Context, gc *gcView, recheck func(ctx context.Context, runs map[string]bool) error, write func(ctx context.Context) error) error {
	for {
		lock, err := r.acquirePublish(ctx)
		if err != nil {
			return err
		}
		err = r.publishLocked(ctx, lock, gc, recheck, write)
		lock.releaseOrWarn(ctx)
		if !errors.Is(err, errLockExpired) {
			return err
		}
	}
}

// removeStaleTemp lets a backend with a temporary space of its own remove
// what killed writers left there (TempCleaner). Failures only leave the
// files for the next push or gc; a dry run removes nothing.
func (r *Registry) removeStaleTemp(ctx context.Context, dryRun bool) {
	if c, ok := r.backend.(backend.TempCleaner); ok && !dryRun {
		_ = c.CleanTemp(ctx)
	}
}

// errLockExpired: the publish lock was held so long that gc may think it
// abandoned; the publish starts over with a fresh lock.
var errLockExpired = errors.New("publish lock held too long")

func (r *Registry) publishLocked(ctx context.Context, lock *heldLock, gc *gcView, recheck func(context.Context, map[string]bool) error, write func(context.Context) error) error {
	runs, err := r.gcRuns(ctx)
	if err != nil {
		return err
	}
	if gc.overlapped(runs) {
		if err := recheck(ctx, runs); err != nil {
			return err
		}
		gc.settle(runs)
	}
	// The refs must be written while the lock is surely still valid: the
	// write gets only the lock's remaining half-life.
	valid := lock.acquired.Add(r.staleAfter() / 2)
	if time.Until(valid) <= 0 {
		return errLockExpired
	}
	wctx, cancel := context.WithDeadline(ctx, valid)
	defer cancel()
	err = write(wctx)
	if err != nil && wctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("writing the ref took longer than the publish lock allows (%s); try again: %w", r.staleAfter()/2, err)
	}
	return err
}

// restoreMissing checks, after a gc ran during the push, that the
// manifest, the base's manifest and every blob they reference exist,
// uploading again what this push can (its own files) and failing clearly
// on what it cannot (a base that was deleted).
func (op *pushOp) restoreMissing(ctx context.Context) error {
	r, rec := op.r, &op.rec
	if rec.Base != nil {
		bm, err := r.Manifest(ctx, rec.Base.Manifest)
		if err != nil {
			return fmt.Errorf("base %s was deleted while pushing: %w", rec.Base, err)
		}
		keys := make([]string, 0, len(bm.BlobIDs()))
		for _, id := range bm.BlobIDs() {
			keys = append(keys, object.BlobKey(id))
		}
		if missing, err := r.missingKeys(ctx, keys); err != nil {
			return err
		} else if len(missing) > 0 {
			return fmt.Errorf("base %s lost %d blob(s) to garbage collection while pushing (first %s); push the base again", rec.Base, len(missing), missing[0])
		}
	}
	return op.confirm(ctx, true)
}

// confirm makes sure the registry holds the push's manifest and every blob
// it references before a ref points at it. The keys this push saw in the
// registry itself (op.seen) are facts; the others were vouched for by a
// per-machine cache (the known-blob set, or the stat cache's chunks) and
// are checked now, batched (missingKeys); what is missing is uploaded
// again, blobs from the folder's files (their IDs checked), then the
// manifest. With all, every key is checked (a gc ran meanwhile).
func (op *pushOp) confirm(ctx context.Context, all bool) error {
	m, mid, files := op.scan.manifest, op.manifestID, op.scan.files
	var keys []string
	for _, k := range append([]string{object.ManifestKey(mid)}, blobKeys(m.BlobIDs())...) {
		if all || !op.seen.has(k) {
			keys = append(keys, k)
		}
	}
	missing, err := op.r.missingKeys(ctx, keys)
	if err != nil || len(missing) == 0 {
		return err
	}
	blobs := map[object.ID]bool{}
	manifestMissing := false
	for _, k := range missing {
		if k == object.ManifestKey(mid) {
			manifestMissing = true
			continue
		}
		id, err := object.ParseID(k[strings.LastIndexByte(k, '/')+1:])
		if err != nil {
			return err
		}
		blobs[id] = true
	}
	need := maps.Clone(blobs)
	for _, pf := range files {
		for _, c := range pf.file.Chunks {
			delete(blobs, c.ID)
		}
	}
	for id := range blobs {
		return fmt.Errorf("blob %s is missing from the registry and from the folder", id)
	}
	if err := op.build.storeFromFiles(ctx, files, need, op.res, false); err != nil {
		return err
	}
	if manifestMissing {
		stored, err := op.putObject(ctx, object.ManifestKey(mid), op.manifestJSON, object.EncodeHint{Text: true})
		if err != nil {
			return err
		}
		op.res.NewStored += stored
	}
	return nil
}

func blobKeys(ids []object.ID) []string {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = object.BlobKey(id)
	}
	return keys
}

// listAtLeast is how many of the keys under one blobs/<2 hex>/ folder make
// listing the folder cheaper than asking for each key (see missingKeys).
var listAtLeast = 8

// checkFanout multiplies the transfer workers for existence checks: a
// HEAD or a listing moves no data, so more of them wait on the network at
// once for the same memory.
var checkFanout = 4

// missingKeys returns the keys the backend does not have, and drops them
// from the known-blob cache. Keys are checked in parallel, by Stat, or, for
// folders holding at least listAtLeast of them on a backend whose Stat is
// a request, by one listing of the folder.
func (r *Registry) missingKeys(ctx context.Context, keys []string) ([]string, error) {
	byDir := map[string][]string{}
	for _, k := range keys {
		dir := k[:strings.LastIndexByte(k, '/')+1]
		byDir[dir] = append(byDir[dir], k)
	}
	cheap := false
	if c, ok := r.backend.(backend.CheapStatter); ok {
		cheap = c.CheapStat()
	}
	var mu sync.Mutex
	var missing []string
	gone := func(k string) {
		mu.Lock()
		missing = append(missing, k)
		mu.Unlock()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(min(64, checkFanout*r.workers))
	for dir, ks := range byDir {
		if !cheap && len(ks) >= listAtLeast {
			g.Go(func() error {
				have := make(map[string]bool, len(ks))
				err := r.backend.List(gctx, dir, func(oi backend.ObjectInfo) error {
					have[oi.Key] = true
					return nil
				})
				if err != nil {
					return err
				}
				for _, k := range ks {
					if !have[k] {
						gone(k)
					}
				}
				return nil
			})
			continue
		}
		for _, k := range ks {
			g.Go(func() error {
				_, err := r.backend.Stat(gctx, k)
				if errors.Is(err, backend.ErrNotFound) {
					gone(k)
					return nil
				}
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sort.Strings(missing)
	r.index.forgetKnown(r.format.ID, missing)
	return missing, nil
}

// writeRecord publishes the ref, last, with its checksum. An identical
// existing record is a no-op; a different one needs force, and so does one
// that does not verify (it cannot be trusted to record the same content).
func (op *pushOp) writeRecord(ctx context.Context) error {
	r, rec, force := op.r, &op.rec, op.opts.Force
	key := refs.VersionKey(rec.Name, rec.Version)
	err := putRef(ctx, r.backend, key, rec)
	if err == nil || !errors.Is(err, backend.ErrExists) {
		return err
	}
	old, err := r.readRecord(ctx, rec.Name, rec.Version)
	switch {
	case errors.Is(err, refs.ErrCorrupt):
		if !force {
			return mark(fmt.Errorf("%s@%s: %w", rec.Name, rec.Version, err), ErrNeedsForce)
		}
	case err != nil:
		return err
	case old.Manifest == rec.Manifest:
		op.res.Unchanged = true
		*rec = old
		return nil
	case !force:
		// The same bytes cut differently (by an earlier ckpt) are the
		// same checkpoint: re-pushing it is not a conflict.
		if same, err := op.holdsRecorded(ctx, old.Manifest); err != nil || same {
			if same {
				op.res.Unchanged = true
				*rec = old
			}
			return err
		}
		return mark(fmt.Errorf("%s@%s: %w (recorded manifest %s, this folder %s)",
			rec.Name, rec.Version, ErrVersionExists, old.Manifest.String()[:12], rec.Manifest.String()[:12]), ErrNeedsForce)
	}
	if err := r.backend.Delete(ctx, key); err != nil {
		return err
	}
	return putRef(ctx, r.backend, key, rec)
}

// holdsRecorded reports whether the folder pushed holds exactly what the
// manifest id records (folderHolds).
func (op *pushOp) holdsRecorded(ctx context.Context, id object.ID) (bool, error) {
	recorded, err := op.r.Manifest(ctx, id)
	if err != nil {
		return false, err
	}
	return folderHolds(ctx, op.dir, op.scan.manifest, recorded)
}
