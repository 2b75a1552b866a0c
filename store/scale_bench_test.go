package store_test

import (
	"bytes"
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
	"golang.org/x/sync/errgroup"

	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/local"
	"github.com/ckptdev/ckpt/store/backend/mem"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// objectWriter puts an object without the backend's safety steps (no
// fsync), only to build large benchmark registries quickly.
type objectWriter func(key string, data []byte)

// localWriter writes local-backend objects directly as files.
func localWriter(tb testing.TB, root string) objectWriter {
	return func(key string, data []byte) {
		p := filepath.Join(root, filepath.FromSlash(key))
		require.NoError(tb, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(tb, os.WriteFile(p, data, 0o444))
	}
}

// buildScaleRegistry makes a local registry of names×versions checkpoints,
// each referencing blobsPer tiny blobs of its own plus one shared blob, with
// generated metadata (no real files).
func buildScaleRegistry(tb testing.TB, kind string, names, versions, blobsPer int) *store.Registry {
	tb.Helper()
	var b backend.Backend
	var writeObjectFile func(tb testing.TB, root, key string, data []byte)
	root := filepath.Join(tb.TempDir(), "registry")
	var pending []func() error
	switch kind {
	case "minio":
		b = newMinioTB(tb)
		writeObjectFile = func(_ testing.TB, _, key string, data []byte) {
			pending = append(pending, func() error {
				return b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)))
			})
		}
	case "memory":
		// Objects are stamped a day old as they are written; the clock is
		// real again once the registry is built (locks must be fresh).
		mb := mem.New()
		old := time.Now().Add(-24 * time.Hour)
		mb.SetClock(func() time.Time { return old })
		defer mb.SetClock(nil)
		b = mb
		writeObjectFile = func(tb testing.TB, _, key string, data []byte) {
			require.NoError(tb, mb.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))))
		}
	default:
		lb, err := local.New(root)
		require.NoError(tb, err)
		b = lb
		w := localWriter(tb, root)
		writeObjectFile = func(_ testing.TB, _, key string, data []byte) { w(key, data) }
	}
	r, _, err := store.Init(context.Background(), b, store.Options{})
	require.NoError(tb, err)
	shared := []byte("shared tokenizer")
	sharedID := object.Hash(shared)
	writeObjectFile(tb, root, object.BlobKey(sharedID), object.Encode(nil, shared, object.EncodeHint{}))
	pushed := time.Now().Add(-48 * time.Hour)
	var content [16]byte
	for n := range names {
		name := fmt.Sprintf("team/run-%04d", n)
		for v := range versions {
			m := manifest.Manifest{Version: manifest.Version}
			var chunks []manifest.Chunk
			for k := range blobsPer {
				binary.LittleEndian.PutUint64(content[:8], uint64(n*versions+v))
				binary.LittleEndian.PutUint64(content[8:], uint64(k))
				id := object.Hash(content[:])
				writeObjectFile(tb, root, object.BlobKey(id), object.Encode(nil, content[:], object.EncodeHint{}))
				chunks = append(chunks, manifest.Chunk{ID: id, Offset: int64(k * len(content)), Size: int64(len(content))})
			}
			m.Files = []manifest.File{
				{Path: "model.safetensors", Size: int64(blobsPer * len(content)), Mode: 0o644, Role: "weights", Digest: "x", Chunks: chunks},
				{Path: "tokenizer.json", Size: int64(len(shared)), Mode: 0o644, Role: "tokenizer", Digest: "sha256:" + sharedID.String(),
					Chunks: []manifest.Chunk{{ID: sharedID, Size: int64(len(shared))}}},
			}
			data, mid, err := m.Encode()
			require.NoError(tb, err)
			writeObjectFile(tb, root, object.ManifestKey(mid), object.Encode(nil, data, object.EncodeHint{Text: true}))
			step := int64((v + 1) * 100)
			rec := refs.Record{Name: name, Version: strconv.FormatInt(step, 10), Manifest: mid, Pushed: pushed, Step: step,
				Metrics: map[string]float64{"eval_loss": 2 + float64((v*7919)%versions)/float64(versions)}}
			recData, err := json.Marshal(rec)
			require.NoError(tb, err)
			writeObjectFile(tb, root, "refs/"+name+"/v/"+rec.Version, recData)
		}
	}
	var g errgroup.Group
	g.SetLimit(16)
	for _, put := range pending {
		g.Go(put)
	}
	require.NoError(tb, g.Wait())
	if kind == "local" {
		// Age every object past the grace period, as a registry in use would be.
		old := time.Now().Add(-24 * time.Hour)
		require.NoError(tb, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.Contains(p, ".tmp") {
				return err
			}
			return os.Chtimes(p, old, old)
		}))
	}
	return r
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
// registry of generated metadata, on the local backend and on an in-memory
// one (which shows gc's own cost without the file system's). CKPT_SCALE=full
// gives the size: 10,000 checkpoints and 200,000 blobs (100 names ×
// 100 versions × 20 blobs); the default is a tenth of it. Each size is also
// run doubled, so the ratio of the two shows how the cost grows.
func BenchmarkRetentionAndGCScale(b *testing.B) {
	names := 10
	if os.Getenv("CKPT_SCALE") == "full" {
		names = 100
	}
	for _, kind := range []string{"local", "memory", "minio"} {
		n := names
		if kind == "minio" {
			n = max(1, names/10) // a smaller one: every object is an HTTP request
		}
		for _, mult := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/checkpoints=%d", kind, n*mult*100), func(b *testing.B) {
				benchScale(b, kind, n*mult)
			})
		}
	}
}

func benchScale(b *testing.B, kind string, names int) {
	for range b.N {
		b.StopTimer()
		r := buildScaleRegistry(b, kind, names, 100, 20)
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
		// MinIO's objects are fresh: no grace there.
		res, err := r.GC(ctx, store.GCOptions{NoGrace: kind == "minio"})
		require.NoError(b, err)
		gcTime := time.Since(start)
		b.ReportMetric(planTime.Seconds(), "plan+apply-s")
		b.ReportMetric(gcTime.Seconds(), "gc-s")
		b.ReportMetric(float64(res.DeletedBlobs), "blobs-deleted")
		b.ReportMetric(float64(deleted), "ckpts-deleted")
		b.ReportMetric(peakRSS(), "peak-rss-MiB")
		require.Equal(b, deleted*20, res.DeletedBlobs)
	}
}
