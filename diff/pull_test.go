package diff_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/diff"
	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/refs"
)

// pulledFile is what both views say of one file.
type pulledFile struct {
	Size         int64
	Role, Digest string
	From         string
}

// sideFiles is a registry side's files, each with where it comes from.
func sideFiles(s *diff.Side, runnableOnly bool) map[string]pulledFile {
	out := map[string]pulledFile{}
	for _, f := range s.Manifest.Files {
		if runnableOnly && !layout.Role(f.Role).Runnable() {
			continue
		}
		from := s.Label
		if b, ok := s.Inherited[f.Path]; ok {
			from = b
		}
		out[f.Path] = pulledFile{Size: f.Size, Role: f.Role, Digest: f.Digest, From: from}
	}
	return out
}

// pulledFiles is what a pull wrote: the files of the folder (their digests
// read back as push would record them) with the source pull reports.
func pulledFiles(t *testing.T, res *store.PullResult, dir string) map[string]pulledFile {
	t.Helper()
	m, err := store.ScanFolder(context.Background(), dir)
	require.NoError(t, err)
	from := map[string]string{}
	for _, f := range res.Files {
		from[f.Path] = f.From
	}
	out := map[string]pulledFile{}
	for _, f := range m.Files {
		require.Contains(t, from, f.Path, "pull wrote %s without reporting it", f.Path)
		out[f.Path] = pulledFile{Size: f.Size, Role: f.Role, Digest: f.Digest, From: from[f.Path]}
	}
	assert.Len(t, out, len(res.Files), "pull reported files it did not write")
	return out
}

// TestRegistrySideIsWhatPullWrites: diff's view of a registry checkpoint is
// the folder pull writes of it (paths, sizes, digests, and which checkpoint
// of the base chain each file comes from), along a two-level chain where
// each level gives part of the files, and after the base's own ref is
// removed while another version of its NAME does not verify (the chain
// then stops at the base, whose manifest still serves).
func TestRegistrySideIsWhatPullWrites(t *testing.T) {
	ctx := context.Background()
	r, b, _ := testutil.LocalRegistry(t, 2)
	base, ckpts := writeRun(t, 10, func(s *synth.RunSpec) { s.WeightsOnly = true })
	push(t, r, base, store.PushOptions{Name: "gpt2", Version: "1"})
	push(t, r, base, store.PushOptions{Name: "gpt2", Version: "2"})
	// mid has weights and a config of its own; its tokenizer and
	// generation config come from gpt2@1.
	mid := copyDir(t, ckpts[0])
	cfg, err := os.ReadFile(filepath.Join(base, "config.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(mid, "config.json"), bytes.Replace(cfg, []byte("{"), []byte(`{"mid": true,`), 1), 0o644))
	push(t, r, mid, store.PushOptions{Name: "mid", Version: "1", Base: "gpt2@1"})
	// wo has only weights: config from mid@1, the rest from gpt2@1.
	push(t, r, ckpts[1], store.PushOptions{Name: "wo", Base: "mid@1"})

	check := func(t *testing.T, wantFrom map[string]string) {
		t.Helper()
		side := fromRegistry(t, r, "wo", "200")
		for path, from := range wantFrom {
			assert.Equal(t, from, sideFiles(side, false)[path].From, path)
		}
		for _, full := range []bool{false, true} {
			out := filepath.Join(t.TempDir(), "model")
			res, err := r.Pull(ctx, "wo", "200", out, store.PullOptions{Full: full})
			require.NoError(t, err)
			assert.Equal(t, sideFiles(side, !full), pulledFiles(t, res, out), "full=%v", full)
		}
	}
	want := map[string]string{
		"model.safetensors":      "wo@200",
		"trainer_state.json":     "wo@200",
		"config.json":            "mid@1",
		"generation_config.json": "gpt2@1",
		"tokenizer.json":         "gpt2@1",
	}
	t.Run("Chain", func(t *testing.T) { check(t, want) })

	// gpt2@1's ref goes, and gpt2@2's is damaged: mid@1's record still
	// keeps gpt2@1's manifest, which serves; nothing more is known.
	_, _, err = r.Remove(ctx, "gpt2", "1")
	require.NoError(t, err)
	key := refs.VersionKey("gpt2", "2")
	rc, err := b.Get(ctx, key, 0, -1)
	require.NoError(t, err)
	var data bytes.Buffer
	_, err = data.ReadFrom(rc)
	rc.Close()
	require.NoError(t, err)
	damaged := bytes.Replace(data.Bytes(), []byte(`"version": "2"`), []byte(`"version": "3"`), 1)
	require.NotEqual(t, data.Bytes(), damaged)
	require.NoError(t, b.Delete(ctx, key))
	require.NoError(t, b.Put(ctx, key, bytes.NewReader(damaged), int64(len(damaged))))
	t.Run("BaseRefGone", func(t *testing.T) { check(t, want) })
}
