//go:build linux

package store_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
)

// BenchmarkPullLinkVsCopy measures `pull --link` of a model pulled once
// before on this machine against `cp -r` of the same folder, in the same
// run, and reports the ratio of their median times (the README's target is
// <= 0.05):
//
//   - after-plain: the model was pulled once, plainly, into a fresh content
//     cache; the --link pull links the plain pull's files (their seals were
//     made when the plain pull fed the cache).
//   - after-link: the model was pulled with --link before (a warm cache).
//   - after-deleted-pull: the model was pulled plainly, and that folder
//     deleted: unlinking changed the entries' ctime, so the --link pull
//     hashes each entry once (what every link cost before seals).
//
// It also reports what hashing every entry once costs against cp -r
// (check/cp): what each link cost when every entry was hashed before every
// link. The pulled folders are kept until the end: deleting one changes
// its entries' ctime, and the next link then hashes them once again.
// The model is 384 MiB of bf16 weights plus GPT-2's config and tokenizer;
// CKPT_BENCH_LINK_MIB changes the size.
//
//	go test -run '^$' -bench PullLinkVsCopy -benchtime 5x ./store/
func BenchmarkPullLinkVsCopy(b *testing.B) {
	mib := int64(384)
	if v := os.Getenv("CKPT_BENCH_LINK_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(b, err)
		mib = n
	}
	if _, err := exec.LookPath("cp"); err != nil {
		b.Skip("cp is not installed")
	}
	ctx := context.Background()
	work := b.TempDir()
	model := filepath.Join(work, "model")
	require.NoError(b, synth.WriteBase(model, synth.ModelOfSize(mib<<20, layout.DtypeBF16), 1, testutil.TokenizerDir(b)))
	size := int64(0)
	for _, data := range testutil.ReadTree(b, model) {
		size += int64(len(data))
	}
	_, backend, ix := testutil.LocalRegistry(b, 0)
	r, err := store.Open(ctx, backend, store.Options{Index: ix})
	require.NoError(b, err)
	_, err = r.Push(ctx, model, store.PushOptions{Name: "bench", Version: "1"})
	require.NoError(b, err)

	// open gives a registry with a fresh content cache and index.
	open := func(b *testing.B, dir string) (*store.Registry, *store.ContentCache) {
		cache, err := store.OpenContentCache(filepath.Join(dir, "content"), 4*size)
		require.NoError(b, err)
		ix, err := store.OpenIndex(filepath.Join(dir, "index.db"))
		require.NoError(b, err)
		b.Cleanup(func() { ix.Close() })
		r, err := store.Open(ctx, backend, store.Options{Index: ix, Cache: cache})
		require.NoError(b, err)
		return r, cache
	}
	cpOnce := func(b *testing.B, i int) time.Duration {
		dst := filepath.Join(work, fmt.Sprint("cp-", i))
		start := time.Now()
		require.NoError(b, exec.Command("cp", "-r", model, dst).Run())
		d := time.Since(start)
		require.NoError(b, os.RemoveAll(dst))
		return d
	}
	linkOnce := func(b *testing.B, r *store.Registry, out string) time.Duration {
		start := time.Now()
		res, err := r.Pull(ctx, "bench", "1", out, store.PullOptions{Link: true})
		d := time.Since(start)
		require.NoError(b, err)
		require.Equal(b, len(testutil.ReadTree(b, model)), res.Linked[store.LinkHardlink]+res.Linked[store.LinkReflink], "every file linked")
		return d
	}
	report := func(b *testing.B, links, copies []time.Duration) {
		link, cp := medianDuration(links), medianDuration(copies)
		b.ReportMetric(float64(size)/(1<<20), "MiB")
		b.ReportMetric(float64(link.Microseconds())/1000, "link-ms")
		b.ReportMetric(float64(cp.Microseconds())/1000, "cp-ms")
		b.ReportMetric(link.Seconds()/cp.Seconds(), "link/cp")
	}

	b.Run("after-plain", func(b *testing.B) {
		var links, copies []time.Duration
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			dir := filepath.Join(work, fmt.Sprint("after-plain-", i))
			r, _ := open(b, dir)
			_, err := r.Pull(ctx, "bench", "1", filepath.Join(dir, "plain"), store.PullOptions{})
			require.NoError(b, err)
			b.StartTimer()
			links = append(links, linkOnce(b, r, filepath.Join(dir, "linked")))
			b.StopTimer()
			copies = append(copies, cpOnce(b, i))
			require.NoError(b, os.RemoveAll(dir))
			b.StartTimer()
		}
		b.StopTimer()
		report(b, links, copies)
	})

	b.Run("after-deleted-pull", func(b *testing.B) {
		var links, copies []time.Duration
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			dir := filepath.Join(work, fmt.Sprint("after-deleted-", i))
			r, _ := open(b, dir)
			_, err := r.Pull(ctx, "bench", "1", filepath.Join(dir, "plain"), store.PullOptions{})
			require.NoError(b, err)
			require.NoError(b, os.RemoveAll(filepath.Join(dir, "plain")))
			b.StartTimer()
			links = append(links, linkOnce(b, r, filepath.Join(dir, "linked")))
			b.StopTimer()
			copies = append(copies, cpOnce(b, i))
			require.NoError(b, os.RemoveAll(dir))
			b.StartTimer()
		}
		b.StopTimer()
		report(b, links, copies)
	})

	b.Run("after-link", func(b *testing.B) {
		dir := filepath.Join(work, "after-link")
		r, cache := open(b, dir)
		_, err := r.Pull(ctx, "bench", "1", filepath.Join(dir, "warm"), store.PullOptions{Link: true})
		require.NoError(b, err)
		var links, checks, copies []time.Duration
		b.ResetTimer()
		for i := range b.N {
			links = append(links, linkOnce(b, r, filepath.Join(dir, fmt.Sprint("link-", i))))
			b.StopTimer()
			start := time.Now()
			require.NoError(b, cache.HashEntries(ctx))
			checks = append(checks, time.Since(start))
			copies = append(copies, cpOnce(b, i))
			b.StartTimer()
		}
		b.StopTimer()
		report(b, links, copies)
		// What a full hash of every entry before every link would add.
		b.ReportMetric(medianDuration(checks).Seconds()/medianDuration(copies).Seconds(), "check/cp")
		require.NoError(b, os.RemoveAll(dir))
	})
}

func medianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
