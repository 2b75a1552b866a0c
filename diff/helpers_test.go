package diff_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/diff"
	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/refs"
)

// newRegistry makes an empty registry on a local folder with its own index.
func newRegistry(t *testing.T) *store.Registry {
	r, _, _ := testutil.LocalRegistry(t, 2)
	return r
}

// writeRun writes a base model and a tiny run fine-tuning it (steps 100,
// 200, 300) and returns the base folder and the checkpoint folders.
func writeRun(t *testing.T, seed uint64, mutate func(*synth.RunSpec)) (base string, ckpts []string) {
	t.Helper()
	spec := synth.RunSpec{Seed: seed, Steps: []int64{100, 200, 300}}
	if mutate != nil {
		mutate(&spec)
	}
	return testutil.TinyRun(t, spec)
}

func push(t *testing.T, r *store.Registry, dir string, opts store.PushOptions) refs.Record {
	t.Helper()
	res, err := r.Push(context.Background(), dir, opts)
	require.NoError(t, err)
	return res.Record
}

func fromRegistry(t *testing.T, r *store.Registry, name, ref string) *diff.Side {
	t.Helper()
	s, err := diff.FromRegistry(context.Background(), r, name, ref)
	require.NoError(t, err)
	return s
}

func fromFolder(t *testing.T, dir string) *diff.Side {
	t.Helper()
	s, err := diff.FromFolder(context.Background(), dir)
	require.NoError(t, err)
	return s
}

func compare(t *testing.T, a, b *diff.Side, opts diff.Options) *diff.Report {
	t.Helper()
	rep, err := diff.Compare(context.Background(), a, b, opts)
	require.NoError(t, err)
	return rep
}

// copyDir copies a checkpoint folder to a fresh temporary one.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
	return dst
}

// editJSON rewrites a JSON file through edit, numbers kept as written.
func editJSON(t *testing.T, path string, edit func(doc map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	require.NoError(t, dec.Decode(&doc))
	edit(doc)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(doc))
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

// fileByPath returns the change of one path.
func fileByPath(t *testing.T, rep *diff.Report, path string) diff.FileChange {
	t.Helper()
	for _, fc := range rep.Files {
		if fc.Path == path {
			return fc
		}
	}
	t.Fatalf("no file %s in the report", path)
	return diff.FileChange{}
}

// tensorKinds maps every tensor name to its kind.
func tensorKinds(rep *diff.Report) map[string]diff.Kind {
	out := map[string]diff.Kind{}
	for _, tc := range rep.Tensors {
		out[tc.Name] = tc.Kind
	}
	return out
}

// read is one call to a FileReader.
type read struct {
	path string
	role string
	n    int64
}

// countingReader records every read of the side it wraps.
type countingReader struct {
	inner diff.FileReader
	mu    sync.Mutex
	reads []read
}

func (c *countingReader) ReadRange(ctx context.Context, f *manifest.File, off, n int64) ([]byte, error) {
	c.mu.Lock()
	c.reads = append(c.reads, read{f.Path, f.Role, n})
	c.mu.Unlock()
	return c.inner.ReadRange(ctx, f, off, n)
}

// count wraps s's reader and returns the recorder.
func count(s *diff.Side) *countingReader {
	c := &countingReader{inner: s.Data}
	s.Data = c
	return c
}

// bytesOfRole sums the bytes read from files of the role.
func (c *countingReader) bytesOfRole(role layout.Role) int64 {
	var n int64
	for _, r := range c.reads {
		if r.role == string(role) {
			n += r.n
		}
	}
	return n
}

// writeSafetensors writes a safetensors file of the given tensors (their
// data in order) into dir.
func writeSafetensors(t *testing.T, dir, name string, tensors []layout.TensorInfo, data [][]byte) {
	t.Helper()
	_, err := layout.PackTensors(tensors)
	require.NoError(t, err)
	header, err := layout.EncodeSafetensorsHeader(tensors, map[string]string{"format": "pt"})
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	out := header
	for _, d := range data {
		out = append(out, d...)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), out, 0o644))
}
