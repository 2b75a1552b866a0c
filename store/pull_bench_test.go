package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend/local"
)

// BenchmarkPull pulls a 256 MiB bf16 model (32 chunks of 8 MiB, planes
// coded) from a local registry with 8 workers: the transfer budget must not
// slow it (8 workers on 8 MiB chunks fit in it).
func BenchmarkPull(b *testing.B) {
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "model")
	require.NoError(b, synth.WriteBase(dir, synth.ModelOfSize(256<<20, layout.DtypeBF16), 1, filepath.Join("..", "testdata", "gpt2")))
	backend, err := local.New(filepath.Join(b.TempDir(), "registry"))
	require.NoError(b, err)
	r, _, err := store.Init(ctx, backend, store.Options{Workers: 8})
	require.NoError(b, err)
	res, err := r.Push(ctx, dir, store.PushOptions{Name: "bench", Version: "1"})
	require.NoError(b, err)
	b.SetBytes(res.Logical)
	out := filepath.Join(b.TempDir(), "out")
	b.ResetTimer()
	for range b.N {
		_, err := r.Pull(ctx, "bench", "1", out, store.PullOptions{})
		require.NoError(b, err)
		b.StopTimer()
		require.NoError(b, os.RemoveAll(out))
		b.StartTimer()
	}
}
