package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/ckptdev/ckpt/store/backend"
)

// Locks coordinate garbage collection with pushes (see docs/format.md,
// "Garbage collection"). A lock is an object locks/<kind>-<random>.json;
// its liveness is the storage's own ModTime, compared only with the ModTime
// of the caller's own freshly written lock, so client clocks never matter.
const (
	lockKindPublish = "publish"
	lockKindGC      = "gc"
	gcRunsPrefix    = "gc/runs/"
)

// DefaultStaleAfter: a lock whose ModTime is older than this (by the storage's
// clock) is abandoned. Holders refresh well within it.
const DefaultStaleAfter = 10 * time.Minute

// ErrLocked is returned when another garbage collection holds the registry.
var ErrLocked = errors.New("registry is locked")

// LockInfo is the content of a lock object.
type LockInfo struct {
	Kind    string    `json:"kind"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Created time.Time `json:"created"` // client clock, informational
}

// heldLock is a lock this process holds.
type heldLock struct {
	r        *Registry
	key      string
	info     LockInfo
	modTime  time.Time // storage clock when written
	acquired time.Time // local monotonic clock when written
}

func (r *Registry) staleAfter() time.Duration {
	if r.lockStale > 0 {
		return r.lockStale
	}
	return DefaultStaleAfter
}

// writeLock creates a new lock object of kind and returns it with the
// storage's time for it.
func (r *Registry) writeLock(ctx context.Context, kind string) (*heldLock, error) {
	host, _ := os.Hostname()
	info := LockInfo{Kind: kind, Host: host, PID: os.Getpid(), Created: time.Now().UTC()}
	key := "locks/" + kind + "-" + randomHex(8) + ".json"
	if err := putJSON(ctx, r.backend, key, info); err != nil {
		return nil, fmt.Errorf("write lock %s: %w", key, err)
	}
	// The time is read from a listing, like every time it is compared with:
	// S3 gives listings millisecond precision but HEAD only seconds.
	var mod time.Time
	err := r.backend.List(ctx, key, func(oi backend.ObjectInfo) error {
		if oi.Key == key {
			mod = oi.ModTime
		}
		return nil
	})
	if err == nil && mod.IsZero() {
		err = fmt.Errorf("%w: not listed right after it was written", backend.ErrNotFound)
	}
	if err != nil {
		if derr := r.backend.Delete(context.WithoutCancel(ctx), key); derr != nil {
			r.warnf("lock %s not removed (%v); it counts as abandoned once it is stale", key, derr)
		}
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	return &heldLock{r: r, key: key, info: info, modTime: mod, acquired: time.Now()}, nil
}

func (l *heldLock) release(ctx context.Context) error {
	return l.r.backend.Delete(context.WithoutCancel(ctx), l.key)
}

// releaseOrWarn releases the lock where the operation's outcome does not
// depend on it: a lock left behind only delays others until it is stale.
func (l *heldLock) releaseOrWarn(ctx context.Context) {
	if err := l.release(ctx); err != nil {
		l.r.warnf("lock %s not released (%v); others wait until it is stale", l.key, err)
	}
}

// refresh replaces the lock object with a new one (objects are never
// overwritten), so its ModTime stays recent.
func (l *heldLock) refresh(ctx context.Context) error {
	next, err := l.r.writeLock(ctx, l.info.Kind)
	if err != nil {
		return err
	}
	old := l.key
	*l = *next
	return l.r.backend.Delete(ctx, old)
}

// otherLock is a lock of someone else, with whether it is still alive.
type otherLock struct {
	Key   string
	Info  LockInfo
	Age   time.Duration
	Stale bool
}

func (o otherLock) String() string {
	return fmt.Sprintf("%s lock of %s (pid %d), last refreshed %s ago", o.Info.Kind, o.Info.Host, o.Info.PID, o.Age.Round(time.Second))
}

// otherLocks lists every lock but mine, judging staleness against mine.
func (r *Registry) otherLocks(ctx context.Context, mine *heldLock) ([]otherLock, error) {
	var out []otherLock
	var infos []backend.ObjectInfo
	err := r.backend.List(ctx, "locks/", func(oi backend.ObjectInfo) error {
		if oi.Key != mine.key {
			infos = append(infos, oi)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	host, _ := os.Hostname()
	for _, oi := range infos {
		var info LockInfo
		if err := getJSON(ctx, r.backend, oi.Key, &info); err != nil {
			if errors.Is(err, backend.ErrNotFound) {
				continue // released meanwhile
			}
			// An unreadable lock is judged by its age alone.
			info = LockInfo{Kind: lockKindFromKey(oi.Key)}
		}
		age := mine.modTime.Sub(oi.ModTime)
		stale := age > r.staleAfter()
		if !stale && info.Host == host && info.PID > 0 && info.PID != os.Getpid() && !processAlive(info.PID) {
			stale = true // our own machine, and the process is gone
		}
		out = append(out, otherLock{Key: oi.Key, Info: info, Age: age, Stale: stale})
	}
	return out, nil
}

func lockKindFromKey(key string) string {
	name := strings.TrimPrefix(key, "locks/")
	kind, _, _ := strings.Cut(name, "-")
	return kind
}

// acquire takes a lock of kind by the protocol of docs/format.md §9: write
// the lock, then list the others. judge looks at them and says whether to
// hold the lock (nil), to back off and retry (errRetry), or to give up
// (any other error). waitMax bounds the back-off between attempts.
func (r *Registry) acquire(ctx context.Context, kind, waitingFor string, waitMax time.Duration, judge func([]otherLock) error) (*heldLock, error) {
	delay := 50 * time.Millisecond
	for {
		l, err := r.writeLock(ctx, kind)
		if err != nil {
			return nil, err
		}
		others, err := r.otherLocks(ctx, l)
		if err == nil {
			err = judge(others)
		}
		if err == nil {
			return l, nil
		}
		l.releaseOrWarn(ctx)
		if !errors.Is(err, errRetry) {
			return nil, err
		}
		if err := sleepCtx(ctx, jitter(delay)); err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", waitingFor, err)
		}
		delay = min(2*delay, waitMax)
	}
}

// errRetry tells acquire to back off and try again.
var errRetry = errors.New("lock busy")

// acquirePublish takes the short lock a push holds while it checks that its
// data still exists and writes its ref. It waits while a garbage collection
// holds the registry.
func (r *Registry) acquirePublish(ctx context.Context) (*heldLock, error) {
	return r.acquire(ctx, lockKindPublish, "garbage collection to finish", 5*time.Second, func(others []otherLock) error {
		for _, o := range others {
			if o.Info.Kind == lockKindGC && !o.Stale {
				return errRetry
			}
		}
		return nil
	})
}

// acquireGC takes the exclusive lock of a garbage collection: it fails with
// ErrLocked if another live gc holds the registry, and waits for running
// publishes (which take seconds) to finish. Stale locks are removed.
func (r *Registry) acquireGC(ctx context.Context) (*heldLock, error) {
	return r.acquire(ctx, lockKindGC, "pushes to publish", 2*time.Second, func(others []otherLock) error {
		busy := false
		for _, o := range others {
			switch {
			case o.Stale:
				if err := r.backend.Delete(ctx, o.Key); err != nil {
					return fmt.Errorf("remove stale %s: %w", o, err)
				}
			case o.Info.Kind == lockKindGC:
				return fmt.Errorf("%w: another garbage collection is running (%s); try again later", ErrLocked, o)
			default:
				busy = true
			}
		}
		if busy {
			return errRetry
		}
		return nil
	})
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// gcView is what a push saw of garbage collection when it started: the run
// markers, and whether a gc was running then (its lock present). A push
// whose existence checks may have overlapped a gc's deletions must check
// its data again before it publishes (docs/format.md, section 9).
type gcView struct {
	runs    map[string]bool
	running bool // a gc lock was listed after the markers: that gc may still delete
}

// watchGC lists the run markers, then the locks. The order matters: a gc
// writes its lock before its marker and deletes it only after its last
// deletion, so a gc whose marker is in runs and whose lock is not listed
// had finished deleting before this push checked anything.
func (r *Registry) watchGC(ctx context.Context) (*gcView, error) {
	runs, err := r.gcRuns(ctx)
	if err != nil {
		return nil, err
	}
	v := &gcView{runs: runs}
	err = r.backend.List(ctx, "locks/"+lockKindGC+"-", func(backend.ObjectInfo) error {
		v.running = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	return v, nil
}

// overlapped reports whether a gc may have deleted something since v was
// taken, given the markers listed now: a new marker appeared, or a gc was
// running when v was taken.
func (v *gcView) overlapped(runs map[string]bool) bool {
	if v.running {
		return true
	}
	for id := range runs {
		if !v.runs[id] {
			return true
		}
	}
	return false
}

// settle records that the push has re-checked its data against every gc
// that left one of runs.
func (v *gcView) settle(runs map[string]bool) {
	v.runs, v.running = runs, false
}

// gcRuns lists the markers garbage collections leave before deleting.
func (r *Registry) gcRuns(ctx context.Context) (map[string]bool, error) {
	runs := map[string]bool{}
	err := r.backend.List(ctx, gcRunsPrefix, func(oi backend.ObjectInfo) error {
		runs[strings.TrimPrefix(oi.Key, gcRunsPrefix)] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list gc runs: %w", err)
	}
	return runs, nil
}
