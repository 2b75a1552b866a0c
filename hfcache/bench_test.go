package hfcache

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// BenchmarkWriteSnapshot writes one 256 MiB file: into a fresh cache, and
// again into a cache that has it, with and without its SHA-256 known (a
// rerun hashes the existing blob; without the SHA-256 it also writes and
// hashes a temporary copy first).
func BenchmarkWriteSnapshot(b *testing.B) {
	data := make([]byte, 256<<20)
	r := rand.NewChaCha8([32]byte{7})
	_, _ = r.Read(data)
	sum := sha256Hex(data)
	src := func(known bool) []FileSource {
		f := FileSource{Path: "model.safetensors", Size: int64(len(data)), Content: BytesContent(data)}
		if known {
			f.SHA256 = sum
		}
		return []FileSource{f}
	}
	b.Run("fresh", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			cache := filepath.Join(b.TempDir(), "hub")
			if err := WriteSnapshot(cache, testRepo, testRevision, "main", src(true)); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, known := range []bool{true, false} {
		name := map[bool]string{true: "rerun-sha-known", false: "rerun-sha-unknown"}[known]
		b.Run(name, func(b *testing.B) {
			cache := filepath.Join(b.TempDir(), "hub")
			if err := WriteSnapshot(cache, testRepo, testRevision, "main", src(true)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := WriteSnapshot(cache, testRepo, testRevision, "main", src(known)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
