package main

import (
	"os"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/ckptdev/ckpt/store"
)

// progress returns a byte progress bar on a terminal, nil otherwise or with --quiet.
func (a *app) progress() store.Progress {
	if a.quiet || a.progressTo == nil || !term.IsTerminal(int(a.progressTo.Fd())) {
		return nil
	}
	return &barProgress{out: a.progressTo}
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
