package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/ckptdev/ckpt/internal/units"
	"github.com/ckptdev/ckpt/store"
)

// progress returns what shows the bytes a push or pull moves: a bar on a
// terminal, plain periodic lines on stderr when it is not one (CI logs,
// cron mail), nothing with --quiet or when stderr is not the process's own.
// Stdout is never written: --json output stays one JSON document.
func (a *app) progress() store.Progress {
	return newProgress(a.quiet, a.progressTo, a.stderr, progressClock)
}

// newProgress picks the progress for a process whose own stderr is ownStderr
// (nil when the caller's stderr is not the process's) and whose filtered
// stderr is stderr.
func newProgress(quiet bool, ownStderr *os.File, stderr io.Writer, c clock) store.Progress {
	switch {
	case quiet || ownStderr == nil:
		return nil
	case term.IsTerminal(int(ownStderr.Fd())):
		return &barProgress{out: ownStderr}
	}
	return newLineProgress(stderr, c)
}

// barProgress draws one mpb bar per operation on stderr. It writes to the
// terminal directly: labels and byte counts are all it prints.
type barProgress struct {
	out *os.File
	mu  sync.Mutex
	p   *mpb.Progress
	bar *mpb.Bar
}

func (b *barProgress) Start(label string, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.p = mpb.New(mpb.WithOutput(b.out), mpb.WithWidth(40))
	b.bar = b.p.AddBar(total,
		mpb.PrependDecorators(decor.Name(label+" "), decor.CountersKibiByte("% .1f / % .1f")),
		mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), " % .1f"), decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO)),
	)
}

func (b *barProgress) Add(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		b.bar.IncrInt64(n)
	}
}

func (b *barProgress) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		b.bar.SetTotal(-1, true)
		b.p.Wait()
		b.bar, b.p = nil, nil
	}
}

// clock is the time source of lineProgress; tests replace it.
type clock interface {
	Now() time.Time
	// Ticks returns a channel that receives the current time about every d,
	// and the function that stops it.
	Ticks(d time.Duration) (<-chan time.Time, func())
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Ticks(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// progressClock is the clock of the progress lines of this process.
var progressClock clock = systemClock{}

const (
	// lineDelay: a transfer shorter than this prints no progress line.
	lineDelay = 5 * time.Second
	// lineInterval is the time between two progress lines.
	lineInterval = 10 * time.Second
	// linePoll is how often the clock is looked at while no bytes move, so
	// that a stalled transfer still prints its lines.
	linePoll = time.Second
)

// lineProgress prints one plain line per interval while an operation moves
// bytes, the first one delay after it started, and a summary line at the
// end if it printed any:
//
//	ckpt: push 1.2 GiB / 4.0 GiB (30%), 85.3 MiB/s, ETA 34s
//	ckpt: push moved 4.0 GiB of 4.0 GiB (100%) in 47s, 87.1 MiB/s average
//
// Rates are averages since the start. Lines are due when bytes arrive (Add)
// or when the poll ticker fires, whichever comes first; each is written
// with one Write.
type lineProgress struct {
	out                   io.Writer
	clock                 clock
	delay, interval, poll time.Duration

	done atomic.Int64
	// due is the UnixNano time of the next line, math.MaxInt64 when no
	// operation runs; Add reads it without the lock.
	due atomic.Int64

	mu      sync.Mutex // guards the fields below and serializes writes
	label   string
	total   int64
	start   time.Time
	printed int
	stop    chan struct{} // closed to end the poll goroutine
	exited  chan struct{} // closed by the poll goroutine when it returns
}

func newLineProgress(out io.Writer, c clock) *lineProgress {
	p := &lineProgress{out: out, clock: c, delay: lineDelay, interval: lineInterval, poll: linePoll}
	p.due.Store(math.MaxInt64)
	return p
}

func (p *lineProgress) Start(label string, total int64) {
	p.stopPolling()
	now := p.clock.Now()
	p.mu.Lock()
	p.label, p.total, p.start, p.printed = label, total, now, 0
	p.done.Store(0)
	p.due.Store(now.Add(p.delay).UnixNano())
	p.stop, p.exited = make(chan struct{}), make(chan struct{})
	ticks, stopTicks := p.clock.Ticks(p.poll)
	stop, exited := p.stop, p.exited
	p.mu.Unlock()
	go func() {
		defer close(exited)
		defer stopTicks()
		for {
			select {
			case <-stop:
				return
			case now := <-ticks:
				p.maybeLine(now)
			}
		}
	}()
}

func (p *lineProgress) Add(n int64) {
	p.done.Add(n)
	if now := p.clock.Now(); now.UnixNano() >= p.due.Load() {
		p.maybeLine(now)
	}
}

func (p *lineProgress) Finish() {
	p.stopPolling()
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.due.Store(math.MaxInt64)
	if p.printed == 0 {
		return
	}
	p.printed = 0
	elapsed := now.Sub(p.start)
	done := p.done.Load()
	fmt.Fprintf(p.out, "ckpt: %s moved %s in %s, %s/s average\n",
		p.label, p.amount(done, " of "), roundSeconds(elapsed), units.Bytes(int64(rate(done, elapsed))))
}

// stopPolling ends the poll goroutine, if any, and waits until it has.
func (p *lineProgress) stopPolling() {
	p.mu.Lock()
	stop, exited := p.stop, p.exited
	p.stop, p.exited = nil, nil
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-exited
	}
}

// maybeLine prints the progress line if one is due at now.
func (p *lineProgress) maybeLine(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	due := p.due.Load()
	if now.UnixNano() < due {
		return
	}
	for due <= now.UnixNano() {
		due += int64(p.interval)
	}
	p.due.Store(due)
	p.printed++
	elapsed := now.Sub(p.start)
	done := p.done.Load()
	r := rate(done, elapsed)
	line := fmt.Sprintf("ckpt: %s %s, %s/s", p.label, p.amount(done, " / "), units.Bytes(int64(r)))
	if p.total > 0 {
		line += ", ETA " + eta(p.total-done, r)
	}
	fmt.Fprintln(p.out, line)
}

// amount formats done against the total: "1.2 GiB / 4.0 GiB (30%)", or just
// "1.2 GiB" when the total is unknown.
func (p *lineProgress) amount(done int64, sep string) string {
	if p.total <= 0 {
		return units.Bytes(done)
	}
	percent := min(100, max(0, int64(float64(done)*100/float64(p.total))))
	return fmt.Sprintf("%s%s%s (%d%%)", units.Bytes(done), sep, units.Bytes(p.total), percent)
}

// rate is bytes per second.
func rate(bytes int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(bytes) / elapsed.Seconds()
}

// maxETA is the longest ETA printed as a duration ("over 100h" beyond).
const maxETA = 100 * time.Hour

// eta formats the time left to move remaining bytes at rate bytes per
// second: "34s", "2m5s", "unknown" while nothing moves.
func eta(remaining int64, rate float64) string {
	if remaining <= 0 {
		return "0s"
	}
	if rate <= 0 {
		return "unknown"
	}
	seconds := float64(remaining) / rate
	if seconds >= maxETA.Seconds() {
		return "over 100h"
	}
	return roundSeconds(time.Duration(seconds * float64(time.Second)))
}

func roundSeconds(d time.Duration) string { return d.Round(time.Second).String() }
