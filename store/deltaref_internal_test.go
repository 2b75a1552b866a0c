package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/object"
)

// A delta's grant (several pooled buffers, more than two of them) leaves
// the free list alone: draining it (and collecting garbage) for every delta
// chunk made every worker allocate and clear its buffers again.
func TestDeltaGrantKeepsFreeList(t *testing.T) {
	drainFreeBufs()
	t.Cleanup(drainFreeBufs)
	bp := takeBuf(object.StoredCap(object.MaxChunkSize))
	*bp = append(*bp, 7)
	dropBuf(bp)
	idle := idleBufs()
	n := deltaCost(object.MaxChunkSize)
	require.Greater(t, n, int64(2*pooledBufSize), "a grant the transfer budget would collect for")
	release, err := deltaBudget.acquire(context.Background(), n)
	require.NoError(t, err)
	release()
	assert.Equal(t, idle, idleBufs(), "the delta grant emptied the free list")
	assert.Same(t, bp, takeBuf(object.StoredCap(object.MaxChunkSize)))
	dropBuf(bp)
}

// Delta reads take the buffers of every size they need from the same pool,
// so a reference, a payload and a content buffer are recycled.
func TestDeltaBufsRecycled(t *testing.T) {
	drainFreeBufs()
	t.Cleanup(drainFreeBufs)
	a := takeBuf(object.ContentCap(object.MaxChunkSize))
	require.Equal(t, int64(pooledBufSize), int64(cap(*a)))
	dropBuf(a)
	assert.Same(t, a, takeBuf(object.DeltaStoredCap(object.MaxChunkSize)))
	dropBuf(a)
	idle := idleBufs()
	// Small buffers are not pooled.
	s := takeBuf(1 << 10)
	dropBuf(s)
	assert.Equal(t, idle, idleBufs())
}
