package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Publishing is the last step of a push: under a publish lock, make sure no
// garbage collection took data the checkpoint needs, then write its ref
// (docs/format.md, section 9).

// publish writes the ref under a publish lock, after making sure that no
// garbage collection deleted data the checkpoint needs since the push
// started (docs/format.md, "Garbage collection").
func (r *Registry) publish(ctx context.Context, rec *Record, m *Manifest, files []*pushFile, runsBefore map[string]bool, force bool, res *PushResult) error {
	for {
		lock, err := r.acquirePublish(ctx)
		if err != nil {
			return err
		}
		err = r.publishLocked(ctx, lock, rec, m, files, runsBefore, force, res)
		lock.release(ctx)
		if !errors.Is(err, errLockExpired) {
			return err
		}
	}
}

// errLockExpired: the publish lock was held so long that gc may think it
// abandoned; the publish starts over with a fresh lock.
var errLockExpired = errors.New("publish lock held too long")

func (r *Registry) publishLocked(ctx context.Context, lock *heldLock, rec *Record, m *Manifest, files []*pushFile, runsBefore map[string]bool, force bool, res *PushResult) error {
	runs, err := r.gcRuns(ctx)
	if err != nil {
		return err
	}
	newRun := false
	for id := range runs {
		if !runsBefore[id] {
			newRun = true
		}
	}
	if newRun {
		r.knownGen = r.index.syncGCRuns(r.format.ID, runs)
		if err := r.restoreMissing(ctx, rec, m, files, res); err != nil {
			return err
		}
		for id := range runs {
			runsBefore[id] = true
		}
	}
	// The ref must be written while the lock is surely still valid: the
	// write gets only the lock's remaining half-life.
	valid := lock.acquired.Add(r.staleAfter() / 2)
	if time.Until(valid) <= 0 {
		return errLockExpired
	}
	wctx, cancel := context.WithDeadline(ctx, valid)
	defer cancel()
	err = r.writeRecord(wctx, rec, force, res)
	if err != nil && wctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("writing the ref took longer than the publish lock allows (%s); push again: %w", r.staleAfter()/2, err)
	}
	return err
}

// restoreMissing checks that the manifest, the base's manifest and every
// blob they reference exist, uploading again what this push can (its own
// files) and failing clearly on what it cannot (a base that was deleted).
func (r *Registry) restoreMissing(ctx context.Context, rec *Record, m *Manifest, files []*pushFile, res *PushResult) error {
	data, mid, err := m.Encode()
	if err != nil {
		return err
	}
	if _, err := r.backend.Stat(ctx, ManifestKey(mid)); errors.Is(err, ErrNotFound) {
		stored, err := r.putObject(ctx, ManifestKey(mid), data, EncodeHint{Text: true})
		if err != nil {
			return err
		}
		res.NewStored += stored
	} else if err != nil {
		return err
	}
	if rec.Base != nil {
		bm, err := r.Manifest(ctx, rec.Base.Manifest)
		if err != nil {
			return fmt.Errorf("base %s was deleted while pushing: %w", rec.Base, err)
		}
		if missing, err := r.missingBlobs(ctx, bm.BlobIDs()); err != nil {
			return err
		} else if len(missing) > 0 {
			return fmt.Errorf("base %s lost %d blob(s) to garbage collection while pushing (first %s); push the base again", rec.Base, len(missing), missing[0])
		}
	}
	missing, err := r.missingBlobs(ctx, m.BlobIDs())
	if err != nil {
		return err
	}
	byPath := make(map[string]*pushFile, len(files))
	for _, pf := range files {
		byPath[pf.entry.Path] = pf
	}
	need := make(map[ID]bool, len(missing))
	for _, id := range missing {
		need[id] = true
	}
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			if !need[c.ID] {
				continue
			}
			delete(need, c.ID)
			buf := make([]byte, c.Size)
			if err := readAt(byPath[f.Path].abs, buf, c.Offset); err != nil {
				return err
			}
			if Hash(buf) != c.ID {
				return fmt.Errorf("%s changed while it was being pushed; push again once it is written", f.Path)
			}
			stored, err := r.putBlob(ctx, c.ID, buf, EncodeHint{})
			if err != nil {
				return err
			}
			res.NewStored += stored
			res.BytesRead += c.Size
		}
	}
	return nil
}

// missingBlobs returns the blobs among ids that the backend does not have.
func (r *Registry) missingBlobs(ctx context.Context, ids []ID) ([]ID, error) {
	var mu sync.Mutex
	var missing []ID
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.workers)
	for _, id := range ids {
		g.Go(func() error {
			_, err := r.backend.Stat(gctx, BlobKey(id))
			if errors.Is(err, ErrNotFound) {
				mu.Lock()
				missing = append(missing, id)
				mu.Unlock()
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	keys := make([]string, len(missing))
	for i, id := range missing {
		keys[i] = BlobKey(id)
	}
	r.index.forgetKnown(r.format.ID, keys)
	return missing, nil
}

// writeRecord publishes the ref, last, with its checksum. An identical
// existing record is a no-op; a different one needs force, and so does one
// that does not verify (it cannot be trusted to record the same content).
func (r *Registry) writeRecord(ctx context.Context, rec *Record, force bool, res *PushResult) error {
	key := versionKey(rec.Name, rec.Version)
	err := putRef(ctx, r.backend, key, rec)
	if err == nil || !errors.Is(err, ErrExists) {
		return err
	}
	old, err := r.readRecord(ctx, rec.Name, rec.Version)
	switch {
	case errors.Is(err, ErrCorruptRef):
		if !force {
			return fmt.Errorf("%s@%s: %w; force the push to replace it", rec.Name, rec.Version, err)
		}
	case err != nil:
		return err
	case old.Manifest == rec.Manifest:
		res.Unchanged = true
		*rec = old
		return nil
	case !force:
		return fmt.Errorf("%s@%s: %w (recorded manifest %s, this folder %s); use --force to replace it",
			rec.Name, rec.Version, ErrVersionExists, old.Manifest.String()[:12], rec.Manifest.String()[:12])
	}
	if err := r.backend.Delete(ctx, key); err != nil {
		return err
	}
	return putRef(ctx, r.backend, key, rec)
}
