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

	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
)

// deleteLocal removes the local folders that are pushed and verified, except
// the newest folder, the newest pushed folder and the registry's best
// checkpoint of NAME. steps are the folders present, ascending.
func (w *Watcher) deleteLocal(ctx context.Context, steps []int64) {
	w.localDirty = false
	if len(steps) == 0 {
		return
	}
	newest, newestPushed := steps[len(steps)-1], int64(-1)
	for i := len(steps) - 1; i >= 0; i-- {
		if _, ok := w.entries[steps[i]]; ok {
			newestPushed = steps[i]
			break
		}
	}
	var candidates []int64
	for _, step := range steps {
		if e, ok := w.entries[step]; ok && !e.Deleted && step != newest && step != newestPushed {
			candidates = append(candidates, step)
		}
	}
	if len(candidates) == 0 {
		return
	}
	best, hasBest, err := w.bestVersion(ctx)
	if err != nil {
		w.localDirty = true
		w.emit(Event{Kind: EventError, Name: w.opts.Name, Err: fmt.Errorf("delete local checkpoints of %s: %w (nothing deleted)", w.dir, err)})
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
		if !e.Verified {
			if !w.verify(ctx, step, e) {
				continue
			}
			e.Verified = true
			w.saveEntry(step, e)
		}
		dir := w.stepDir(step)
		if err := removeFolder(dir); err != nil {
			w.emit(Event{Kind: EventError, Name: w.opts.Name, Step: step, Dir: dir, Err: err})
			continue
		}
		e.Deleted = true
		w.saveEntry(step, e)
		w.emit(Event{Kind: EventDeleted, Name: w.opts.Name, Step: step, Dir: dir})
	}
}

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
	best, ok := retention.Best(store.Checkpoints(c.Records[w.opts.Name], nil), metric, greater)
	return best.Version, ok, nil
}

// removeFolder deletes dir so that no half-deleted folder is ever left
// under its name: it is renamed to a hidden name beside it first.
func removeFolder(dir string) error {
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	hidden := filepath.Join(filepath.Dir(dir), deletingPrefix+filepath.Base(dir)+"-"+hex.EncodeToString(suffix[:]))
	if err := os.Rename(dir, hidden); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", dir, err)
	}
	if err := os.RemoveAll(hidden); err != nil {
		return fmt.Errorf("delete %s (renamed to %s): %w", dir, hidden, err)
	}
	return nil
}
