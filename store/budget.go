package store

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sync/semaphore"

	"github.com/ckptdev/ckpt/store/object"
)

// TransferBudget is the most memory, in bytes, that the blob transfers of
// one process hold at once for object data: every pull, verify
// --read-data, ReadRange and push worker acquires what an object needs
// (objectCost: its decoded and its stored form) before it reads it, and
// gives it back when it is done with it.
//
// 128 MiB lets 7 workers each hold an 8 MiB chunk and its stored form in
// two pooled 9 MiB buffers (7 × 18 MiB = 126 MiB); more workers on full
// chunks take turns. With the delta budget, the codecs' scratch and the Go
// runtime it keeps a command under the 256 MiB peak RSS it aims at: a delta
// push of 1 GiB over S3 with 8 workers peaks at 234 MiB, as fast as with
// 160 MiB, which peaked at 250. An object that needs more than the whole
// budget (a hostile 95 MiB blob needs about 192 MiB) takes all of it and
// runs alone.
const TransferBudget = 128 << 20

// memBudget is a weighted semaphore of bytes.
type memBudget struct {
	size    int64
	sem     *semaphore.Weighted
	waiting atomic.Int64 // acquirers blocked right now (tests watch it)
	held    atomic.Int64 // bytes granted right now
	// pooled: every grant is a few pooled buffers (deltaBudget), never one
	// large object, so a large grant does not empty the free list.
	pooled bool
}

func newMemBudget(size int64) *memBudget {
	return &memBudget{size: size, sem: semaphore.NewWeighted(size)}
}

// transfers is the process-wide budget.
var transfers = newMemBudget(TransferBudget)

// acquire blocks until n bytes of the budget are free (all of it when n is
// more than the whole budget) or ctx ends, and returns the function that
// gives them back. A grant larger than the pooled buffers first gives the
// pages of idle pooled buffers back (drainFreeBufs) and collects garbage,
// so that the buffers of earlier large objects are reused instead of added
// to: between collections the Go heap
// grows to twice its live size. Without it, verify --read-data of 100 MB
// blobs peaked at 396 MiB instead of 204 MiB when no soft memory limit was
// set (the CLI sets one; library users and GOMEMLIMIT may not).
func (b *memBudget) acquire(ctx context.Context, n int64) (func(), error) {
	n = min(max(n, 0), b.size)
	b.waiting.Add(1)
	err := b.sem.Acquire(ctx, n)
	b.waiting.Add(-1)
	if err != nil {
		return nil, err
	}
	b.held.Add(n)
	if n > 2*pooledBufSize && !b.pooled {
		drainFreeBufs()
		runtime.GC()
	}
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			b.held.Add(-n)
			b.sem.Release(n)
		}
	}, nil
}

// objectCost is what a transfer of an object of n content bytes may hold:
// a buffer for its content and one for its stored form, each counted at the
// capacity takeBuf gives it.
func objectCost(n int64) int64 {
	return bufCost(object.ContentCap(n)) + bufCost(object.StoredCap(n))
}

// Buffers come in three classes: small ones are allocated exactly and left
// to the collector; those up to pooledBufSize are pooled buffers of exactly
// that capacity (a chunk of MaxChunkSize and its stored form fit); larger
// ones are allocated exactly and dropped after use, never pooled.
const (
	smallBufSize  = 1 << 20
	pooledBufSize = object.MaxChunkSize + object.MaxChunkSize/8 + object.HeaderSize
)

// bufCost is the capacity takeBuf returns for a request of n bytes.
func bufCost(n int64) int64 {
	if n > smallBufSize && n <= pooledBufSize {
		return pooledBufSize
	}
	return n
}

// Pooled buffers live outside the Go heap where the platform can map
// memory (bufmem_unix.go). They are bounded by the budgets (every pooled
// buffer in use is covered by a grant), so leaving them to the collector
// bought nothing and cost much: the free lists keep them alive, so on the
// heap they counted toward the soft memory limit, and a push or pull whose
// budgets were full ran the collector hundreds of times a second (a delta
// push of 1 GiB over S3: 1,150 cycles, and 1.09 of rclone's time where
// mapped buffers take 0.72). Mapped buffers are never unmapped: a buffer
// is only ever reused through the free lists, and one dropped by mistake
// while still read reads stale bytes, as on the heap, instead of faulting. When more are wanted than the budgets can
// hold at once (a buffer lost on some error path), further ones come from
// the heap again. The heap beside them is small (codec state, manifests:
// about 50 MB in that push), so the CLI collects it at GOGC 25 and peaks a
// quarter above it, never near the soft limit (cmd/ckpt/main.go). On Linux
// they ask for transparent huge pages (bufmem_unix.go): on the shared VM a
// cold 1 GiB delta pull took 30,000 page faults filling fresh buffers, and
// 2,500 with huge pages, 3.5-4.0 s against 2.9-3.6 s.
var pool = struct {
	sync.Mutex
	free   []*[]byte      // idle pooled buffers, mapped or not
	mapped map[*byte]bool // the first byte of every mapped buffer
}{mapped: map[*byte]bool{}}

// maxMapped is how many pooled buffers the transfer and delta budgets can
// hold at once, and two for buffers the free lists handed out before a
// grant's release was seen.
const maxMapped = (TransferBudget+2*(3*pooledBufSize))/pooledBufSize + 2

// takeBuf returns an empty buffer of capacity bufCost(n). Callers hold that
// much of the transfer budget while they use it, and hand it back with
// dropBuf.
func takeBuf(n int64) *[]byte {
	c := bufCost(n)
	if c == pooledBufSize {
		pool.Lock()
		if k := len(pool.free); k > 0 {
			b := pool.free[k-1]
			pool.free = pool.free[:k-1]
			pool.Unlock()
			return b
		}
		mapIt := len(pool.mapped) < maxMapped
		pool.Unlock()
		if mapIt {
			if m, ok := mapBuf(pooledBufSize); ok {
				pool.Lock()
				pool.mapped[unsafe.SliceData(m)] = true
				pool.Unlock()
				b := m[:0]
				return &b
			}
		}
	}
	b := make([]byte, 0, c)
	return &b
}

// dropBuf gives a buffer back: pooled buffers go to the free list, every
// other one is left to the collector.
func dropBuf(bp *[]byte) {
	if bp == nil || cap(*bp) != pooledBufSize {
		return
	}
	*bp = (*bp)[:0]
	pool.Lock()
	pool.free = append(pool.free, bp)
	pool.Unlock()
}

// isMapped reports whether bp is a pooled buffer outside the Go heap.
func isMapped(bp *[]byte) bool {
	pool.Lock()
	defer pool.Unlock()
	return pool.mapped[unsafe.SliceData(*bp)]
}

// idleBufs is how many pooled buffers are idle in the free list.
func idleBufs() int {
	pool.Lock()
	defer pool.Unlock()
	return len(pool.free)
}

// drainFreeBufs gives the memory of idle pooled buffers back before a
// large object is allocated: the pages of mapped ones go back to the
// system, heap ones to the collector.
func drainFreeBufs() {
	pool.Lock()
	defer pool.Unlock()
	kept := pool.free[:0]
	for _, bp := range pool.free {
		if pool.mapped[unsafe.SliceData(*bp)] {
			returnPages(*bp)
			kept = append(kept, bp)
		}
	}
	clear(pool.free[len(kept):])
	pool.free = kept
}

// A chunkLease is the memory one worker holds from the transfer budget to
// fetch and decode one chunk: objectCost(size) bytes, and the buffer for
// the chunk's content. done gives both back.
type chunkLease struct {
	release func()
	content *[]byte
}

// leaseChunk waits for the memory to fetch a chunk of size content bytes.
func leaseChunk(ctx context.Context, size int64) (*chunkLease, error) {
	release, err := transfers.acquire(ctx, objectCost(size))
	if err != nil {
		return nil, err
	}
	return &chunkLease{release: release, content: takeBuf(object.ContentCap(size))}, nil
}

// buf is the empty content buffer, with room for object.ContentCap(size) bytes.
func (l *chunkLease) buf() []byte { return (*l.content)[:0] }

// done gives the buffer and the memory back; the data read into buf must
// not be used after it.
func (l *chunkLease) done() {
	dropBuf(l.content)
	l.content = nil
	l.release()
}
