package mem_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/backendtest"
	"github.com/ckptdev/ckpt/store/backend/mem"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return mem.New() }, backendtest.Options{LargeObjectSize: 3<<20 + 17})
}

// SetClock stamps the objects created from then on, and nil goes back to
// the real clock.
func TestSetClock(t *testing.T) {
	ctx := context.Background()
	b := mem.New()
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	b.SetClock(func() time.Time { return old })
	require.NoError(t, b.Put(ctx, "a", bytes.NewReader([]byte("a")), 1))
	b.SetClock(nil)
	before := time.Now()
	require.NoError(t, b.Put(ctx, "b", bytes.NewReader([]byte("b")), 1))

	a, err := b.Stat(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, old, a.ModTime)
	bi, err := b.Stat(ctx, "b")
	require.NoError(t, err)
	assert.False(t, bi.ModTime.Before(before))
}

// Two backends are two registries: nothing is shared.
func TestBackendsAreSeparate(t *testing.T) {
	ctx := context.Background()
	one, two := mem.New(), mem.New()
	require.NoError(t, one.Put(ctx, "k", bytes.NewReader([]byte("1")), 1))
	_, err := two.Stat(ctx, "k")
	require.ErrorIs(t, err, backend.ErrNotFound)
	assert.NotEqual(t, one.Location(), two.Location())
}
