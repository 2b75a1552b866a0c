package hfbridge_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/hfcache"
	"github.com/ckptdev/ckpt/hfcache/hfbridge"
	"github.com/ckptdev/ckpt/hfcache/hfcachetest"
	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/refs"
)

func tinyBase(t *testing.T, seed uint64) string {
	t.Helper()
	base, _ := testutil.TinyRun(t, synth.RunSpec{Seed: seed, Steps: []int64{100}, EvalLoss: []float64{1.5}})
	return base
}

// TestImport imports a snapshot of a hand-built Hugging Face cache (blobs
// named as the Hub names them, relative links, refs/main) on every
// backend: the branch resolves to its commit, the record says which repo
// and commit, the version defaults to the commit's first 12 hex digits,
// a second import is a no-op, and what is missing is a typed error.
func TestImport(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r, other := newRegistry(t, nb(t))
			base := tinyBase(t, 7)
			cache := filepath.Join(t.TempDir(), "hub")
			commit := hfcachetest.Commit("gpt2-main")
			hfcachetest.Build(t, cache, "openai-community/gpt2", commit, "main", base)
			files := testutil.ReadTree(t, base)

			res, err := hfbridge.Import(ctx, r, hfbridge.ImportOptions{CacheDir: cache, Repo: "openai-community/gpt2", Push: store.PushOptions{Name: "gpt2"}})
			require.NoError(t, err)
			assert.Equal(t, commit, res.Snapshot.Commit)
			assert.Equal(t, "main", res.Snapshot.Ref)
			rec := res.Push.Record
			assert.Equal(t, commit[:12], rec.Version)
			assert.Equal(t, &refs.HFOrigin{Repo: "openai-community/gpt2", Revision: commit}, rec.HF)
			assert.Equal(t, len(files), res.Push.Files)
			assert.Equal(t, len(files), res.Push.Symlinked)

			got, err := other.Resolve(ctx, "gpt2", "latest")
			require.NoError(t, err)
			assert.Equal(t, rec.HF, got.HF, "the origin is in the ref another machine reads")

			again, err := hfbridge.Import(ctx, r, hfbridge.ImportOptions{CacheDir: cache, Repo: "openai-community/gpt2", Revision: commit, Push: store.PushOptions{Name: "gpt2"}})
			require.NoError(t, err)
			assert.True(t, again.Push.Unchanged, "the same commit again is a no-op")

			out := filepath.Join(t.TempDir(), "out")
			_, err = other.Pull(ctx, "gpt2", "latest", out, store.PullOptions{Full: true})
			require.NoError(t, err)
			assert.Equal(t, files, testutil.ReadTree(t, out))

			_, err = hfbridge.Import(ctx, r, hfbridge.ImportOptions{CacheDir: cache, Repo: "openai-community/gpt3", Push: store.PushOptions{Name: "gpt3"}})
			var notFound *hfcache.RepoNotFoundError
			require.ErrorAs(t, err, &notFound)
			assert.ErrorIs(t, err, hfcache.ErrNotCached)
			_, err = hfbridge.Import(ctx, r, hfbridge.ImportOptions{CacheDir: cache, Repo: "openai-community/gpt2", Revision: "v2", Push: store.PushOptions{Name: "gpt2"}})
			assert.ErrorIs(t, err, hfcache.ErrNotCached)
			names, err := r.Names(ctx)
			require.NoError(t, err)
			assert.Equal(t, []string{"gpt2"}, names, "a failed import records nothing")
		})
	}
}

// TestPullToCache writes checkpoints into a Hugging Face cache on every
// backend and reads the cache back with FindSnapshot: the snapshot is
// named RevisionFor(manifest), refs/main names it, every file links to a
// blob named by the SHA-256 of its content, a second pull changes
// nothing, and a blob someone replaced with other content of the same
// size is written again.
func TestPullToCache(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r, other := newRegistry(t, nb(t))
			base := tinyBase(t, 11)
			files := testutil.ReadTree(t, base)
			src := filepath.Join(t.TempDir(), "hub")
			commit := hfcachetest.Commit("base")
			hfcachetest.Build(t, src, "org/base", commit, "main", base)
			_, err := hfbridge.Import(ctx, r, hfbridge.ImportOptions{CacheDir: src, Repo: "org/base", Push: store.PushOptions{Name: "base"}})
			require.NoError(t, err)
			_, err = r.Push(ctx, base, store.PushOptions{Name: "team/plain", Version: "3"})
			require.NoError(t, err)

			cache := filepath.Join(t.TempDir(), "hub")
			res, err := hfbridge.PullToCache(ctx, other, "base", "latest", hfbridge.PullOptions{CacheDir: cache})
			require.NoError(t, err)
			assert.Equal(t, "org/base", res.Repo, "the repo id recorded at import is the default")
			assert.Equal(t, hfcache.RevisionFor(res.Record.Manifest), res.Revision)
			assert.True(t, hfcache.IsCommitHash(res.Revision))
			assert.Equal(t, "main", res.Branch)

			m, err := other.Manifest(ctx, res.Record.Manifest)
			require.NoError(t, err)
			multi := 0
			for _, f := range m.Files {
				if len(f.Chunks) > 1 {
					multi++
				}
			}
			require.NotZero(t, multi, "some file has several chunks, so the Verifier path is taken")

			snap := findAll(t, cache, "org/base", "main", files)
			assert.Equal(t, res.Revision, snap.Commit)
			assert.Equal(t, filepath.Join(cache, "models--org--base", "snapshots", res.Revision), res.SnapshotDir)
			for _, f := range snap.Files {
				target, err := os.Readlink(filepath.Join(snap.Dir, filepath.FromSlash(f.Path)))
				require.NoError(t, err)
				assert.False(t, filepath.IsAbs(target), "%s links relatively", f.Path)
				assert.Equal(t, sha256Hex(files[f.Path]), filepath.Base(f.Blob), "%s: blob named by SHA-256", f.Path)
			}

			// Idempotent: nothing is rewritten.
			before := mtimes(t, filepath.Join(cache, "models--org--base"))
			_, err = hfbridge.PullToCache(ctx, other, "base", "latest", hfbridge.PullOptions{CacheDir: cache})
			require.NoError(t, err)
			assert.Equal(t, before, mtimes(t, filepath.Join(cache, "models--org--base")), "a second pull writes nothing")

			// A blob replaced by other bytes of the same size is not believed.
			victim := snap.Files[0]
			for _, f := range snap.Files {
				if f.Path == "model.safetensors" {
					victim = f
				}
			}
			garbage := make([]byte, victim.Size)
			require.NoError(t, os.Chmod(victim.Blob, 0o644))
			require.NoError(t, os.WriteFile(victim.Blob, garbage, 0o644))
			_, err = hfbridge.PullToCache(ctx, other, "base", "latest", hfbridge.PullOptions{CacheDir: cache, Branch: "v1"})
			require.NoError(t, err)
			findAll(t, cache, "org/base", "v1", files)

			// A checkpoint that was not imported goes to ckpt/NAME.
			plain, err := hfbridge.PullToCache(ctx, other, "team/plain", "3", hfbridge.PullOptions{CacheDir: cache})
			require.NoError(t, err)
			assert.Equal(t, "ckpt/team.plain", plain.Repo)
			assert.Equal(t, res.Revision, plain.Revision, "the same content lands in the same revision")
			findAll(t, cache, "ckpt/team.plain", "main", files)
			named, err := hfbridge.PullToCache(ctx, other, "team/plain", "3", hfbridge.PullOptions{CacheDir: cache, Repo: "me/model"})
			require.NoError(t, err)
			assert.Equal(t, "me/model", named.Repo)
			findAll(t, cache, "me/model", "main", files)
		})
	}
}

// TestPullToCacheRefusesWhatIsNotRunnable: a weights-only checkpoint
// without a base is not a model; nothing is written unless it is asked
// for anyway. A repo id the Hub would not accept is refused.
func TestPullToCacheRefusesWhatIsNotRunnable(t *testing.T) {
	ctx := context.Background()
	r, _ := newRegistry(t, backends["mem"](t))
	base := tinyBase(t, 13)
	weights := filepath.Join(t.TempDir(), "weights")
	require.NoError(t, os.Mkdir(weights, 0o755))
	data, err := os.ReadFile(filepath.Join(base, "model.safetensors"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(weights, "model.safetensors"), data, 0o644))
	_, err = r.Push(ctx, weights, store.PushOptions{Name: "w", Version: "1"})
	require.NoError(t, err)

	cache := filepath.Join(t.TempDir(), "hub")
	_, err = hfbridge.PullToCache(ctx, r, "w", "1", hfbridge.PullOptions{CacheDir: cache})
	require.ErrorIs(t, err, store.ErrNotRunnable)
	assert.Contains(t, err.Error(), "config.json")
	assert.NoDirExists(t, filepath.Join(cache, "models--ckpt--w"), "nothing written")

	res, err := hfbridge.PullToCache(ctx, r, "w", "1", hfbridge.PullOptions{CacheDir: cache, AllowIncomplete: true})
	require.NoError(t, err)
	findAll(t, cache, "ckpt/w", "main", map[string][]byte{"model.safetensors": data})
	assert.Len(t, res.Files, 1)

	_, err = hfbridge.PullToCache(ctx, r, "w", "1", hfbridge.PullOptions{CacheDir: cache, Repo: "bad--id"})
	assert.ErrorIs(t, err, hfcache.ErrInvalidRepoID)
	_, err = r.Push(ctx, weights, store.PushOptions{Name: "a--b", Version: "1"})
	require.NoError(t, err)
	_, err = hfbridge.PullToCache(ctx, r, "a--b", "1", hfbridge.PullOptions{CacheDir: cache, AllowIncomplete: true})
	assert.ErrorIs(t, err, hfbridge.ErrNoRepoID)
}

// findAll finds repo at branch in cache with hfcache.FindSnapshot and
// checks that it holds exactly want, byte for byte.
func findAll(t *testing.T, cache, repo, branch string, want map[string][]byte) hfcache.Snapshot {
	t.Helper()
	snap, err := hfcache.FindSnapshot(cache, repo, branch)
	require.NoError(t, err)
	got := map[string][]byte{}
	for _, f := range snap.Files {
		assert.True(t, f.Linked, "%s is a link", f.Path)
		data, err := os.ReadFile(filepath.Join(snap.Dir, filepath.FromSlash(f.Path)))
		require.NoError(t, err)
		got[f.Path] = data
	}
	assert.Equal(t, want, got)
	return snap
}

func mtimes(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	require.NoError(t, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !strings.Contains(p, ".incomplete") {
			out[p] = info.ModTime()
		}
		return nil
	}))
	return out
}

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
