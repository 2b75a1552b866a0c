// Package watch owns `ckpt watch`: following a Trainer output folder on a
// training node and pushing each checkpoint-N folder to the registry once it
// is complete, applying retention after each push and, if asked, deleting
// local checkpoint folders that are safely in the registry. Its progress is
// kept in the per-machine index, so a restarted watch resumes where it
// stopped.
//
// # When a checkpoint is pushed
//
// A folder OUTPUT_DIR/checkpoint-N (N in decimal without leading zeros) is
// pushed as NAME@N when both hold:
//   - it is complete: layout.CheckComplete passes (trainer_state.json, which
//     Trainer writes last, is present and parses, and every shard a weights
//     index names exists);
//   - it is settled: the watcher has seen the same listing of the folder
//     (every file and sub-folder with its size and modification time) for
//     the settle period. Only the watcher's own observations count, never
//     the files' modification times, so a folder copied in with old times
//     (rsync -t, cp -p) still waits until the copy stops.
//
// Each pass walks the checkpoint folders in ascending step order and pushes
// those that are ready. A complete folder that has not settled yet stops the
// pass: no higher step is pushed before it. An incomplete folder does not
// (a crashed save would otherwise stall the watch forever); it is reported
// once it has settled while incomplete, and pushed whenever it completes.
// So pushes are in step order, except that a folder completing after a
// higher step was pushed is pushed late; registry versions order by step, so
// latest is unaffected.
//
// Each checkpoint is pushed once. What was pushed is recorded in the state
// bucket StateBucket(registry id, absolute OUTPUT_DIR, NAME), one Entry per
// step: the version, the manifest, and a digest of the folder's listing
// (every entry with its size and modification time, and for files their
// change time and inode) when its content was found to be that manifest. A
// folder whose listing still matches is that checkpoint and is not looked at
// again. The state is a hint, never a verdict: a folder whose listing
// changed, or that comes back after it was deleted (training re-run into the
// same output folder), waits to be complete and settled like a new one, and
// then its manifest is computed (Registry.FolderHolds: files the stat
// cache knows are not read again, others are hashed):
//
//   - the same manifest as pushed: it is that checkpoint again (nothing is
//     pushed; it may be deleted as below);
//   - another: a conflict (EventConflict, a *ConflictError naming the folder,
//     NAME@N and both manifests). It is not pushed: NAME@N keeps the
//     content the registry has (the registry refuses to replace a version,
//     and pushing a re-run's checkpoints under the versions of the first run
//     would mix two runs under one NAME, their best and latest included).
//     It is never deleted. It is reported once per listing (again by a
//     restarted watch, and RunOnce returns an error matching
//     store.ErrVersionExists) and looked at again only when it changes. To
//     record a re-run, watch it under another NAME: the state is per NAME,
//     so that watch pushes every checkpoint.
//
// A folder this watch has no record of, whose version the registry already
// records with other content (pushed from another machine, or this
// machine's state was lost), is a conflict too: reported once per listing,
// never deleted, and tried again after a back-off (the version may be
// removed meanwhile).
//
// A checkpoint whose push fails (a truncated safetensors file, a registry
// error) is reported and skipped; later steps still go. It is retried when
// its listing changes, or after a back-off that starts at the polling
// interval and doubles up to an hour.
//
// # Deleting local folders
//
// With DeleteLocal, a local folder is deleted only when it is the
// checkpoint this watch pushed (its listing unchanged since), it is neither
// the newest local folder, nor the newest pushed one, nor the registry's
// best checkpoint of NAME (by eval_loss, or by the retention policy's metric
// and direction when one is given), and its content is exactly what the
// registry records for it, checked right before the deletion:
//
//   - the registry's record of NAME@N names the manifest this watch pushed,
//     and Registry.Verify (without reading data) finds the manifest and
//     every blob; a record naming another manifest keeps the folder and is
//     reported. If NAME@N is no longer recorded (retention or rm removed it
//     after the push), the folder goes if its push was verified: that is
//     what the policy asked for;
//   - the folder's listing is the recorded one and its manifest, computed
//     now (the stat cache saves reading files it knows; others are hashed),
//     is the pushed manifest: the same files, sizes and bytes. A folder
//     that fails this is kept and looked at again as a changed folder.
//
// Deleting renames the folder to a hidden .ckpt-deleting-* name in
// OUTPUT_DIR first, takes its listing again (something that wrote into it
// between the check and the rename makes it renamed back and kept), then
// removes it, so a crash never leaves a half-deleted folder that looks like
// a checkpoint; leftovers are removed when the next watch starts. A writer
// that keeps a file open in the folder and writes after that second listing
// is not detected: deleting is for folders Trainer has finished with, and
// the newest folder is never deleted.
//
// # Waking up
//
// fsnotify watches OUTPUT_DIR and every checkpoint folder not yet pushed; an
// event triggers a pass shortly after. A pass also runs every Interval
// (network file systems deliver no events) and when a complete folder's
// settle period ends. When the context is cancelled, a push in flight (and
// its state record, verification and retention) completes with a context
// that is not cancelled, then Run returns nil.
package watch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// Defaults of Options.
const (
	DefaultInterval = 10 * time.Second
	DefaultSettle   = 2 * time.Second
	// maxBackoff caps the delay before a failed checkpoint is tried again.
	maxBackoff = time.Hour
	// deletingPrefix names folders being deleted by DeleteLocal.
	deletingPrefix = ".ckpt-deleting-"
)

// Registry is what the watcher uses of *store.Registry (tests wrap it).
type Registry interface {
	ID() string
	Push(ctx context.Context, dir string, opts store.PushOptions) (*store.PushResult, error)
	Catalog(ctx context.Context, name string) (*refs.Catalog, error)
	RetentionPlan(ctx context.Context, name string, p retention.Policy) (retention.Plan, error)
	ApplyPlan(ctx context.Context, name string, plan retention.Plan) ([]string, error)
	Verify(ctx context.Context, recs []refs.Record, readData bool) (*store.VerifyReport, error)
	Resolve(ctx context.Context, name, ref string) (refs.Record, error)
	FolderHolds(ctx context.Context, dir string, recorded object.ID) (bool, object.ID, error)
}

// *store.Registry and *store.Index are what the CLI passes.
var (
	_ Registry = (*store.Registry)(nil)
	_ State    = (*store.Index)(nil)
)

// Options configure a Watcher.
type Options struct {
	Dir  string // OUTPUT_DIR, the folder Trainer writes checkpoint-N folders into
	Name string // NAME the checkpoints are pushed as (NAME@N)
	Base string // NAME@REF passed to every push, "" for none
	// Retention, if not nil, is applied to NAME after every push (refs only:
	// gc frees data).
	Retention *retention.Policy
	// DeleteLocal deletes local folders already pushed and verified (see the
	// package documentation for which ones are kept).
	DeleteLocal bool
	// Interval is the polling period, used even when fsnotify works
	// (default DefaultInterval).
	Interval time.Duration
	// Settle is how long a folder's listing must stay unchanged before it is
	// pushed (default DefaultSettle).
	Settle time.Duration
	// NoNotify disables fsnotify: polling only.
	NoNotify bool
	// State keeps the progress; nil keeps it in memory only.
	State State
	// OnEvent receives every event, one log line each; nil drops them.
	OnEvent func(Event)
	// Now is the clock used to judge settling and to stamp state entries
	// (default time.Now). Waiting always uses real timers.
	Now func() time.Time
}

// Watcher pushes the checkpoints of one output folder. Its methods must not
// be called concurrently.
type Watcher struct {
	reg     Registry
	opts    Options
	dir     string // absolute OUTPUT_DIR
	bucket  string
	state   State
	entries map[int64]Entry   // recorded pushes, by step
	folders map[int64]*folder // what the watcher knows of folders not yet pushed

	notify  *fsnotify.Watcher // nil: polling only
	watched map[string]bool   // folders notify watches

	localDirty bool // DeleteLocal should look again even without a new push
	warnedDir  string
	errCount   int
	firstErr   error
	passes     atomic.Int64 // completed passes (tests wait on it)
}

// folder is what the watcher observed of one checkpoint folder not yet pushed.
type folder struct {
	snap     string    // its listing, as last seen
	since    time.Time // when that listing was first seen
	reported string    // the last incomplete/error line reported, kept across changes so it is not repeated
	failed   bool      // the last attempt failed; retry at retryAt or on change
	conflict bool      // its content conflicts with its recorded push; look again on change
	retryAt  time.Time
	backoff  time.Duration
}

// New makes a watcher; nothing happens until Run or RunOnce.
func New(reg Registry, opts Options) (*Watcher, error) {
	if err := refs.CheckName(opts.Name); err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		return nil, errors.New("watch: no output folder")
	}
	abs, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", opts.Dir, err)
	}
	if opts.Retention != nil {
		if err := opts.Retention.Validate(); err != nil {
			return nil, err
		}
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Settle <= 0 {
		opts.Settle = DefaultSettle
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &Watcher{
		reg: reg, opts: opts, dir: abs,
		bucket:  StateBucket(reg.ID(), abs, opts.Name),
		state:   opts.State,
		folders: map[int64]*folder{},
		watched: map[string]bool{},
	}
	if ix, ok := w.state.(*store.Index); w.state == nil || ok && ix == nil {
		w.state = newMemState()
	}
	entries, problems := loadEntries(w.state, w.bucket)
	w.entries = entries
	for _, p := range problems {
		w.emit(Event{Kind: EventWarning, Name: opts.Name, Err: p})
	}
	w.localDirty = true
	return w, nil
}

// Entries returns a copy of the recorded pushes, by step. Call it only while
// Run and RunOnce are not running.
func (w *Watcher) Entries() map[int64]Entry { return maps.Clone(w.entries) }

// Run watches until ctx is cancelled, then returns nil once the push in
// flight, if any, has completed. Failures are reported as events, never
// returned: the watch goes on.
func (w *Watcher) Run(ctx context.Context) error {
	w.start()
	if !w.opts.NoNotify {
		w.openNotify()
	}
	defer w.closeNotify()
	ticker := time.NewTicker(w.opts.Interval)
	defer ticker.Stop()
	var events <-chan fsnotify.Event
	var notifyErrs <-chan error
	if w.notify != nil {
		events, notifyErrs = w.notify.Events, w.notify.Errors
	}
	debounceDelay := min(w.opts.Settle/4, 250*time.Millisecond)
	var debounce <-chan time.Time
	for {
		res := w.pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if res.listErr == nil {
			w.warnedDir = ""
		} else if msg := res.listErr.Error(); w.warnedDir != msg {
			// Trainer may not have created OUTPUT_DIR yet.
			w.warnedDir = msg
			w.emit(Event{Kind: EventWarning, Name: w.opts.Name, Err: fmt.Errorf("%w (waiting for it)", res.listErr)})
		}
		w.syncWatches(res.steps, res.current)
		var wake <-chan time.Time
		if !res.wakeAt.IsZero() {
			wake = time.After(max(res.wakeAt.Sub(w.opts.Now()), time.Millisecond))
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
				break wait
			case <-wake:
				break wait
			case <-debounce:
				debounce = nil
				break wait
			case ev, ok := <-events:
				if !ok {
					events = nil
					continue
				}
				if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
					// The watch of a removed folder is gone with it.
					delete(w.watched, filepath.Clean(ev.Name))
				}
				if debounce == nil {
					debounce = time.After(debounceDelay)
				}
			case err, ok := <-notifyErrs:
				if !ok {
					notifyErrs = nil
					continue
				}
				if !errors.Is(err, fsnotify.ErrEventOverflow) {
					w.emit(Event{Kind: EventWarning, Name: w.opts.Name, Err: fmt.Errorf("watch %s: fsnotify: %w (polling every %s goes on)", w.dir, err, w.opts.Interval)})
				}
				// Events may have been lost: look now.
				if debounce == nil {
					debounce = time.After(debounceDelay)
				}
			}
		}
	}
}

// RunOnce pushes what is complete and returns: it passes over the folders
// until no complete checkpoint is still settling (waiting for the settle
// period as needed), reports incomplete ones, and returns an error if
// OUTPUT_DIR cannot be read or anything failed. A cancelled ctx makes it
// return nil after the push in flight.
func (w *Watcher) RunOnce(ctx context.Context) error {
	w.start()
	w.errCount, w.firstErr = 0, nil
	for {
		res := w.pass(ctx)
		if res.listErr != nil {
			return res.listErr
		}
		if ctx.Err() != nil {
			return nil
		}
		if !res.settling {
			break
		}
		t := time.NewTimer(max(res.wakeAt.Sub(w.opts.Now()), time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	// Folders still being written are reported too: the run ends here.
	steps := slices.Sorted(maps.Keys(w.folders))
	for _, step := range steps {
		var me *layout.MissingError
		if err := layout.CheckCompleteDir(w.stepDir(step)); errors.As(err, &me) {
			w.reportOnce(w.folders[step], Event{Kind: EventIncomplete, Name: w.opts.Name, Step: step, Dir: w.stepDir(step), Err: err})
		}
	}
	if w.errCount > 0 {
		return fmt.Errorf("watch %s: %d error(s), first: %w", w.dir, w.errCount, w.firstErr)
	}
	return nil
}

// start removes what a deletion interrupted by a crash left behind.
func (w *Watcher) start() {
	ents, err := os.ReadDir(w.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), deletingPrefix) {
			p := filepath.Join(w.dir, e.Name())
			if err := os.RemoveAll(p); err != nil {
				w.emit(Event{Kind: EventError, Name: w.opts.Name, Err: fmt.Errorf("remove leftover %s: %w", p, err)})
			}
		}
	}
}

// emit hands an event to OnEvent and counts errors for RunOnce.
func (w *Watcher) emit(ev Event) {
	if ev.Kind == EventError || ev.Kind == EventConflict {
		w.errCount++
		if w.firstErr == nil {
			w.firstErr = ev.Err
		}
	}
	if w.opts.OnEvent != nil {
		w.opts.OnEvent(ev)
	}
}

// reportOnce emits ev unless the same line was already reported for the
// folder's current listing.
func (w *Watcher) reportOnce(f *folder, ev Event) {
	line := ev.String()
	if f.reported == line {
		return
	}
	f.reported = line
	w.emit(ev)
}

// stepDir is the folder of a step.
func (w *Watcher) stepDir(step int64) string {
	return filepath.Join(w.dir, "checkpoint-"+strconv.FormatInt(step, 10))
}

// saveEntry records a push in memory and in the state store.
func (w *Watcher) saveEntry(step int64, e Entry) {
	w.entries[step] = e
	data, err := jsonMarshal(e)
	if err == nil {
		err = w.state.PutState(w.bucket, StepKey(step), data)
	}
	if err != nil {
		w.emit(Event{Kind: EventError, Name: w.opts.Name, Step: step, Dir: w.stepDir(step),
			Err: fmt.Errorf("%s: record push of %s@%d in the watch state: %w", w.stepDir(step), w.opts.Name, step, err)})
	}
}
