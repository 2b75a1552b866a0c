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

	// A chunk of MaxChunkSize and its stored form fit pooled buffers.
	assert.Equal(t, int64(pooledBufSize), bufCost(object.ContentCap(object.MaxChunkSize)))
	assert.Equal(t, int64(pooledBufSize), bufCost(object.StoredCap(object.MaxChunkSize)))
	assert.Equal(t, int64(2*pooledBufSize), objectCost(object.MaxChunkSize))
	assert.LessOrEqual(t, 8*objectCost(object.MaxChunkSize), int64(TransferBudget), "8 workers on full chunks fit the budget")

	for _, n := range []int64{100, smallBufSize, object.MaxChunkSize + object.MaxChunkSize/2, object.MaxBlobContent} {
		bp := takeBuf(n)
		assert.Equal(t, bufCost(n), int64(cap(*bp)), "%d bytes", n)
		dropBuf(bp)
		assert.Empty(t, freeBufs, "a buffer of %d bytes is not pooled", cap(*bp))
	}

	bp := takeBuf(object.MaxChunkSize)
	require.Equal(t, pooledBufSize, cap(*bp))
	dropBuf(bp)
	require.Len(t, freeBufs, 1)
	assert.Same(t, bp, takeBuf(100<<10+smallBufSize), "a pooled buffer is reused")

	// The free list never holds more than the budget can have in use.
	for range cap(freeBufs) + 3 {
		b := make([]byte, 0, pooledBufSize)
		dropBuf(&b)
	}
	assert.Len(t, freeBufs, cap(freeBufs))
	assert.LessOrEqual(t, int64(cap(freeBufs))*pooledBufSize, int64(TransferBudget))

	// A grant larger than two pooled buffers empties the free list.
	release, err := newMemBudget(TransferBudget).acquire(context.Background(), 3*pooledBufSize)
	require.NoError(t, err)
	release()
	assert.Empty(t, freeBufs)
}
