package watch

import (
	"fmt"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// openNotify starts fsnotify; without it the watcher polls.
func (w *Watcher) openNotify() {
	nw, err := fsnotify.NewWatcher()
	if err != nil {
		w.emit(Event{Kind: EventWarning, Name: w.opts.Name, Err: fmt.Errorf("watch %s: fsnotify unavailable: %w; polling every %s", w.dir, err, w.opts.Interval)})
		return
	}
	w.notify = nw
	w.watched = map[string]bool{}
}

// closeNotify stops fsnotify and its goroutine.
func (w *Watcher) closeNotify() {
	if w.notify != nil {
		_ = w.notify.Close() // stopping: the watcher's own close errors change nothing
		w.notify = nil
	}
}

// syncWatches watches OUTPUT_DIR and every checkpoint folder that is not
// the checkpoint this watch pushed (not pushed yet, or changed since), and
// stops watching the others. A folder that cannot be watched (it vanished,
// or the system's watch limit is reached) is left to polling and tried
// again after the next pass.
func (w *Watcher) syncWatches(steps []int64, current map[int64]bool) {
	if w.notify == nil {
		return
	}
	want := map[string]bool{w.dir: true}
	for _, step := range steps {
		if !current[step] {
			want[w.stepDir(step)] = true
		}
	}
	for p := range w.watched {
		if !want[p] {
			_ = w.notify.Remove(p)
			delete(w.watched, p)
		}
	}
	for p := range want {
		if w.watched[p] {
			continue
		}
		if err := w.notify.Add(p); err == nil {
			w.watched[filepath.Clean(p)] = true
		}
	}
}
