package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/restic/chunker"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/store/object"
)

// BenchmarkChunkingNonSafetensors is the measurement behind cutting large
// files other than safetensors at fixed 8 MiB offsets rather than with
// content-defined chunking (restic's Rabin chunker, 512 KiB-8 MiB, as the
// peer). Such files are torch.save zips (optimizer.pt, scheduler.pt,
// rng_state.pth, legacy pytorch_model.bin) and big tokenizer files. It
// reports, for two consecutive optimizer.pt files and for one with 37 bytes
// inserted near its start, the fraction of bytes each method finds already
// stored, and each method's throughput.
func BenchmarkChunkingNonSafetensors(b *testing.B) {
	dir := b.TempDir()
	m := synth.DemoModel()
	ckpts, err := synth.WriteRun(filepath.Join(dir, "run"), synth.RunSpec{
		Model: m, Seed: 3, Steps: []int64{100, 200}, ResumeState: true, TokenizerDir: filepath.Join("..", "testdata", "gpt2"),
	})
	require.NoError(b, err)
	first, err := os.ReadFile(filepath.Join(ckpts[0], "optimizer.pt"))
	require.NoError(b, err)
	second, err := os.ReadFile(filepath.Join(ckpts[1], "optimizer.pt"))
	require.NoError(b, err)
	shifted := append(append(append([]byte(nil), first[:100]...), bytes.Repeat([]byte{'x'}, 37)...), first[100:]...)

	fixed := func(data []byte) map[[32]byte]int64 {
		out := map[[32]byte]int64{}
		for off := 0; off < len(data); off += object.MaxChunkSize {
			end := min(off+object.MaxChunkSize, len(data))
			out[sha256.Sum256(data[off:end])] = int64(end - off)
		}
		return out
	}
	cdc := func(data []byte) map[[32]byte]int64 {
		out := map[[32]byte]int64{}
		c := chunker.New(bytes.NewReader(data), chunker.Pol(0x3DA3358B4DC173))
		buf := make([]byte, chunker.MaxSize)
		for {
			ch, err := c.Next(buf)
			if errors.Is(err, io.EOF) {
				return out
			}
			require.NoError(b, err)
			out[sha256.Sum256(ch.Data)] = int64(ch.Length)
		}
	}
	shared := func(cut func([]byte) map[[32]byte]int64, a, bb []byte) float64 {
		have := cut(a)
		var n int64
		for id, size := range cut(bb) {
			if _, ok := have[id]; ok {
				n += size
			}
		}
		return float64(n) / float64(len(bb))
	}
	for _, method := range []struct {
		name string
		cut  func([]byte) map[[32]byte]int64
	}{{"fixed-8MiB", fixed}, {"cdc-rabin", cdc}} {
		b.Run(method.name, func(b *testing.B) {
			start := time.Now()
			for range b.N {
				method.cut(first)
			}
			b.ReportMetric(float64(len(first)*b.N)/time.Since(start).Seconds()/1e6, "MB/s")
			b.ReportMetric(shared(method.cut, first, second), "dedupe-next-step")
			b.ReportMetric(shared(method.cut, first, shifted), "dedupe-shifted")
		})
	}
}
