package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/object"
)

// A delta's grant (several pooled buffers, more than two of them) leaves
// the transfer budget's free list alone: draining it (and collecting
// garbage) for every delta chunk made every worker allocate and clear its
// buffers again.
func TestDeltaGrantKeepsFreeList(t *testing.T) {
	drainFreeBufs()
	t.Cleanup(drainFreeBufs)
	bp := takeBuf(object.StoredCap(object.MaxChunkSize))
	dropBuf(bp)
	require.Len(t, freeBufs, 1)
	n := deltaCost(object.MaxChunkSize)
	require.Greater(t, n, int64(2*pooledBufSize), "a grant the transfer budget would collect for")
	release, err := deltaBudget.acquire(context.Background(), n)
	require.NoError(t, err)
	release()
	assert.Len(t, freeBufs, 1, "the delta grant emptied the free list")
	assert.Same(t, bp, takeBuf(object.StoredCap(object.MaxChunkSize)))
}

// Delta reads recycle their pooled buffers through their own free list,
// which drainFreeBufs empties with the transfer budget's.
func TestDeltaBufsRecycled(t *testing.T) {
	drainFreeBufs()
	t.Cleanup(drainFreeBufs)
	a := takeDeltaBuf(object.ContentCap(object.MaxChunkSize))
	require.Equal(t, int64(pooledBufSize), int64(cap(*a)))
	dropDeltaBuf(a)
	assert.Same(t, a, takeDeltaBuf(object.DeltaStoredCap(object.MaxChunkSize)))
	dropDeltaBuf(a)
	drainFreeBufs()
	assert.Empty(t, deltaFreeBufs)
	// Small buffers are not pooled.
	s := takeDeltaBuf(1 << 10)
	dropDeltaBuf(s)
	assert.Empty(t, deltaFreeBufs)
}
