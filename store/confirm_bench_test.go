package store_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/local"
	"github.com/ckptdev/ckpt/store/object"
)

// BenchmarkConfirmCost measures what push's existence check before
// publishing costs, by Stat (HEAD) of each key and by listing the blob
// folders, on both backends: for a 1 GiB checkpoint (an unchanged re-push
// checks all its keys; a push of the next training step checks only what
// it shares with the last), against the time of those pushes, and for
// checks of many keys in registries of several sizes. Times are medians
// of interleaved rounds, in milliseconds; run it with -benchtime=1x.
func BenchmarkConfirmCost(b *testing.B) {
	ctx := context.Background()
	const rounds = 7
	for _, bk := range []struct {
		name string
		nb   func(testing.TB) backend.Backend
	}{
		{"local", func(tb testing.TB) backend.Backend { return newLocalTB(tb) }},
		{"minio", newMinioTB},
	} {
		b.Run(bk.name+"/1GiB", func(b *testing.B) {
			root := b.TempDir()
			model := synth.ModelOfSize(1<<30, layout.DtypeBF16)
			base := filepath.Join(root, "base")
			require.NoError(b, synth.WriteBase(base, model, 1, testutil.TokenizerDir(b)))
			ckpts, err := synth.WriteRun(filepath.Join(root, "run"), synth.RunSpec{
				Model: model, BaseDir: base, TokenizerDir: testutil.TokenizerDir(b), Seed: 3,
				Steps: []int64{1, 2, 3, 4, 5, 6, 7}, EvalLoss: []float64{1, 1, 1, 1, 1, 1, 1}, FrozenEmbedding: true,
			})
			require.NoError(b, err)
			agePath(b, root)
			be := bk.nb(b)
			ix, err := store.OpenIndex(filepath.Join(b.TempDir(), "index.db"))
			require.NoError(b, err)
			defer ix.Close()
			r, _, err := store.Init(ctx, be, store.Options{Index: ix, Workers: 8})
			require.NoError(b, err)
			first, err := r.Push(ctx, base, store.PushOptions{Name: "m", Version: "1"})
			require.NoError(b, err)
			m, err := r.Manifest(ctx, first.Record.Manifest)
			require.NoError(b, err)
			keys := []string{object.ManifestKey(first.Record.Manifest)}
			for _, id := range m.BlobIDs() {
				keys = append(keys, object.BlobKey(id))
			}
			var again, next, head, head8, list, def []time.Duration
			for i := range rounds {
				start := time.Now()
				_, err := r.Push(ctx, base, store.PushOptions{Name: "m", Version: fmt.Sprint("again-", i)})
				require.NoError(b, err)
				again = append(again, time.Since(start))
				start = time.Now()
				_, err = r.Push(ctx, ckpts[i], store.PushOptions{Name: "run"})
				require.NoError(b, err)
				next = append(next, time.Since(start))
				head = append(head, timeCheck(b, ctx, store.NoCheapStatForTest{Backend: be}, keys, 1<<30))
				head8 = append(head8, timeCheckFanout(b, ctx, store.NoCheapStatForTest{Backend: be}, keys, 1<<30, 1))
				list = append(list, timeCheck(b, ctx, store.NoCheapStatForTest{Backend: be}, keys, 1))
				def = append(def, timeCheck(b, ctx, be, keys, 0))
			}
			b.ReportMetric(float64(len(keys)), "keys")
			b.ReportMetric(median(def), "ms/default")
			b.ReportMetric(median(head8), "ms/head-all-8-workers")
			b.ReportMetric(median(again), "ms/unchanged-re-push")
			b.ReportMetric(median(next), "ms/next-step-push")
			b.ReportMetric(median(head), "ms/head-all")
			b.ReportMetric(median(list), "ms/list-all")
		})
		for _, sz := range []struct{ registry, check int }{{1024, 325}, {16384, 325}, {4096, 4096}, {16384, 4096}} {
			b.Run(fmt.Sprintf("%s/registry-%d/check-%d", bk.name, sz.registry, sz.check), func(b *testing.B) {
				be := bk.nb(b)
				keys := fakeBlobs(b, be, sz.registry)[:sz.check]
				var head, list, def []time.Duration
				for range rounds {
					head = append(head, timeCheck(b, ctx, store.NoCheapStatForTest{Backend: be}, keys, 1<<30))
					list = append(list, timeCheck(b, ctx, store.NoCheapStatForTest{Backend: be}, keys, 1))
					def = append(def, timeCheck(b, ctx, be, keys, 0))
				}
				b.ReportMetric(median(head), "ms/head")
				b.ReportMetric(median(list), "ms/list")
				b.ReportMetric(median(def), "ms/default")
			})
		}
	}
}

// median of ds in milliseconds.
func median(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return ms(s[len(s)/2])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// timeCheck times one existence check of keys (all present).
func timeCheck(b *testing.B, ctx context.Context, be backend.Backend, keys []string, listAt int) time.Duration {
	return timeCheckFanout(b, ctx, be, keys, listAt, 0)
}

// timeCheckFanout is timeCheck with fanout times 8 workers.
func timeCheckFanout(b *testing.B, ctx context.Context, be backend.Backend, keys []string, listAt, fanout int) time.Duration {
	r, err := store.Open(ctx, be, store.Options{Workers: 8})
	require.NoError(b, err)
	start := time.Now()
	missing, err := r.MissingKeysForTest(ctx, keys, listAt, fanout)
	d := time.Since(start)
	require.NoError(b, err)
	require.Empty(b, missing)
	return d
}

// fakeBlobs stores n small objects under blob keys and returns the keys.
func fakeBlobs(b *testing.B, be backend.Backend, n int) []string {
	ctx := context.Background()
	_, _, err := store.Init(ctx, be, store.Options{})
	require.NoError(b, err)
	keys := make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range keys {
		var id object.ID
		_, _ = rand.Read(id[:])
		keys[i] = object.BlobKey(id)
		g.Go(func() error { return be.Put(gctx, keys[i], bytesReader("x"), 1) })
	}
	require.NoError(b, g.Wait())
	return keys
}

func newLocalTB(tb testing.TB) backend.Backend {
	b, err := local.New(filepath.Join(tb.TempDir(), "registry"))
	require.NoError(tb, err)
	return b
}

// agePath sets every file's mtime an hour back (see age).
func agePath(tb testing.TB, dir string) {
	old := time.Now().Add(-time.Hour)
	require.NoError(tb, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	}))
}

func bytesReader(s string) io.Reader { return strings.NewReader(s) }
