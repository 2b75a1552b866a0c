package store_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/local"
)

// writeObjectFile writes a local-backend object directly (no fsync): only
// for building large benchmark registries quickly.
func writeObjectFile(tb testing.TB, root, key string, data []byte) {
	p := filepath.Join(root, filepath.FromSlash(key))
	require.NoError(tb, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(tb, os.WriteFile(p, data, 0o444))
}

// buildScaleRegistry makes a local registry of names×versions checkpoints,
// each referencing blobsPer tiny blobs of its own plus one shared blob, with
// generated metadata (no real files).
func buildScaleRegistry(tb testing.TB, names, versions, blobsPer int) (string, *store.Registry) {
	tb.Helper()
	root := filepath.Join(tb.TempDir(), "registry")
	b, err := local.New(root)
	require.NoError(tb, err)
	r, _, err := store.Init(context.Background(), b, store.Options{})
	require.NoError(tb, err)
	shared := []byte("shared tokenizer")
	sharedID := store.Hash(shared)
	writeObjectFile(tb, root, store.BlobKey(sharedID), store.EncodeObject(nil, shared, store.EncodeHint{}))
	pushed := time.Now().Add(-48 * time.Hour)
	var content [16]byte
	for n := range names {
		name := fmt.Sprintf("team/run-%04d", n)
		for v := range versions {
			m := store.Manifest{Version: store.ManifestVersion}
			var chunks []store.Chunk
			for k := range blobsPer {
				binary.LittleEndian.PutUint64(content[:8], uint64(n*versions+v))
				binary.LittleEndian.PutUint64(content[8:], uint64(k))
				id := store.Hash(content[:])
				writeObjectFile(tb, root, store.BlobKey(id), store.EncodeObject(nil, content[:], store.EncodeHint{}))
				chunks = append(chunks, store.Chunk{ID: id, Offset: int64(k * len(content)), Size: int64(len(content))})
			}
			m.Files = []store.File{
				{Path: "model.safetensors", Size: int64(blobsPer * len(content)), Mode: 0o644, Role: "weights", Digest: "x", Chunks: chunks},
				{Path: "tokenizer.json", Size: int64(len(shared)), Mode: 0o644, Role: "tokenizer", Digest: "sha256:" + sharedID.String(),
					Chunks: []store.Chunk{{ID: sharedID, Size: int64(len(shared))}}},
			}
			data, mid, err := m.Encode()
			require.NoError(tb, err)
			writeObjectFile(tb, root, store.ManifestKey(mid), store.EncodeObject(nil, data, store.EncodeHint{Text: true}))
			step := int64((v + 1) * 100)
			rec := store.Record{Name: name, Version: strconv.FormatInt(step, 10), Manifest: mid, Pushed: pushed, Step: step,
				Metrics: map[string]float64{"eval_loss": 2 + float64((v*7919)%versions)/float64(versions)}}
			recData, err := json.Marshal(rec)
			require.NoError(tb, err)
			writeObjectFile(tb, root, "refs/"+name+"/v/"+rec.Version, recData)
		}
	}
	// Age every object past the grace period, as a registry in use would be.
	old := time.Now().Add(-24 * time.Hour)
	require.NoError(tb, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(p, ".tmp") {
			return err
		}
		return os.Chtimes(p, old, old)
	}))
	return root, r
}

// peakRSS is the process's peak resident set (VmHWM), in MiB.
func peakRSS() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkRetentionAndGCScale measures retention planning and gc over a
// registry of generated metadata. CKPT_SCALE=full gives the size:
// 10,000 checkpoints and 200,000 blobs (100 names × 100 versions × 20
// blobs); the default is a tenth of it, and /objects=2x doubles it, so the
// ratio of the two shows how the cost grows.
func BenchmarkRetentionAndGCScale(b *testing.B) {
	names := 10
	if os.Getenv("CKPT_SCALE") == "full" {
		names = 100
	}
	for _, mult := range []int{1, 2} {
		b.Run(fmt.Sprintf("checkpoints=%d", names*mult*100), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				_, r := buildScaleRegistry(b, names*mult, 100, 20)
				ctx := context.Background()
				runtime.GC()
				b.StartTimer()

				start := time.Now()
				policy := retention.Policy{KeepLast: 5, KeepBest: 1}
				deleted := 0
				nameList, err := r.Names(ctx)
				require.NoError(b, err)
				for _, n := range nameList {
					plan, err := r.RetentionPlan(ctx, n, policy)
					require.NoError(b, err)
					removed, err := r.ApplyPlan(ctx, n, plan)
					require.NoError(b, err)
					deleted += len(removed)
				}
				planTime := time.Since(start)
				start = time.Now()
				res, err := r.GC(ctx, store.GCOptions{})
				require.NoError(b, err)
				gcTime := time.Since(start)
				b.ReportMetric(planTime.Seconds(), "plan+apply-s")
				b.ReportMetric(gcTime.Seconds(), "gc-s")
				b.ReportMetric(float64(res.DeletedBlobs), "blobs-deleted")
				b.ReportMetric(float64(deleted), "ckpts-deleted")
				b.ReportMetric(peakRSS(), "peak-rss-MiB")
				require.Equal(b, deleted*20, res.DeletedBlobs)
			}
		})
	}
}
