package store

import (
	"context"
	"runtime"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"github.com/ckptdev/ckpt/store/object"
)

// TransferBudget is the most memory, in bytes, that the blob transfers of
// one process hold at once for object data: every pull, verify
// --read-data, ReadRange and push worker acquires what an object needs
// (objectCost: its decoded and its stored form) before it reads it, and
// gives it back when it is done with it.
//
// 160 MiB lets 8 workers each hold an 8 MiB chunk and its stored form in
// two pooled 9 MiB buffers (8 × 18 MiB = 144 MiB), so 8 workers on normal
// chunks never wait for it; with the Go runtime, the index and the
// manifests it keeps a command under the 256 MiB peak RSS it aims at. An
// object that needs more than the whole budget (a hostile 95 MiB blob
// needs about 192 MiB) takes all of it and runs alone.
const TransferBudget = 160 << 20

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
// gives them back. A grant larger than the pooled buffers first empties the
// free list and collects garbage, so that the buffers of earlier large
// objects are reused instead of added to: between collections the Go heap
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

// freeBufs recycles pooled buffers across workers. Unlike a sync.Pool it
// survives garbage collections, so a transfer running near the memory
// limit does not reallocate 9 MiB buffers after every cycle. It holds at
// most as many buffers as the budget can have in use at once, so that the
// pooled buffers, in use or idle, never hold more than the budget.
var freeBufs = make(chan *[]byte, TransferBudget/pooledBufSize)

// takeBuf returns an empty buffer of capacity bufCost(n). Callers hold that
// much of the transfer budget while they use it, and hand it back with
// dropBuf.
func takeBuf(n int64) *[]byte {
	c := bufCost(n)
	if c == pooledBufSize {
		select {
		case b := <-freeBufs:
			return b
		default:
		}
	}
	b := make([]byte, 0, c)
	return &b
}

// dropBuf gives a buffer back: pooled buffers go to the free list (if it
// has room), every other one is left to the collector.
func dropBuf(bp *[]byte) {
	if bp == nil || cap(*bp) != pooledBufSize {
		return
	}
	*bp = (*bp)[:0]
	select {
	case freeBufs <- bp:
	default:
	}
}

// drainFreeBufs empties the free list, so the collector can take its
// buffers.
func drainFreeBufs() {
	for {
		select {
		case <-freeBufs:
		case <-deltaFreeBufs:
		default:
			return
		}
	}
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
