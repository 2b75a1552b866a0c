package synth

import (
	"io"
	"sync"
)

// asyncWriter buffers writes and hands full buffers to a goroutine that
// writes them to w, so generating the next bytes overlaps writing the
// previous ones (writing is the larger half of the cost of a big folder).
// Close must be called, also after an error, to stop the goroutine.
type asyncWriter struct {
	w    io.Writer
	buf  []byte
	free chan []byte
	full chan []byte
	done chan struct{}

	mu  sync.Mutex
	err error // the first write error
}

func newAsyncWriter(w io.Writer, bufferSize, buffers int) *asyncWriter {
	a := &asyncWriter{
		w:    w,
		buf:  make([]byte, 0, bufferSize),
		free: make(chan []byte, buffers),
		full: make(chan []byte, buffers),
		done: make(chan struct{}),
	}
	for range buffers - 1 {
		a.free <- make([]byte, 0, bufferSize)
	}
	go a.drain()
	return a
}

func (a *asyncWriter) drain() {
	defer close(a.done)
	for buf := range a.full {
		if a.failed() == nil {
			if _, err := a.w.Write(buf); err != nil {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
			}
		}
		a.free <- buf[:0]
	}
}

func (a *asyncWriter) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if err := a.failed(); err != nil {
			return written, err
		}
		n := copy(a.buf[len(a.buf):cap(a.buf)], p)
		a.buf = a.buf[:len(a.buf)+n]
		p, written = p[n:], written+n
		if len(a.buf) == cap(a.buf) {
			a.full <- a.buf
			a.buf = <-a.free
		}
	}
	return written, nil
}

// Close writes what is buffered, waits for the goroutine and returns the
// first write error. It does not close w.
func (a *asyncWriter) Close() error {
	if a.full == nil {
		return a.failed()
	}
	if len(a.buf) > 0 {
		a.full <- a.buf
	}
	close(a.full)
	<-a.done
	a.full, a.buf = nil, nil
	return a.failed()
}
