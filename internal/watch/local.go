package watch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store/refs"
)

// deleteLocal removes the local folders that are the checkpoints this watch
// pushed, unchanged since, except the newest folder, the newest pushed
// folder and the registry's best checkpoint of NAME; each only once
// deleteChecked has found its content to be what the registry records.
// steps are the folders present, ascending; current says which of them are
// the checkpoints this watch pushed (by their listings).
func (w *Watcher) deleteLocal(ctx context.Context, steps []int64, current map[int64]bool) {
	w.localDirty = false
	if len(steps) == 0 {
		return
	}
	newest, newestPushed := steps[len(steps)-1], int64(-1)
	for i := len(steps) - 1; i >= 0; i-- {
		if current[steps[i]] {
			newestPushed = steps[i]
			break
		}
	}
	var candidates []int64
	for _, step := range steps {
		if current[step] && step != newest && step != newestPushed {
			candidates = append(candidates, step)
		}
	}
	if len(candidates) == 0 {
		return
	}
	best, hasBest, err := w.bestVersion(ctx)
	if err != nil {
		w.localDirty = true
		w.emit(Event{Kind: EventError, Name: w.opts.Name, Err: fmt.Errorf("delete local checkpoints of %s: %w (nothing deleted)", textsafe.Name(w.dir), err)})
		return
	}
	for _, step := range candidates {
		if ctx.Err() != nil {
			return
		}
		e := w.entries[step]
		if hasBest && e.Version == best {
			continue
		}
		w.deleteChecked(ctx, step, e)
	}
}

// deleteChecked deletes the folder of a recorded step if, and only if, its
// content is exactly what the registry records for NAME@VERSION:
//
//   - the registry's record of NAME@VERSION names the manifest this watch
//     pushed, and every object of it exists (Verify, asked now); or the
//     version is no longer recorded (retention or rm removed it since) and
//     the push was verified;
//   - the folder's listing is the one recorded when its content was last
//     found to be that manifest, and its manifest computed now (the stat
//     cache saves reading files it knows, the others are hashed) is that
//     manifest: same files, sizes and bytes;
//   - nothing changed in the folder between that check and its rename to a
//     hidden name (its listing is taken again after the rename; if it
//     changed, the folder is renamed back and kept).
func (w *Watcher) deleteChecked(ctx context.Context, step int64, e Entry) {
	name, dir := w.opts.Name, w.stepDir(step)
	keep := func(format string, args ...any) {
		w.emit(Event{Kind: EventError, Name: name, Step: step, Dir: dir,
			Err: fmt.Errorf("%s: "+format+" (the local folder is kept)", append([]any{textsafe.Name(dir)}, args...)...)})
	}
	rec, err := w.reg.Resolve(ctx, name, e.Version)
	switch {
	case err == nil && rec.Version == e.Version:
		if rec.Manifest != e.Manifest {
			keep("%s@%s now records manifest %s, not the %s this folder was pushed as", name, e.Version, rec.Manifest.String()[:12], e.Manifest.String()[:12])
			return
		}
		if _, err := w.reg.Verify(ctx, []refs.Record{rec}, false); err != nil {
			keep("verify %s@%s: %w", name, e.Version, err)
			return
		}
	case err == nil || errors.Is(err, refs.ErrNoCheckpoint):
		// Removed from the registry since the push, by retention or rm:
		// deleting the local copy is what the policy asks for.
		if !e.Verified {
			if !w.verify(ctx, step, e) {
				return
			}
			e.Verified = true
			w.saveEntry(step, e)
		}
	default:
		w.localDirty = true
		keep("read %s@%s: %w", name, e.Version, err)
		return
	}

	before, err := snapshot(dir)
	if err != nil || listingDigest(before) != e.Listing {
		return // changed since the pass looked: the next pass looks again
	}
	same, id, err := w.reg.FolderHolds(ctx, dir, e.Manifest)
	if err != nil {
		keep("%w", err)
		return
	}
	if !same {
		// Rewritten without its listing showing it: look at it again.
		e.Listing = ""
		w.saveEntry(step, e)
		keep("its content (manifest %s) is not what %s@%s records (%s)", id.String()[:12], name, e.Version, e.Manifest.String()[:12])
		return
	}
	if testHookBeforeRemove != nil {
		testHookBeforeRemove(dir)
	}
	if err := removeFolder(dir, before); err != nil {
		if errors.Is(err, errChangedWhileDeleting) {
			e.Listing = ""
			w.saveEntry(step, e)
		}
		w.emit(Event{Kind: EventError, Name: name, Step: step, Dir: dir, Err: err})
		return
	}
	e.Deleted = true
	w.saveEntry(step, e)
	w.emit(Event{Kind: EventDeleted, Name: name, Step: step, Dir: dir})
}

// testHookBeforeRemove, when set by a test, runs between the content check
// of a folder and its removal.
var testHookBeforeRemove func(dir string)

// bestVersion returns the version of NAME's best record in the registry:
// by the retention policy's metric and direction if there is a policy,
// else by eval_loss (lower is better).
func (w *Watcher) bestVersion(ctx context.Context) (string, bool, error) {
	c, err := w.reg.Catalog(ctx, w.opts.Name)
	if err != nil {
		return "", false, err
	}
	metric, greater := retention.DefaultMetric, false
	if p := w.opts.Retention; p != nil {
		metric = retention.NormalizeMetric(p.Metric)
		greater = retention.GreaterIsBetter(metric)
		if p.GreaterIsBetter != nil {
			greater = *p.GreaterIsBetter
		}
	}
	best, ok := retention.Best(refs.Checkpoints(c.Records[w.opts.Name], nil), metric, greater)
	return best.Version, ok, nil
}

// errChangedWhileDeleting: the folder changed between its check and its
// rename; it was renamed back (or kept under another name) and not deleted.
var errChangedWhileDeleting = errors.New("changed while it was being deleted")

// removeFolder deletes dir so that no half-deleted folder is ever left
// under its name: it is renamed to a hidden name beside it first. snap is
// the listing the caller checked; if the renamed folder's listing differs,
// something wrote into it meanwhile: it is renamed back and kept (under
// another visible name if dir was re-created meanwhile).
func removeFolder(dir, snap string) error {
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	hidden := filepath.Join(filepath.Dir(dir), deletingPrefix+filepath.Base(dir)+"-"+hex.EncodeToString(suffix[:]))
	if err := os.Rename(dir, hidden); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", textsafe.Name(dir), err)
	}
	if after, err := snapshot(hidden); err != nil || after != snap {
		// Put it back where it was, or, if its name was taken meanwhile,
		// beside it under a visible name (never under the hidden one,
		// which a starting watch removes).
		kept := dir + ".kept-" + hex.EncodeToString(suffix[:])
		back := dir
		if _, err := os.Lstat(dir); err == nil {
			back = kept
		}
		rerr := os.Rename(hidden, back)
		if rerr != nil && back != kept {
			back, rerr = kept, os.Rename(hidden, kept)
		}
		if rerr != nil {
			return fmt.Errorf("delete %s: %w, and it could not be renamed back from %s (move it away before a watch starts again, which would remove it): %v",
				textsafe.Name(dir), errChangedWhileDeleting, textsafe.Name(hidden), rerr)
		}
		return fmt.Errorf("delete %s: %w; kept as %s", textsafe.Name(dir), errChangedWhileDeleting, textsafe.Name(back))
	}
	if err := os.RemoveAll(hidden); err != nil {
		return fmt.Errorf("delete %s (renamed to %s): %w", textsafe.Name(dir), textsafe.Name(hidden), err)
	}
	return nil
}
