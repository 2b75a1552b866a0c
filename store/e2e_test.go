package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/backend/local"
	"github.com/ckptdev/ckpt/store/backend/mem"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// newBackendFunc makes a fresh, empty backend for one test.
type newBackendFunc func(t *testing.T) backend.Backend

func newLocal(t *testing.T) backend.Backend {
	b, err := local.New(filepath.Join(t.TempDir(), "registry"))
	require.NoError(t, err)
	return b
}

// env is one registry with its own per-machine index.
type env struct {
	t   *testing.T
	ctx context.Context
	b   backend.Backend
	r   *store.Registry
	ix  *store.Index
}

func newEnv(t *testing.T, nb newBackendFunc) *env {
	t.Helper()
	b := nb(t)
	ix, err := store.OpenIndex(filepath.Join(t.TempDir(), "index.db"))
	require.NoError(t, err)
	t.Cleanup(func() { ix.Close() })
	r, created, err := store.Init(context.Background(), b, store.Options{Index: ix, Workers: 4})
	require.NoError(t, err)
	require.True(t, created)
	return &env{t: t, ctx: context.Background(), b: b, r: r, ix: ix}
}

// withoutIndex returns a second handle on the same registry with no cache,
// as another machine would see it.
func (e *env) withoutIndex() *store.Registry {
	r, err := store.Open(e.ctx, e.b, store.Options{Workers: 4})
	require.NoError(e.t, err)
	return r
}

func (e *env) push(dir, name string, opts store.PushOptions) *store.PushResult {
	e.t.Helper()
	opts.Name = name
	res, err := e.r.Push(e.ctx, dir, opts)
	require.NoError(e.t, err)
	return res
}

// age sets every file's mtime an hour back, so the stat cache accepts them.
func age(t *testing.T, dir string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	}))
}

func tinyRun(t *testing.T, seed uint64, mutate func(*synth.RunSpec)) (base string, ckpts []string) {
	t.Helper()
	spec := synth.RunSpec{
		Seed: seed, Steps: []int64{100, 200, 300, 400},
		EvalLoss: []float64{2.0, 1.5, 1.2, 1.4}, ResumeState: true, OptimizerScale: 0.25,
	}
	if mutate != nil {
		mutate(&spec)
	}
	return testutil.TinyRun(t, spec)
}

// newMem is a fresh in-memory registry.
func newMem(t *testing.T) backend.Backend { return mem.New() }

// backends lists the backends the end-to-end tests run on: a local
// folder, memory, and (TestMain adds it when it can start one) MinIO.
var backends = map[string]newBackendFunc{"local": newLocal, "mem": newMem}

func TestEndToEnd(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			t.Run("FineTunesShareConfigAndTokenizer", func(t *testing.T) { testFineTunesShare(t, nb) })
			t.Run("FrozenTensorStoredOnce", func(t *testing.T) { testFrozenTensor(t, nb) })
			t.Run("PullIsByteIdentical", func(t *testing.T) { testRoundTrip(t, nb) })
			t.Run("BestAndLatest", func(t *testing.T) { testBestLatest(t, nb) })
			t.Run("WeightsOnlyInheritsFromBase", func(t *testing.T) { testInherit(t, nb) })
			t.Run("ShardedRoundTrip", func(t *testing.T) { testSharded(t, nb) })
			t.Run("UnchangedRepushReadsNothing", func(t *testing.T) { testRepush(t, nb) })
			t.Run("CorruptBlobDetected", func(t *testing.T) { testCorruption(t, nb) })
			t.Run("BadManifestPaths", func(t *testing.T) { testBadManifestPaths(t, nb) })
		})
	}
}

func testFineTunesShare(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	base, runA := tinyRun(t, 10, nil)
	_, runB := tinyRun(t, 20, nil)
	e.push(base, "base", store.PushOptions{Version: "1"})
	first := e.push(runA[0], "run-a", store.PushOptions{})
	second := e.push(runB[0], "run-b", store.PushOptions{})

	shared := int64(0)
	for _, f := range []string{"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"} {
		fi, err := os.Stat(filepath.Join(runB[0], f))
		require.NoError(t, err, f)
		shared += fi.Size()
	}
	// run-b's config and tokenizer were already stored by the base and
	// run-a: its push stores no byte of them again.
	assert.LessOrEqual(t, second.NewRaw, second.Logical-shared, "config and tokenizer stored again")
	assert.Greater(t, first.NewRaw, int64(0))

	ma, err := e.r.Manifest(e.ctx, first.Record.Manifest)
	require.NoError(t, err)
	mb, err := e.r.Manifest(e.ctx, second.Record.Manifest)
	require.NoError(t, err)
	tokA, tokB := ma.File("tokenizer.json"), mb.File("tokenizer.json")
	require.NotNil(t, tokA)
	require.NotNil(t, tokB)
	assert.Equal(t, tokA.Chunks, tokB.Chunks)
	// A small file is one blob named by the sha256 of the file: the id the Hub gives LFS files.
	data, err := os.ReadFile(filepath.Join(runA[0], "tokenizer.json"))
	require.NoError(t, err)
	assert.Equal(t, "sha256:"+object.Hash(data).String(), tokA.Digest)

	u, err := e.r.Usage(e.ctx)
	require.NoError(t, err)
	assert.Greater(t, u.DedupeRatio(), 1.0)
}

func testFrozenTensor(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	_, ckpts := tinyRun(t, 10, func(s *synth.RunSpec) { s.FrozenEmbedding = true })
	var results []*store.PushResult
	for _, ck := range ckpts {
		results = append(results, e.push(ck, "frozen", store.PushOptions{}))
	}
	digest := func(res *store.PushResult, tensor string) string {
		m, err := e.r.Manifest(e.ctx, res.Record.Manifest)
		require.NoError(t, err)
		f := m.File("model.safetensors")
		require.NotNil(t, f)
		require.NotNil(t, f.Safetensors)
		for _, tn := range f.Safetensors.Tensors {
			if tn.Name == tensor {
				return tn.Digest
			}
		}
		t.Fatalf("no tensor %s", tensor)
		return ""
	}
	wte := digest(results[0], "wte.weight")
	for _, res := range results[1:] {
		assert.Equal(t, wte, digest(res, "wte.weight"), "frozen embedding changed")
		assert.NotEqual(t, digest(results[0], "h.0.attn.c_attn.weight"), digest(res, "h.0.attn.c_attn.weight"), "trained tensor did not change")
	}
	// The later pushes store nothing of the frozen embedding.
	h, err := layout.ReadSafetensorsHeader(filepath.Join(ckpts[1], "model.safetensors"))
	require.NoError(t, err)
	var frozen int64
	for _, tn := range h.Tensors {
		if tn.Name == "wte.weight" || tn.Name == "wpe.weight" {
			frozen += tn.End - tn.Begin
		}
	}
	for _, res := range results[1:] {
		assert.LessOrEqual(t, res.NewRaw, res.Logical-frozen)
	}
}

func testRoundTrip(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	_, ckpts := tinyRun(t, 10, nil)
	e.push(ckpts[1], "rt", store.PushOptions{})
	out := filepath.Join(t.TempDir(), "out")
	res, err := e.withoutIndex().Pull(e.ctx, "rt", "200", out, store.PullOptions{Full: true})
	require.NoError(t, err)
	assert.Equal(t, testutil.ReadTree(t, ckpts[1]), testutil.ReadTree(t, out))
	assert.NotEmpty(t, res.Files)

	// Without --full: the runnable set only, still runnable.
	out2 := filepath.Join(t.TempDir(), "out2")
	_, err = e.r.Pull(e.ctx, "rt", "200", out2, store.PullOptions{})
	require.NoError(t, err)
	require.NoError(t, layout.CheckRunnable(os.DirFS(out2)))
	_, err = os.Stat(filepath.Join(out2, "optimizer.pt"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
	_, err = os.Stat(filepath.Join(out2, "trainer_state.json"))
	assert.ErrorIs(t, err, fs.ErrNotExist)

	// A non-empty target is refused and left alone; --force replaces it.
	_, err = e.r.Pull(e.ctx, "rt", "200", out, store.PullOptions{})
	require.ErrorIs(t, err, store.ErrTargetNotEmpty)
	assert.FileExists(t, filepath.Join(out, "optimizer.pt"))
	_, err = e.r.Pull(e.ctx, "rt", "200", out, store.PullOptions{Force: true})
	require.NoError(t, err)
	assert.NoFileExists(t, filepath.Join(out, "optimizer.pt"))
	assertNoPullLeftovers(t, filepath.Dir(out))
}

func assertNoPullLeftovers(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, en := range entries {
		assert.NotContains(t, en.Name(), ".ckpt-", "temporary folder left behind")
	}
}

func testBestLatest(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	_, ckpts := tinyRun(t, 10, nil) // eval_loss 2.0, 1.5, 1.2, 1.4
	for _, ck := range ckpts {
		e.push(ck, "bl", store.PushOptions{})
	}
	best, err := e.r.Resolve(e.ctx, "bl", refs.Best)
	require.NoError(t, err)
	assert.Equal(t, "300", best.Version)
	assert.InDelta(t, 1.2, best.Metrics["eval_loss"], 1e-9)
	latest, err := e.r.Resolve(e.ctx, "bl", refs.Latest)
	require.NoError(t, err)
	assert.Equal(t, "400", latest.Version)

	require.NoError(t, e.r.Tag(e.ctx, "bl", "200", "prod"))
	tagged, err := e.r.Resolve(e.ctx, "bl", "prod")
	require.NoError(t, err)
	assert.Equal(t, "200", tagged.Version)

	_, err = e.r.Resolve(e.ctx, "bl", "900")
	require.ErrorContains(t, err, "no checkpoint bl@900; versions: 100, 200, 300, 400")
	_, err = e.r.Resolve(e.ctx, "bk", "latest")
	require.ErrorContains(t, err, "did you mean bl?")
}

func testInherit(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	base, ckpts := tinyRun(t, 10, func(s *synth.RunSpec) { s.WeightsOnly = true })
	e.push(base, "gpt2", store.PushOptions{Version: "1"})
	e.push(ckpts[0], "wo", store.PushOptions{Base: "gpt2@latest"})
	e.push(ckpts[1], "wo-orphan", store.PushOptions{})

	out := filepath.Join(t.TempDir(), "model")
	res, err := e.r.Pull(e.ctx, "wo", "100", out, store.PullOptions{})
	require.NoError(t, err)
	require.NoError(t, layout.CheckRunnable(os.DirFS(out)))
	from := map[string]string{}
	for _, f := range res.Files {
		from[f.Path] = f.From
	}
	assert.Equal(t, "gpt2@1", from["config.json"])
	assert.Equal(t, "gpt2@1", from["tokenizer.json"])
	assert.Equal(t, "wo@100", from["model.safetensors"])
	baseFiles := testutil.ReadTree(t, base)
	got := testutil.ReadTree(t, out)
	assert.Equal(t, baseFiles["tokenizer.json"], got["tokenizer.json"])

	// Without a base the weights-only checkpoint is not runnable: the
	// error names what is missing, and nothing is written.
	out2 := filepath.Join(t.TempDir(), "orphan")
	_, err = e.r.Pull(e.ctx, "wo-orphan", "200", out2, store.PullOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config.json")
	assert.NoDirExists(t, out2)
	assertNoPullLeftovers(t, filepath.Dir(out2))
}

func testSharded(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	_, ckpts := tinyRun(t, 10, func(s *synth.RunSpec) { s.Shards = 3 })
	e.push(ckpts[0], "sharded", store.PushOptions{})
	out := filepath.Join(t.TempDir(), "out")
	_, err := e.r.Pull(e.ctx, "sharded", "latest", out, store.PullOptions{Full: true})
	require.NoError(t, err)
	assert.Equal(t, testutil.ReadTree(t, ckpts[0]), testutil.ReadTree(t, out))
	assert.FileExists(t, filepath.Join(out, "model.safetensors.index.json"))
	require.NoError(t, layout.CheckComplete(os.DirFS(out)))

	// A shard missing from the folder is refused before anything is recorded.
	broken := filepath.Join(t.TempDir(), "checkpoint-500")
	require.NoError(t, os.CopyFS(broken, os.DirFS(ckpts[1])))
	require.NoError(t, os.Remove(filepath.Join(broken, "model-00002-of-00003.safetensors")))
	_, err = e.r.Push(e.ctx, broken, store.PushOptions{Name: "sharded"})
	require.ErrorContains(t, err, "model-00002-of-00003.safetensors")
	assertNoVersion(t, e, "sharded", "500")
}

func assertNoVersion(t *testing.T, e *env, name, version string) {
	t.Helper()
	c, err := e.r.Catalog(e.ctx, name)
	require.NoError(t, err)
	for _, rec := range c.Records[name] {
		assert.NotEqual(t, version, rec.Version, "a failed push recorded %s@%s", name, version)
	}
}

func testRepush(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	_, ckpts := tinyRun(t, 10, nil)
	age(t, ckpts[0])
	first := e.push(ckpts[0], "again", store.PushOptions{})
	assert.Equal(t, first.Logical, first.BytesRead)
	again := e.push(ckpts[0], "again", store.PushOptions{})
	assert.True(t, again.Unchanged)
	assert.Zero(t, again.BytesRead, "re-push read file data")
	assert.Zero(t, again.NewStored, "re-push stored something")
	assert.Zero(t, again.NewBlobs)
	assert.Equal(t, first.Record.Manifest, again.Record.Manifest)

	// Changing one file: only that file is read again.
	p := filepath.Join(ckpts[0], "trainer_state.json")
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, append(data, ' '), 0o644))
	_, err = e.r.Push(e.ctx, ckpts[0], store.PushOptions{Name: "again"})
	require.ErrorIs(t, err, store.ErrVersionExists)
	forced := e.push(ckpts[0], "again", store.PushOptions{Force: true})
	assert.Equal(t, int64(len(data)+1), forced.BytesRead)
	assert.NotEqual(t, first.Record.Manifest, forced.Record.Manifest)
}

// corruptObject flips one byte of a stored object through the Backend.
func corruptObject(t *testing.T, b backend.Backend, key string) {
	t.Helper()
	ctx := context.Background()
	rc, err := b.Get(ctx, key, 0, -1)
	require.NoError(t, err)
	data, err := io.ReadAll(rc)
	rc.Close()
	require.NoError(t, err)
	data[len(data)-1] ^= 0x40
	require.NoError(t, b.Delete(ctx, key))
	require.NoError(t, b.Put(ctx, key, bytes.NewReader(data), int64(len(data))))
}

func testCorruption(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	_, ckpts := tinyRun(t, 10, nil)
	res := e.push(ckpts[0], "bad", store.PushOptions{})
	m, err := e.r.Manifest(e.ctx, res.Record.Manifest)
	require.NoError(t, err)
	f := m.File("tokenizer.json")
	require.NotNil(t, f)
	victim := f.Chunks[0].ID
	corruptObject(t, e.b, object.BlobKey(victim))

	// Existence checks still pass; reading the data does not.
	_, err = e.r.Verify(e.ctx, []refs.Record{res.Record}, false)
	require.NoError(t, err)
	rep, err := e.r.Verify(e.ctx, []refs.Record{res.Record}, true)
	require.ErrorIs(t, err, store.ErrVerifyFailed)
	require.Len(t, rep.Problems, 1)
	assert.Equal(t, object.BlobKey(victim), rep.Problems[0].Object)
	assert.Contains(t, rep.Problems[0].String(), "bad@100:tokenizer.json")
	assert.ErrorIs(t, rep.Problems[0].Err, object.ErrCorrupt)

	out := filepath.Join(t.TempDir(), "out")
	_, err = e.r.Pull(e.ctx, "bad", "100", out, store.PullOptions{})
	require.ErrorIs(t, err, object.ErrCorrupt)
	assert.Contains(t, err.Error(), victim.String())
	assert.Contains(t, err.Error(), "tokenizer.json")
	assert.NoDirExists(t, out)
	assertNoPullLeftovers(t, filepath.Dir(out))

	// A missing blob is named too.
	require.NoError(t, e.b.Delete(e.ctx, object.BlobKey(victim)))
	rep, err = e.r.Verify(e.ctx, []refs.Record{res.Record}, false)
	require.ErrorIs(t, err, store.ErrVerifyFailed)
	assert.ErrorIs(t, rep.Problems[0].Err, backend.ErrNotFound)
}

// plantManifest stores a hand-made manifest and a record pointing at it.
func plantManifest(t *testing.T, e *env, name string, m *manifest.Manifest) {
	t.Helper()
	data, err := jsonMarshal(m)
	require.NoError(t, err)
	id := object.Hash(data)
	obj := object.Encode(nil, data, object.EncodeHint{Text: true})
	require.NoError(t, e.b.Put(e.ctx, object.ManifestKey(id), bytes.NewReader(obj), int64(len(obj))))
	rec := refs.Record{Name: name, Version: "1", Manifest: id, Pushed: time.Now()}
	recData, err := jsonMarshal(rec)
	require.NoError(t, err)
	require.NoError(t, e.b.Put(e.ctx, "refs/"+name+"/v/1", bytes.NewReader(recData), int64(len(recData))))
}

func testBadManifestPaths(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	content := []byte(`{"model_type": "gpt2"}`)
	id := object.Hash(content)
	obj := object.Encode(nil, content, object.EncodeHint{})
	require.NoError(t, e.b.Put(e.ctx, object.BlobKey(id), bytes.NewReader(obj), int64(len(obj))))
	for i, bad := range []string{"/etc/passwd", "../escape.json", "a/../../escape.json", "./config.json", "a\\..\\x"} {
		name := "evil" + string(rune('a'+i))
		plantManifest(t, e, name, &manifest.Manifest{Version: manifest.Version, Files: []manifest.File{{
			Path: bad, Size: int64(len(content)), Mode: 0o644, Role: "config", Digest: "sha256:" + id.String(),
			Chunks: []manifest.Chunk{{ID: id, Offset: 0, Size: int64(len(content))}},
		}}})
		parent := t.TempDir()
		out := filepath.Join(parent, "out")
		_, err := e.r.Pull(e.ctx, name, "1", out, store.PullOptions{AllowIncomplete: true})
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "path", bad)
		assert.NoDirExists(t, out)
		entries, _ := os.ReadDir(parent)
		assert.Empty(t, entries, "pull of %q left files", bad)
		_, err = os.Stat(filepath.Join(filepath.Dir(parent), "escape.json"))
		assert.True(t, errors.Is(err, fs.ErrNotExist))
	}
}

func TestPushBadInput(t *testing.T) {
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	good := ckpts[0]
	copyCkpt := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "checkpoint-100")
		require.NoError(t, os.CopyFS(dir, os.DirFS(good)))
		return dir
	}
	st := func(dir string) string { return filepath.Join(dir, "model.safetensors") }
	rewriteHeader := func(t *testing.T, dir string, edit func(h []byte) []byte) {
		data, err := os.ReadFile(st(dir))
		require.NoError(t, err)
		n := int(le64(data[:8]))
		h := edit(append([]byte(nil), data[8:8+n]...))
		out := append(putLE64(uint64(len(h))), h...)
		out = append(out, data[8+n:]...)
		require.NoError(t, os.WriteFile(st(dir), out, 0o644))
	}
	cases := []struct {
		name    string
		prepare func(t *testing.T) string
		want    []string
	}{
		{"truncated safetensors", func(t *testing.T) string {
			dir := copyCkpt(t)
			fi, err := os.Stat(st(dir))
			require.NoError(t, err)
			require.NoError(t, os.Truncate(st(dir), fi.Size()-7))
			return dir
		}, []string{"model.safetensors"}},
		{"header length past end of file", func(t *testing.T) string {
			dir := copyCkpt(t)
			require.NoError(t, os.WriteFile(st(dir), append(putLE64(1<<20), []byte("{}")...), 0o644))
			return dir
		}, []string{"model.safetensors", "past end"}},
		{"header length above the cap", func(t *testing.T) string {
			dir := copyCkpt(t)
			require.NoError(t, os.WriteFile(st(dir), append(putLE64(200_000_000), []byte("{}")...), 0o644))
			return dir
		}, []string{"model.safetensors", "too large"}},
		{"unknown dtype", func(t *testing.T) string {
			dir := copyCkpt(t)
			rewriteHeader(t, dir, func(h []byte) []byte { return bytes.Replace(h, []byte(`"BF16"`), []byte(`"Q4XX"`), 1) })
			return dir
		}, []string{"model.safetensors", "Q4XX"}},
		{"overlapping offsets", func(t *testing.T) string {
			dir := copyCkpt(t)
			hdr, err := layout.ReadSafetensorsHeader(st(dir))
			require.NoError(t, err)
			second := hdr.Tensors[1]
			rewriteHeader(t, dir, func(h []byte) []byte {
				old := []byte(`[` + itoa(second.Begin) + `,` + itoa(second.End) + `]`)
				require.True(t, bytes.Contains(h, old), "offsets %s not in header", old)
				return bytes.Replace(h, old, []byte(`[`+itoa(second.Begin-2)+`,`+itoa(second.End-2)+`]`), 1)
			})
			return dir
		}, []string{"model.safetensors"}},
		{"malformed trainer_state.json", func(t *testing.T) string {
			dir := copyCkpt(t)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "trainer_state.json"), []byte(`{"global_step": "abc"`), 0o644))
			return dir
		}, []string{"trainer_state.json"}},
		{"symlink to a directory out of the folder", func(t *testing.T) string {
			dir := copyCkpt(t)
			outside := filepath.Join(t.TempDir(), "secret")
			require.NoError(t, os.Mkdir(outside, 0o755))
			require.NoError(t, os.Symlink(outside, filepath.Join(dir, "notes")))
			return dir
		}, []string{"notes", "directory outside"}},
		{"empty folder", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "checkpoint-100")
			require.NoError(t, os.Mkdir(dir, 0o755))
			return dir
		}, []string{"checkpoint-100"}},
		{"unreadable file", func(t *testing.T) string {
			dir := copyCkpt(t)
			// A dangling symlink cannot be read, even by root.
			require.NoError(t, os.Symlink(filepath.Join(dir, "gone.bin"), filepath.Join(dir, "broken.bin")))
			return dir
		}, []string{"broken.bin"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.prepare(t)
			_, err := e.r.Push(e.ctx, dir, store.PushOptions{Name: "bad-input"})
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assertNoVersion(t, e, "bad-input", "100")
		})
	}

	for _, name := range []string{"", "a//b", "../x", "/abs", "a/./b", "sp ace", ".hidden", "x@y"} {
		_, err := e.r.Push(e.ctx, good, store.PushOptions{Name: name})
		assert.ErrorIs(t, err, refs.ErrInvalidName, "NAME %q", name)
	}
	for _, v := range []string{"latest", "best", "a/b", "..", "v 1"} {
		_, err := e.r.Push(e.ctx, good, store.PushOptions{Name: "ok", Version: v})
		assert.ErrorIs(t, err, refs.ErrInvalidName, "VERSION %q", v)
	}
	noVersion := filepath.Join(t.TempDir(), "my-model")
	require.NoError(t, os.CopyFS(noVersion, os.DirFS(good)))
	require.NoError(t, os.Remove(filepath.Join(noVersion, "trainer_state.json")))
	_, err := e.r.Push(e.ctx, noVersion, store.PushOptions{Name: "ok"})
	assert.ErrorContains(t, err, "give NAME@VERSION")
	names, err := e.r.Names(e.ctx)
	require.NoError(t, err)
	assert.Empty(t, names)
}

func TestPullLink(t *testing.T) {
	e := newEnv(t, newLocal)
	_, ckpts := tinyRun(t, 10, nil)
	e.push(ckpts[0], "l", store.PushOptions{})
	fc, err := store.OpenContentCache(filepath.Join(t.TempDir(), "files"), 1<<30)
	require.NoError(t, err)
	r, err := store.Open(e.ctx, e.b, store.Options{Cache: fc})
	require.NoError(t, err)
	for i := range 2 { // a cold then a warm cache
		out := filepath.Join(t.TempDir(), fmt.Sprint("out", i))
		res, err := r.Pull(e.ctx, "l", "100", out, store.PullOptions{Full: true, Link: true})
		require.NoError(t, err)
		assert.Equal(t, testutil.ReadTree(t, ckpts[0]), testutil.ReadTree(t, out))
		n := 0
		for _, c := range res.Linked {
			n += c
		}
		assert.Equal(t, len(res.Files), n)
		if res.Linked[store.LinkHardlink] > 0 {
			fi, err := os.Stat(filepath.Join(out, "config.json"))
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o444), fi.Mode().Perm(), "hard links are read-only")
		}
	}
	// Without the content cache --link is refused, nothing is written.
	out := filepath.Join(t.TempDir(), "nocache")
	_, err = e.r.Pull(e.ctx, "l", "100", out, store.PullOptions{Link: true})
	require.ErrorIs(t, err, store.ErrNoCache)
	assert.NoDirExists(t, out)
}
