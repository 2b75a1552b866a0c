package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/object"
)

func TestMemBudget(t *testing.T) {
	ctx := context.Background()
	b := newMemBudget(100)

	small, err := b.acquire(ctx, 30)
	require.NoError(t, err)
	assert.Equal(t, int64(30), b.held.Load())
	assert.True(t, b.sem.TryAcquire(70), "the rest is free")
	b.sem.Release(70)
	small()
	small() // a second release gives nothing back twice
	assert.Equal(t, int64(0), b.held.Load())

	// An object larger than the budget takes all of it: nothing else runs.
	all, err := b.acquire(ctx, 1000)
	require.NoError(t, err)
	assert.Equal(t, int64(100), b.held.Load())
	assert.False(t, b.sem.TryAcquire(1))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = b.acquire(cancelled, 1)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, int64(0), b.waiting.Load())
	all()
	assert.True(t, b.sem.TryAcquire(100))
}

func TestFreeListKeepsOnlyChunkBuffers(t *testing.T) {
	drainFreeBufs()
	defer drainFreeBufs()
	idle := idleBufs() // mapped buffers of earlier tests stay listed

	// A chunk of MaxChunkSize and its stored form fit pooled buffers.
	assert.Equal(t, int64(pooledBufSize), bufCost(object.ContentCap(object.MaxChunkSize)))
	assert.Equal(t, int64(pooledBufSize), bufCost(object.StoredCap(object.MaxChunkSize)))
	assert.Equal(t, int64(2*pooledBufSize), objectCost(object.MaxChunkSize))
	assert.LessOrEqual(t, 7*objectCost(object.MaxChunkSize), int64(TransferBudget), "7 workers on full chunks fit the budget")

	for _, n := range []int64{100, smallBufSize, object.MaxChunkSize + object.MaxChunkSize/2, object.MaxBlobContent} {
		bp := takeBuf(n)
		assert.Equal(t, bufCost(n), int64(cap(*bp)), "%d bytes", n)
		assert.False(t, isMapped(bp), "a buffer of %d bytes is not mapped", cap(*bp))
		dropBuf(bp)
		assert.Equal(t, idle, idleBufs(), "a buffer of %d bytes is not pooled", cap(*bp))
	}

	bp := takeBuf(object.MaxChunkSize)
	require.Equal(t, pooledBufSize, cap(*bp))
	require.Empty(t, *bp)
	dropBuf(bp)
	require.Equal(t, idle+1, idleBufs())
	again := takeBuf(100<<10 + smallBufSize)
	assert.Same(t, bp, again, "a pooled buffer is reused")
	assert.Empty(t, *again, "a reused buffer comes back empty")

	// Buffers beyond what the budgets can hold at once come from the heap;
	// draining the free list keeps the mapped ones (their pages given back,
	// their contents still addressable) and lets the collector take the rest.
	taken := []*[]byte{again}
	for range maxMapped + 3 {
		taken = append(taken, takeBuf(object.MaxChunkSize))
	}
	mapped := 0
	for _, b := range taken {
		if isMapped(b) {
			mapped++
		}
		*b = append(*b, 0xA5)
	}
	assert.LessOrEqual(t, mapped, maxMapped)
	for _, b := range taken {
		dropBuf(b)
	}
	drainFreeBufs()
	assert.Equal(t, mapped, idleBufs(), "only mapped buffers stay listed")
	for range idleBufs() {
		b := takeBuf(object.MaxChunkSize)
		require.True(t, isMapped(b))
		require.Empty(t, *b)
		*b = append(*b, 1)
		defer dropBuf(b)
	}
}
