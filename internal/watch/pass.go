package watch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/refs"
)

var checkpointName = regexp.MustCompile(`^checkpoint-(0|[1-9][0-9]*)$`)

// passResult is what one pass found.
type passResult struct {
	steps    []int64        // checkpoint folders present, ascending
	current  map[int64]bool // steps whose folder is the checkpoint this watch pushed (unchanged since)
	listErr  error          // OUTPUT_DIR could not be read
	settling bool           // a complete folder waits for its settle period
	wakeAt   time.Time      // when a pass should look again (settling or retry), zero for none
	pushed   int
}

func (r *passResult) wake(t time.Time) {
	if r.wakeAt.IsZero() || t.Before(r.wakeAt) {
		r.wakeAt = t
	}
}

// pass looks at every checkpoint folder not yet pushed, in step order, and
// pushes those that are complete and settled (see the package
// documentation). It starts no push once ctx is cancelled.
func (w *Watcher) pass(ctx context.Context) (res passResult) {
	defer w.passes.Add(1)
	defer w.releaseState()
	res.steps, res.listErr = w.list()
	if res.listErr != nil {
		return res
	}
	res.current = map[int64]bool{}
	for step := range w.folders {
		if _, ok := slices.BinarySearch(res.steps, step); !ok {
			delete(w.folders, step)
		}
	}
	blocked := false // a complete folder is settling: later ones are only observed
	for _, step := range res.steps {
		e, recorded := w.entries[step]
		if recorded && w.isCurrent(step, e) {
			delete(w.folders, step)
			res.current[step] = true
			continue
		}
		if ctx.Err() != nil {
			break
		}
		dir := w.stepDir(step)
		f, stable, err := w.observe(step, dir)
		if blocked {
			continue
		}
		now := w.opts.Now()
		if err != nil {
			if stable {
				w.reportOnce(f, Event{Kind: EventError, Name: w.opts.Name, Step: step, Dir: dir, Err: fmt.Errorf("%s: %w", textsafe.Name(dir), err)})
			}
			continue
		}
		if f.conflict {
			continue // until its listing changes
		}
		if f.failed && now.Before(f.retryAt) {
			res.wake(f.retryAt)
			continue
		}
		cerr := layout.CheckCompleteDir(dir)
		var missing *layout.MissingError
		incomplete := errors.As(cerr, &missing)
		if !stable {
			if incomplete {
				continue
			}
			// Complete (or trainer_state.json being written): later steps wait.
			res.settling, blocked = true, true
			res.wake(f.since.Add(w.opts.Settle))
			continue
		}
		if incomplete {
			w.reportOnce(f, Event{Kind: EventIncomplete, Name: w.opts.Name, Step: step, Dir: dir, Err: cerr})
			continue
		}
		if cerr != nil {
			w.fail(f, step, dir, cerr, now)
			res.wake(f.retryAt)
			continue
		}
		if recorded {
			// Pushed before, then changed or re-created (training re-run
			// into the same folder): the same content again, or a conflict.
			if w.recheck(ctx, step, dir, f, e) {
				res.current[step] = true
			} else if f.failed {
				res.wake(f.retryAt)
			}
			continue
		}
		if w.push(ctx, step, dir, f) {
			res.pushed++
			res.current[step] = true
		} else if f.failed {
			res.wake(f.retryAt)
		}
	}
	if w.opts.DeleteLocal && ctx.Err() == nil && (res.pushed > 0 || w.localDirty) {
		w.deleteLocal(ctx, res.steps, res.current)
	}
	return res
}

// observe takes the folder's listing and reports whether it has stayed the
// same for the settle period; err is why the folder could not be listed.
func (w *Watcher) observe(step int64, dir string) (f *folder, stable bool, err error) {
	f = w.folders[step]
	if f == nil {
		f = &folder{}
		w.folders[step] = f
	}
	snap, err := snapshot(dir)
	if err != nil {
		snap = "\x00" + err.Error()
	}
	now := w.opts.Now()
	if snap != f.snap {
		// Changed: settle again, and retry at once if it had failed.
		*f = folder{snap: snap, since: now, reported: f.reported}
	}
	return f, now.Sub(f.since) >= w.opts.Settle, err
}

// list returns the steps of OUTPUT_DIR's checkpoint folders, ascending.
func (w *Watcher) list() ([]int64, error) {
	ents, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", w.dir, err)
	}
	var steps []int64
	for _, e := range ents {
		m := checkpointName.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		step, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			continue
		}
		steps = append(steps, step)
	}
	slices.Sort(steps)
	return steps, nil
}

// snapshot describes a folder's content without reading it: every entry
// with its type, size and modification time, and for regular files their
// change time and inode (identity). Directories' change times are left out:
// renaming the folder (to delete it) changes its own.
func snapshot(dir string) (string, error) {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%q\x00%v\x00%d\x00%d", rel, info.Mode(), info.Size(), info.ModTime().UnixNano())
		if info.Mode().IsRegular() {
			ctime, ino := identity(info)
			fmt.Fprintf(&b, "\x00%d\x00%d", ctime, ino)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		return "", err
	}
	return b.String(), nil
}

// listingDigest condenses a snapshot for the state entry.
func listingDigest(snap string) string {
	sum := sha256.Sum256([]byte(snap))
	return hex.EncodeToString(sum[:])
}

// isCurrent reports whether the folder of a recorded step is, by its
// listing, still the one whose content was found to be e.Manifest.
func (w *Watcher) isCurrent(step int64, e Entry) bool {
	if e.Deleted || e.Listing == "" {
		return false
	}
	snap, err := snapshot(w.stepDir(step))
	return err == nil && listingDigest(snap) == e.Listing
}

// push records one checkpoint and what follows a push: the state entry,
// verification (DeleteLocal) and retention. It reports whether the push
// succeeded. Once started it is not interrupted by ctx.
func (w *Watcher) push(ctx context.Context, step int64, dir string, f *folder) bool {
	pctx := context.WithoutCancel(ctx)
	version := strconv.FormatInt(step, 10)
	res, err := w.reg.Push(pctx, dir, store.PushOptions{Name: w.opts.Name, Version: version, Base: w.opts.Base})
	if err != nil {
		if errors.Is(err, store.ErrVersionExists) {
			// Pushed from elsewhere, or this machine's watch state was
			// lost: the registry keeps what it has. Tried again after a
			// back-off, in case the version is removed.
			if rec, rerr := w.reg.Resolve(pctx, w.opts.Name, version); rerr == nil && rec.Version == version {
				w.conflict(f, step, &ConflictError{Dir: dir, Name: w.opts.Name, Version: version, Recorded: rec.Manifest})
				w.backoff(f, w.opts.Now())
				return false
			}
		}
		w.fail(f, step, dir, err, w.opts.Now())
		return false
	}
	e := Entry{Version: version, Manifest: res.Record.Manifest, Base: res.Record.Base, Pushed: w.opts.Now().UTC(), Listing: listingDigest(f.snap)}
	if w.opts.DeleteLocal {
		e.Verified = w.verify(pctx, step, e)
	}
	w.saveEntry(step, e)
	delete(w.folders, step)
	w.emit(Event{Kind: EventPushed, Name: w.opts.Name, Step: step, Dir: dir, Result: res})
	if w.opts.Retention != nil {
		w.applyRetention(pctx)
	}
	return true
}

// fail reports a checkpoint that could not be pushed and schedules a retry.
func (w *Watcher) fail(f *folder, step int64, dir string, err error, now time.Time) {
	if !strings.Contains(err.Error(), dir) {
		err = fmt.Errorf("%s: %w", textsafe.Name(dir), err)
	}
	w.backoff(f, now)
	w.emit(Event{Kind: EventError, Name: w.opts.Name, Step: step, Dir: dir, Err: err})
}

// backoff schedules the next attempt at a folder that failed.
func (w *Watcher) backoff(f *folder, now time.Time) {
	f.failed = true
	f.backoff = min(max(2*f.backoff, w.opts.Interval), maxBackoff)
	f.retryAt = now.Add(f.backoff)
}

// conflict reports a folder whose content differs from what NAME@VERSION
// records, once per listing of the folder.
func (w *Watcher) conflict(f *folder, step int64, c *ConflictError) {
	w.reportOnce(f, Event{Kind: EventConflict, Name: w.opts.Name, Step: step, Dir: c.Dir, Err: c})
}

// recheck looks again at a folder this watch pushed before whose listing
// changed, or that was deleted and is there again. Its manifest is computed
// (the stat cache saves reading files it knows; others are hashed): the same
// as the one pushed, and the folder is that checkpoint again (its entry is
// current, and --delete-local may delete it); different, and it is a
// conflict: never pushed under the same version (that would mix two runs
// under one NAME, and the registry refuses to replace a version anyway),
// never deleted, reported, and looked at again only when it changes.
// It reports whether the folder is the pushed checkpoint again.
func (w *Watcher) recheck(ctx context.Context, step int64, dir string, f *folder, e Entry) bool {
	pctx := context.WithoutCancel(ctx)
	same, id, err := w.reg.FolderHolds(pctx, dir, e.Manifest)
	if err != nil {
		w.fail(f, step, dir, err, w.opts.Now())
		return false
	}
	if same {
		e.Deleted = false
		e.Listing = listingDigest(f.snap)
		w.saveEntry(step, e)
		delete(w.folders, step)
		w.localDirty = true
		return true
	}
	f.conflict = true
	w.conflict(f, step, &ConflictError{Dir: dir, Name: w.opts.Name, Version: e.Version, Recorded: e.Manifest, Local: id, Rewritten: true})
	return false
}

// verify checks that the registry holds every object of the pushed record.
func (w *Watcher) verify(ctx context.Context, step int64, e Entry) bool {
	if _, err := w.reg.Verify(ctx, []refs.Record{e.record(w.opts.Name)}, false); err != nil {
		dir := w.stepDir(step)
		w.emit(Event{Kind: EventError, Name: w.opts.Name, Step: step, Dir: dir,
			Err: fmt.Errorf("%s: verify %s@%s: %w (the local folder is kept)", dir, w.opts.Name, e.Version, err)})
		return false
	}
	return true
}

// applyRetention applies the retention policy to NAME, refusing a plan
// that keeps nothing.
func (w *Watcher) applyRetention(ctx context.Context) {
	name := w.opts.Name
	plan, err := w.reg.RetentionPlan(ctx, name, *w.opts.Retention)
	if err != nil {
		w.emit(Event{Kind: EventError, Name: name, Err: fmt.Errorf("retention %s: %w", name, err)})
		return
	}
	if len(plan.Kept()) == 0 {
		w.emit(Event{Kind: EventError, Name: name, Err: fmt.Errorf("retention %s: the plan (%s) keeps no checkpoint; not applied", name, plan.Policy)})
		return
	}
	removed, err := w.reg.ApplyPlan(ctx, name, plan)
	if len(removed) > 0 {
		w.emit(Event{Kind: EventRetention, Name: name, Removed: removed})
	}
	if err != nil {
		w.emit(Event{Kind: EventError, Name: name, Err: fmt.Errorf("retention %s: %w", name, err)})
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// releaseState lets other ckpt processes on this machine use the
// per-machine index between passes (bbolt admits one process at a time).
func (w *Watcher) releaseState() {
	if r, ok := w.opts.State.(interface{ Release() error }); ok {
		_ = r.Release()
	}
}
