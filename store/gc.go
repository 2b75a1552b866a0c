package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// DefaultGrace is how old (by the storage's clock) an unreferenced object
// must be before gc deletes it: younger ones probably belong to a push in
// flight. Safety does not depend on it (see docs/format.md); it only spares
// such pushes from uploading again.
const DefaultGrace = time.Hour

// GCOptions tune a garbage collection.
type GCOptions struct {
	Grace   time.Duration // default DefaultGrace; 0 is allowed via NoGrace
	NoGrace bool          // delete unreferenced objects whatever their age
	DryRun  bool          // report what would be deleted, delete nothing
}

// GCResult is what a garbage collection did (or would do, for a dry run).
type GCResult struct {
	DryRun             bool  `json:"dry_run"`
	Checkpoints        int   `json:"checkpoints"`
	ReachableManifests int   `json:"reachable_manifests"`
	ReachableBlobs     int   `json:"reachable_blobs"`
	DeletedManifests   int   `json:"deleted_manifests"`
	DeletedBlobs       int   `json:"deleted_blobs"`
	FreedBytes         int64 `json:"freed_bytes"`
	KeptYoung          int   `json:"kept_young"` // unreferenced but younger than the grace period
	// DeltaBlobs counts the live delta blobs; Reencoded those re-encoded
	// because no ref reached their reference any more, which was then
	// freed; Rekeyed those of them now deltas against a new keyframe
	// (deltagc.go).
	DeltaBlobs int           `json:"delta_blobs"`
	Reencoded  int           `json:"reencoded"`
	Rekeyed    int           `json:"rekeyed"`
	Duration   time.Duration `json:"duration_ns"`
}

// GC deletes the manifests and blobs that no ref reaches. It holds the
// registry's exclusive gc lock while it runs, so pushes wait to publish
// (never to upload) and a second gc fails with ErrLocked.
func (r *Registry) GC(ctx context.Context, opts GCOptions) (*GCResult, error) {
	r.removeStaleTemp(ctx, opts.DryRun)
	start := time.Now()
	res := &GCResult{DryRun: opts.DryRun}
	grace := opts.Grace
	if grace == 0 && !opts.NoGrace {
		grace = DefaultGrace
	}
	lock, err := r.acquireGC(ctx)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	keeper := startLockKeeper(ctx, lock, r.staleAfter())
	defer keeper.finish(ctx)

	// The storage's clock, now: objects are aged against it.
	now := lock.modTime
	if !opts.DryRun {
		// The marker goes in before anything is deleted: a push that started
		// before it will see it and re-check its blobs before publishing.
		if err := putJSON(ctx, r.backend, gcRunsPrefix+randomHex(12)+".json", lock.info); err != nil {
			return nil, fmt.Errorf("gc: write run marker: %w", err)
		}
	}

	reachable, err := r.mark(ctx, res)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	if err := keeper.check(); err != nil {
		return nil, err
	}
	deltas, err := r.planDeltas(ctx, keeper, reachable, now, grace, opts, res)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	deletedBlobs := map[object.ID]bool{}
	for _, prefix := range []string{"manifests/", "blobs/"} {
		var doomed []backend.ObjectInfo
		err := r.backend.List(ctx, prefix, func(oi backend.ObjectInfo) error {
			id, err := object.ParseID(oi.Key[strings.LastIndexByte(oi.Key, '/')+1:])
			if err != nil || oi.Key != keyFor(prefix, id) {
				return nil // not ours to judge
			}
			if reachable[id] || prefix == "blobs/" && deltas.keep[id] {
				return nil
			}
			if !opts.NoGrace && now.Sub(oi.ModTime) < grace {
				res.KeptYoung++
				return nil
			}
			doomed = append(doomed, oi)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("gc: list %s: %w", prefix, err)
		}
		if err := r.sweep(ctx, keeper, doomed, opts.DryRun); err != nil {
			return nil, err
		}
		for _, oi := range doomed {
			res.FreedBytes += oi.Size
		}
		if prefix == "blobs/" {
			res.DeletedBlobs = len(doomed)
			for _, oi := range doomed {
				deletedBlobs[mustID(oi.Key)] = true
			}
		} else {
			res.DeletedManifests = len(doomed)
		}
	}
	if !opts.DryRun {
		if err := r.afterSweep(ctx, deltas, deletedBlobs, now, grace, res); err != nil {
			return nil, fmt.Errorf("gc: %w", err)
		}
		if err := r.pruneGCRuns(ctx, now); err != nil {
			return nil, fmt.Errorf("gc: prune run markers: %w", err)
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

func keyFor(prefix string, id object.ID) string {
	if prefix == "blobs/" {
		return object.BlobKey(id)
	}
	return object.ManifestKey(id)
}

// ErrUnproven is returned by gc when it cannot prove what the refs reach:
// a version ref that cannot be read, parsed or verified, or a manifest a
// ref needs that is missing or cannot be decoded. gc then deletes nothing.
var ErrUnproven = errors.New("cannot prove what the refs reach; nothing was deleted")

// mark returns every manifest and blob ID that a version ref reaches,
// directly or as a base. It reads every version ref from the registry
// (never from the per-machine cache), and fails with ErrUnproven, naming
// every object and ref at fault, unless each ref verifies and each manifest
// they name exists in the registry and decodes: "could not read" never
// counts as "unreferenced".
func (r *Registry) mark(ctx context.Context, res *GCResult) (map[object.ID]bool, error) {
	c, err := r.ReadCatalog(ctx, "", CatalogOptions{FromRegistry: true, KeepGoing: true, VersionsOnly: true})
	if err != nil {
		return nil, err
	}
	var faults []string
	for _, p := range c.Problems {
		faults = append(faults, p.Err.Error())
	}
	users := map[object.ID][]string{} // manifest -> the refs that need it
	for _, recs := range c.Records {
		for _, rec := range recs {
			res.Checkpoints++
			key := refs.VersionKey(rec.Name, rec.Version)
			users[rec.Manifest] = append(users[rec.Manifest], key)
			if rec.Base != nil {
				users[rec.Base.Manifest] = append(users[rec.Base.Manifest], key+" (base "+rec.Base.String()+")")
			}
		}
	}
	reachable := make(map[object.ID]bool, len(users))
	for mid := range users {
		reachable[mid] = true
	}
	// The registry must still have every manifest a ref needs: one listing
	// proves it for all (only gc deletes manifests, and this one holds the
	// lock); what a manifest references may come from the cached copy,
	// which is checked against its ID.
	listed := map[object.ID]int64{}
	err = r.backend.List(ctx, "manifests/", func(oi backend.ObjectInfo) error {
		if id, err := object.ParseID(oi.Key[strings.LastIndexByte(oi.Key, '/')+1:]); err == nil && oi.Key == object.ManifestKey(id) {
			listed[id] = oi.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list manifests/: %w", err)
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.workers)
	for mid, refs := range users {
		g.Go(func() error {
			var m *manifest.Manifest
			var err error
			size, ok := listed[mid]
			if !ok {
				err = fmt.Errorf("%w in the registry", backend.ErrNotFound)
			} else {
				m, err = r.listedManifest(gctx, mid, size)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				sort.Strings(refs)
				msg := err.Error()
				if i := strings.LastIndex(msg, object.ManifestKey(mid)+": "); i >= 0 {
					msg = msg[i+len(object.ManifestKey(mid))+2:] // the error names the object already
				}
				faults = append(faults, fmt.Sprintf("%s (needed by %s): %s", object.ManifestKey(mid), strings.Join(refs, ", "), msg))
				return nil
			}
			for _, id := range m.BlobIDs() {
				reachable[id] = true
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(faults) > 0 {
		sort.Strings(faults)
		return nil, &UnprovenError{Faults: faults}
	}
	res.ReachableManifests = len(users)
	res.ReachableBlobs = len(reachable) - len(users)
	return reachable, nil
}

// UnprovenError lists everything that kept gc from proving reachability;
// it matches ErrUnproven.
type UnprovenError struct {
	Faults []string // one line per ref or manifest at fault, naming it
}

func (e *UnprovenError) Error() string {
	const show = 10
	lines := e.Faults
	more := ""
	if len(lines) > show {
		more = fmt.Sprintf("\n  and %d more", len(lines)-show)
		lines = lines[:show]
	}
	return fmt.Sprintf("%v (%d problem(s)):\n  %s%s", ErrUnproven, len(e.Faults), strings.Join(lines, "\n  "), more)
}

func (e *UnprovenError) Is(target error) bool { return target == ErrUnproven }

// sweep deletes objects with bounded parallelism, keeping the lock fresh.
func (r *Registry) sweep(ctx context.Context, keeper *lockKeeper, doomed []backend.ObjectInfo, dryRun bool) error {
	if dryRun || len(doomed) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.workers)
	for _, oi := range doomed {
		g.Go(func() error {
			if err := keeper.check(); err != nil {
				return err
			}
			if err := r.backend.Delete(gctx, oi.Key); err != nil {
				return fmt.Errorf("gc: delete %s: %w", oi.Key, err)
			}
			return nil
		})
	}
	err := g.Wait()
	keys := make([]string, len(doomed))
	for i, oi := range doomed {
		keys[i] = oi.Key
	}
	r.index.forgetKnown(r.format.ID, keys)
	return err
}

// pruneGCRuns removes run markers older than a long horizon; a push running
// longer than that is not protected by them (it would hold no lock anyway,
// and would re-check at publish only if a newer marker exists).
func (r *Registry) pruneGCRuns(ctx context.Context, now time.Time) error {
	const horizon = 30 * 24 * time.Hour
	var old []string
	err := r.backend.List(ctx, gcRunsPrefix, func(oi backend.ObjectInfo) error {
		if now.Sub(oi.ModTime) > horizon {
			old = append(old, oi.Key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range old {
		if err := r.backend.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// lockKeeper refreshes a long-held gc lock in the background and tells
// the gc to stop when the lock could have been judged stale by others.
type lockKeeper struct {
	mu        sync.Mutex
	lock      *heldLock
	every     time.Duration
	refreshed time.Time // local monotonic time of the last good refresh
	stop      chan struct{}
	done      chan struct{}
}

func startLockKeeper(ctx context.Context, lock *heldLock, staleAfter time.Duration) *lockKeeper {
	k := &lockKeeper{lock: lock, every: staleAfter / 4, refreshed: lock.acquired, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		t := time.NewTicker(k.every)
		defer t.Stop()
		for {
			select {
			case <-k.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				k.mu.Lock()
				if err := k.lock.refresh(ctx); err == nil {
					k.refreshed = time.Now()
				}
				k.mu.Unlock()
			}
		}
	}()
	return k
}

// check fails once the lock went two refresh periods (half the stale
// time) without a good refresh: others may soon take it, so stop deleting.
func (k *lockKeeper) check() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if age := time.Since(k.refreshed); age > 2*k.every {
		return fmt.Errorf("gc: lost the registry lock (not refreshed for %s); run gc again", age.Round(time.Second))
	}
	return nil
}

// finish stops the refresher and releases the lock.
func (k *lockKeeper) finish(ctx context.Context) {
	close(k.stop)
	<-k.done
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lock.releaseOrWarn(ctx)
}
