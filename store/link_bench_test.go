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

// BenchmarkPullLinkVsCopy measures `pull --link` of a warm model (every
// file already in the file cache, each checked in full before it is
// linked) against `cp -r` of the same folder, in the same run, and reports
// the ratio of their median times (the README's target is <= 0.05), and
// what the check costs: hashing every entry once (check-ms, and check/cp).
// The
// model is 384 MiB of bf16 weights plus GPT-2's config and tokenizer;
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
	fc, err := store.OpenFileCache(filepath.Join(work, "files"), 4*size)
	require.NoError(b, err)
	r, err := store.Open(ctx, backend, store.Options{Index: ix, FileCache: fc})
	require.NoError(b, err)
	_, err = r.Push(ctx, model, store.PushOptions{Name: "bench", Version: "1"})
	require.NoError(b, err)
	_, err = r.Pull(ctx, "bench", "1", filepath.Join(work, "warm"), store.PullOptions{Link: true})
	require.NoError(b, err)

	var links, checks, copies []time.Duration
	b.ResetTimer()
	for i := range b.N {
		out := filepath.Join(work, fmt.Sprint("link-", i))
		start := time.Now()
		_, err := r.Pull(ctx, "bench", "1", out, store.PullOptions{Link: true})
		links = append(links, time.Since(start))
		require.NoError(b, err)

		b.StopTimer()
		start = time.Now()
		require.NoError(b, fc.HashEntries(ctx))
		checks = append(checks, time.Since(start))
		dst := filepath.Join(work, fmt.Sprint("cp-", i))
		start = time.Now()
		require.NoError(b, exec.Command("cp", "-r", model, dst).Run())
		copies = append(copies, time.Since(start))
		require.NoError(b, os.RemoveAll(dst))
		require.NoError(b, os.RemoveAll(out))
		b.StartTimer()
	}
	b.StopTimer()
	link, check, cp := medianDuration(links), medianDuration(checks), medianDuration(copies)
	b.ReportMetric(float64(size)/(1<<20), "MiB")
	b.ReportMetric(float64(link.Microseconds())/1000, "link-ms")
	b.ReportMetric(float64(check.Microseconds())/1000, "check-ms")
	b.ReportMetric(float64(cp.Microseconds())/1000, "cp-ms")
	b.ReportMetric(link.Seconds()/cp.Seconds(), "link/cp")
	// The check's share: hashing every entry once, against cp -r.
	b.ReportMetric(check.Seconds()/cp.Seconds(), "check/cp")
}

func medianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
