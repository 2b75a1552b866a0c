package store_test

// Adversarial tests of ref integrity (issue 9): refs carry checksums that
// every reader verifies, gc deletes only on positive proof, the per-machine
// catalog cache is a hint and never a verdict, verify reads the registry and
// reports every problem, and NAMEs cannot collide with the ref-kind folders.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// readObject returns the bytes stored under key.
func readObject(t *testing.T, b backend.Backend, key string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), key, 0, -1)
	require.NoError(t, err)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	return data
}

// rewriteObject replaces the object under key by edit(its content), the way
// a hand edit, a restore or a flipped bit on the storage would leave it.
func rewriteObject(t *testing.T, b backend.Backend, key string, edit func([]byte) []byte) {
	t.Helper()
	old := readObject(t, b, key)
	data := edit(bytes.Clone(old))
	require.NotEqual(t, old, data, "the edit of %s changed nothing", key)
	ctx := context.Background()
	require.NoError(t, b.Delete(ctx, key))
	require.NoError(t, b.Put(ctx, key, bytes.NewReader(data), int64(len(data))))
}

// replaceOnce replaces the first match of re in data with repl, failing
// the test if there is none.
func replaceOnce(t *testing.T, data []byte, re, repl string) []byte {
	t.Helper()
	rx := regexp.MustCompile(re)
	loc := rx.FindIndex(data)
	require.NotNil(t, loc, "no %s in %s", re, data)
	out := append([]byte(nil), data[:loc[0]]...)
	out = append(out, rx.ReplaceAll(data[loc[0]:loc[1]], []byte(repl))...)
	return append(out, data[loc[1]:]...)
}

// flipDigit changes one hex digit of the value of member in a ref.
func flipDigit(t *testing.T, data []byte, member string) []byte {
	t.Helper()
	rx := regexp.MustCompile(`"` + member + `": *"?[^0-9a-f]*[0-9a-f]`)
	loc := rx.FindIndex(data)
	require.NotNil(t, loc, "no %s in %s", member, data)
	out := bytes.Clone(data)
	i := loc[1] - 1
	if out[i] == '0' {
		out[i] = '1'
	} else {
		out[i] = '0'
	}
	return out
}

// resum gives an edited ref a valid checksum again, as someone who edits
// refs by hand and knows docs/format.md §5 would: this helper follows the
// document, not refs.go.
func resum(t *testing.T, data []byte) []byte {
	t.Helper()
	var members map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data, &members))
	delete(members, "checksum")
	names := make([]string, 0, len(members))
	for n := range members {
		names = append(names, n)
	}
	sort.Strings(names)
	var canon bytes.Buffer
	canon.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			canon.WriteByte(',')
		}
		canon.WriteString(`"` + n + `":`)
		require.NoError(t, json.Compact(&canon, members[n]))
	}
	canon.WriteByte('}')
	sum := sha256.Sum256(canon.Bytes())
	return append(canon.Bytes()[:canon.Len()-1], `,"checksum":"sha256:`+hex.EncodeToString(sum[:])+`"}`...)
}

// legacy strips a ref's checksum: the form refs had before checksums.
func legacy(t *testing.T, data []byte) []byte {
	t.Helper()
	var members map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data, &members))
	_, had := members["checksum"]
	require.True(t, had, "%s has no checksum", data)
	delete(members, "checksum")
	out, err := json.MarshalIndent(members, "", "  ")
	require.NoError(t, err)
	return append(out, '\n')
}

// dataKeys lists every blob and manifest of the registry, sorted.
func dataKeys(t *testing.T, b backend.Backend) []string {
	t.Helper()
	var keys []string
	for _, prefix := range []string{"blobs/", "manifests/"} {
		require.NoError(t, b.List(context.Background(), prefix, func(oi backend.ObjectInfo) error {
			keys = append(keys, oi.Key)
			return nil
		}))
	}
	sort.Strings(keys)
	return keys
}

func refKeys(t *testing.T, b backend.Backend) []string {
	t.Helper()
	var keys []string
	require.NoError(t, b.List(context.Background(), "refs/", func(oi backend.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}))
	sort.Strings(keys)
	return keys
}

func problemObjects(rep *store.VerifyReport) []string {
	var objs []string
	if rep == nil {
		return nil
	}
	for _, p := range rep.Problems {
		objs = append(objs, p.Object)
	}
	return objs
}

func problemFor(t *testing.T, rep *store.VerifyReport, object string) store.Problem {
	t.Helper()
	require.NotNil(t, rep)
	for _, p := range rep.Problems {
		if p.Object == object {
			return p
		}
	}
	t.Fatalf("verify did not report %s; it reported %v", object, problemObjects(rep))
	return store.Problem{}
}

// refRun pushes gpt2@1 (tagged base) and the weights-only checkpoints of a
// run based on it as run@100..400 (eval_loss 2.0, 1.5, 1.2, 1.4).
func refRun(t *testing.T, e *env) (base string, ckpts []string) {
	t.Helper()
	base, ckpts = tinyRun(t, 31, func(s *synth.RunSpec) { s.WeightsOnly = true })
	e.push(base, "gpt2", store.PushOptions{Version: "1", Tags: []string{"base"}})
	for _, ck := range ckpts {
		e.push(ck, "run", store.PushOptions{Base: "gpt2@1"})
	}
	return base, ckpts
}

func TestRefIntegrity(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			t.Run("RefsCarryChecksums", func(t *testing.T) { testRefsCarryChecksums(t, nb) })
			t.Run("FlippedEvalLossDetectedByEveryReader", func(t *testing.T) { testFlippedRefDetected(t, nb, "eval_loss") })
			t.Run("FlippedManifestDetectedByEveryReader", func(t *testing.T) { testFlippedRefDetected(t, nb, "manifest") })
			t.Run("CorruptBaseRefStopsPull", func(t *testing.T) { testCorruptBaseRef(t, nb) })
			t.Run("CorruptTagAndPolicy", func(t *testing.T) { testCorruptTagAndPolicy(t, nb) })
			t.Run("LegacyRefsStayReadable", func(t *testing.T) { testLegacyRefs(t, nb) })
		})
	}
}

func testRefsCarryChecksums(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	refRun(t, e)
	require.NoError(t, e.r.SetPolicy(e.ctx, "run", retention.Policy{KeepLast: 2}))
	keys := refKeys(t, e.b)
	require.Contains(t, keys, "refs/gpt2/t/base")
	require.Contains(t, keys, "refs/run/p/retention")
	for _, key := range keys {
		data := readObject(t, e.b, key)
		var members map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(data, &members), key)
		var sum string
		require.NoError(t, json.Unmarshal(members["checksum"], &sum), "%s has no checksum: %s", key, data)
		assert.Equal(t, string(resum(t, data)), string(resum(t, resum(t, data))))
		assert.Contains(t, string(resum(t, data)), `"checksum":"`+sum+`"`, "%s: the stored checksum is the one docs/format.md defines", key)
	}
	rep, err := e.r.VerifyAll(e.ctx, true)
	require.NoError(t, err)
	assert.Equal(t, len(keys), rep.Refs)
}

// testFlippedRefDetected flips one digit of member in run@200's ref (so its
// checksum no longer matches) and checks that every reader refuses it,
// naming the ref, before acting on it.
func testFlippedRefDetected(t *testing.T, nb newBackendFunc, member string) {
	e := newEnv(t, nb)
	_, ckpts := refRun(t, e)
	_, err := e.r.Catalog(e.ctx, "") // fill the per-machine catalog cache
	require.NoError(t, err)
	key := "refs/run/v/200"
	rewriteObject(t, e.b, key, func(d []byte) []byte { return flipDigit(t, d, member) })
	before := dataKeys(t, e.b)

	isCorrupt := func(what string, err error) {
		t.Helper()
		require.ErrorIs(t, err, refs.ErrCorrupt, what)
		assert.ErrorContains(t, err, key, what)
	}
	_, err = e.r.Catalog(e.ctx, "run")
	isCorrupt("catalog", err)
	_, err = e.withoutIndex().Catalog(e.ctx, "")
	isCorrupt("catalog without cache", err)
	for _, ref := range []string{"200", refs.Latest, refs.Best} {
		_, err = e.r.Resolve(e.ctx, "run", ref)
		isCorrupt("resolve run@"+ref, err)
	}
	_, err = e.r.Pull(e.ctx, "run", "200", filepath.Join(t.TempDir(), "out"), store.PullOptions{})
	isCorrupt("pull", err)
	_, err = e.r.RetentionPlan(e.ctx, "run", retention.Policy{KeepLast: 1})
	isCorrupt("retention plan", err)
	_, _, err = e.r.Remove(e.ctx, "run", refs.Latest)
	isCorrupt("rm run@latest", err)

	rep, err := e.r.VerifyAll(e.ctx, false)
	require.ErrorIs(t, err, store.ErrVerifyFailed)
	assert.ErrorIs(t, problemFor(t, rep, key).Err, refs.ErrCorrupt)

	_, err = e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.ErrorIs(t, err, store.ErrUnproven)
	assert.ErrorContains(t, err, key)
	assert.Equal(t, before, dataKeys(t, e.b), "gc deleted something")

	// Pushing the same folder over the corrupt ref is refused, not a
	// silent no-op; a forced push replaces it with a ref that verifies.
	_, err = e.r.Push(e.ctx, ckpts[1], store.PushOptions{Name: "run", Base: "gpt2@1"})
	isCorrupt("push over it", err)
	_, err = e.r.Push(e.ctx, ckpts[1], store.PushOptions{Name: "run", Base: "gpt2@1", Force: true})
	require.NoError(t, err)
	_, err = e.r.VerifyAll(e.ctx, true)
	require.NoError(t, err)
	best, err := e.r.Resolve(e.ctx, "run", refs.Best)
	require.NoError(t, err)
	assert.Equal(t, "300", best.Version)
}

func testCorruptBaseRef(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	refRun(t, e)
	rewriteObject(t, e.b, "refs/gpt2/v/1", func(d []byte) []byte { return replaceOnce(t, d, `"step": 1`, `"step": 2`) })
	// Pulling run@300 walks its base chain through gpt2@1's ref.
	_, err := e.r.Pull(e.ctx, "run", "300", filepath.Join(t.TempDir(), "out"), store.PullOptions{})
	require.ErrorIs(t, err, refs.ErrCorrupt)
	assert.ErrorContains(t, err, "refs/gpt2/v/1")
	// Resolving a base to push against checks it too.
	_, ckpts := tinyRun(t, 32, func(s *synth.RunSpec) { s.WeightsOnly = true })
	_, err = e.r.Push(e.ctx, ckpts[0], store.PushOptions{Name: "other", Base: "gpt2@base"})
	require.ErrorIs(t, err, refs.ErrCorrupt)
}

func testCorruptTagAndPolicy(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	refRun(t, e)
	require.NoError(t, e.r.Tag(e.ctx, "run", "200", "prod"))
	require.NoError(t, e.r.SetPolicy(e.ctx, "run", retention.Policy{KeepLast: 3}))

	// A tag whose time lost a digit still names version 200, but cannot be
	// trusted: readers refuse it, and tagging again replaces it.
	rewriteObject(t, e.b, "refs/run/t/prod", func(d []byte) []byte { return flipDigit(t, d, "tagged") })
	_, err := e.r.Resolve(e.ctx, "run", "prod")
	require.ErrorIs(t, err, refs.ErrCorrupt)
	assert.ErrorContains(t, err, "refs/run/t/prod")
	_, err = e.r.Catalog(e.ctx, "run")
	require.ErrorIs(t, err, refs.ErrCorrupt)
	require.NoError(t, e.r.Tag(e.ctx, "run", "200", "prod"))
	rec, err := e.r.Resolve(e.ctx, "run", "prod")
	require.NoError(t, err)
	assert.Equal(t, "200", rec.Version)

	rewriteObject(t, e.b, "refs/run/p/retention", func(d []byte) []byte { return replaceOnce(t, d, `"keep_last": 3`, `"keep_last": 1`) })
	_, _, err = e.r.Policy(e.ctx, "run")
	require.ErrorIs(t, err, refs.ErrCorrupt)
	assert.ErrorContains(t, err, "refs/run/p/retention")
	rep, err := e.r.VerifyAll(e.ctx, false)
	require.ErrorIs(t, err, store.ErrVerifyFailed)
	assert.Equal(t, []string{"refs/run/p/retention"}, problemObjects(rep))
	require.NoError(t, e.r.SetPolicy(e.ctx, "run", retention.Policy{KeepLast: 1}))
	p, ok, err := e.r.Policy(e.ctx, "run")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 1, p.KeepLast)
}

// testLegacyRefs: refs written before checksums existed are read as before
// by every reader.
func testLegacyRefs(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	refRun(t, e)
	require.NoError(t, e.r.SetPolicy(e.ctx, "run", retention.Policy{KeepLast: 2, KeepBest: 1}))
	for _, key := range refKeys(t, e.b) {
		rewriteObject(t, e.b, key, func(d []byte) []byte { return legacy(t, d) })
	}
	c, err := e.r.Catalog(e.ctx, "")
	require.NoError(t, err)
	assert.Len(t, c.Records["run"], 4)
	assert.Equal(t, "1", c.Tags["gpt2"]["base"])
	best, err := e.r.Resolve(e.ctx, "run", refs.Best)
	require.NoError(t, err)
	assert.Equal(t, "300", best.Version)
	_, err = e.r.Pull(e.ctx, "run", "best", filepath.Join(t.TempDir(), "out"), store.PullOptions{})
	require.NoError(t, err)
	p, ok, err := e.r.Policy(e.ctx, "run")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, 2, p.KeepLast)
	rep, err := e.r.VerifyAll(e.ctx, true)
	require.NoError(t, err)
	assert.Equal(t, 7, rep.Refs) // 5 versions, 1 tag, 1 policy
	res, err := e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err)
	assert.Zero(t, res.DeletedBlobs+res.DeletedManifests)
	assert.Equal(t, 5, res.Checkpoints)
	require.NoError(t, e.r.Tag(e.ctx, "gpt2", "1", "base"), "an identical legacy tag is kept")
}

func TestGCDeletesOnlyOnPositiveProof(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			// A ref's manifest field edited to an ID that does not exist,
			// with a valid checksum (a manual edit, a partial restore).
			t.Run("ManualEditToMissingManifest", func(t *testing.T) {
				testGCRefusesUnproven(t, nb, "refs/run/v/200", func(t *testing.T, d []byte) []byte { return resum(t, flipDigit(t, d, "manifest")) })
			})
			// The same with the checksum left as it was: the ref is corrupt.
			t.Run("FlippedManifestDigit", func(t *testing.T) {
				testGCRefusesUnproven(t, nb, "refs/run/v/200", func(t *testing.T, d []byte) []byte { return flipDigit(t, d, "manifest") })
			})
			// The base's manifest: the only thing keeping gpt2's data alive
			// once gpt2@1's own ref is removed.
			t.Run("ManualEditToMissingBaseManifest", func(t *testing.T) {
				testGCRefusesUnproven(t, nb, "refs/run/v/100", func(t *testing.T, d []byte) []byte {
					return resum(t, replaceOnce(t, d, `("base":[^}]*"manifest": *")[0-9a-f]`, `${1}f`))
				})
			})
			t.Run("ManifestGoneThoughCachedHere", func(t *testing.T) { testGCManifestGone(t, nb) })
			t.Run("ManifestObjectCorrupt", func(t *testing.T) { testGCManifestCorrupt(t, nb) })
		})
	}
}

// testGCRefusesUnproven edits one ref and runs gc with no grace period: it
// must fail naming the ref, and delete nothing at all.
func testGCRefusesUnproven(t *testing.T, nb newBackendFunc, key string, edit func(*testing.T, []byte) []byte) {
	e := newEnv(t, nb)
	refRun(t, e)
	_, _, err := e.r.Remove(e.ctx, "gpt2", "1") // run's refs alone keep the base's data
	require.NoError(t, err)
	_, err = e.r.VerifyAll(e.ctx, true) // caches warm: manifests, catalog
	require.NoError(t, err)
	rewriteObject(t, e.b, key, func(d []byte) []byte { return edit(t, d) })
	before := dataKeys(t, e.b)
	for _, dry := range []bool{true, false} {
		_, err = e.r.GC(e.ctx, store.GCOptions{NoGrace: true, DryRun: dry})
		require.ErrorIs(t, err, store.ErrUnproven)
		assert.ErrorContains(t, err, key)
		assert.ErrorContains(t, err, "nothing was deleted")
	}
	assert.Equal(t, before, dataKeys(t, e.b), "gc deleted objects it could not prove unreachable")

	// verify names the ref too.
	rep, err := e.r.VerifyAll(e.ctx, false)
	require.ErrorIs(t, err, store.ErrVerifyFailed)
	require.Len(t, rep.Problems, 1)
	msg := rep.Problems[0].String()
	assert.True(t, strings.Contains(msg, key) || strings.Contains(msg, strings.TrimPrefix(strings.Replace(key, "/v/", "@", 1), "refs/")),
		"the problem does not name the ref: %s", msg)
}

func testGCManifestGone(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	refRun(t, e)
	rec, err := e.r.Resolve(e.ctx, "run", "200")
	require.NoError(t, err)
	_, err = e.r.VerifyAll(e.ctx, true) // this machine now holds the manifest
	require.NoError(t, err)
	mkey := object.ManifestKey(rec.Manifest)
	require.NoError(t, e.b.Delete(e.ctx, mkey))
	before := dataKeys(t, e.b)
	_, err = e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.ErrorIs(t, err, store.ErrUnproven)
	assert.ErrorContains(t, err, mkey)
	assert.ErrorContains(t, err, "refs/run/v/200")
	assert.Equal(t, before, dataKeys(t, e.b))
}

func testGCManifestCorrupt(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	refRun(t, e)
	rec, err := e.r.Resolve(e.ctx, "run", "300")
	require.NoError(t, err)
	mkey := object.ManifestKey(rec.Manifest)
	rewriteObject(t, e.b, mkey, func(d []byte) []byte { d[len(d)-1] ^= 0xff; return d })
	before := dataKeys(t, e.withoutIndex().Backend())
	_, err = e.withoutIndex().GC(e.ctx, store.GCOptions{NoGrace: true})
	require.ErrorIs(t, err, store.ErrUnproven)
	assert.ErrorContains(t, err, mkey)
	assert.ErrorContains(t, err, "refs/run/v/300")
	assert.Equal(t, before, dataKeys(t, e.b))
}

// TestCatalogCacheIsAHint: the per-machine index caches ref contents by
// ETag (S3 only). A cached copy changed on this machine's disk must never
// decide what gc deletes, nor what ls and show print.
func TestCatalogCacheIsAHint(t *testing.T) {
	cases := []struct {
		name   string
		legacy bool // the registry's refs have no checksum
		resum  bool // the cache entry's own hash is recomputed after the edit
	}{
		{"EntryHashStale", false, false},
		{"EntryHashRecomputed", false, true},
		{"LegacyRefEntryHashRecomputed", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newMinio(t)
			ixPath := filepath.Join(t.TempDir(), "index.db")
			ix, err := store.OpenIndex(ixPath)
			require.NoError(t, err)
			t.Cleanup(func() { ix.Close() })
			r, _, err := store.Init(context.Background(), b, store.Options{Index: ix, Workers: 4})
			require.NoError(t, err)
			e := &env{t: t, ctx: context.Background(), b: b, r: r, ix: ix}
			refRun(t, e)
			if tc.legacy {
				for _, key := range refKeys(t, b) {
					rewriteObject(t, b, key, func(d []byte) []byte { return legacy(t, d) })
				}
			}
			truth, err := r.Resolve(e.ctx, "run", "400")
			require.NoError(t, err)
			_, err = r.Catalog(e.ctx, "") // fills the cache
			require.NoError(t, err)

			// One hex digit of run@400's manifest changes in the cached copy.
			editCachedRef(t, ix, ixPath, r.ID(), "refs/run/v/400", tc.resum, func(data []byte) []byte {
				return bytes.Replace(data, []byte(truth.Manifest.String()), []byte(flipHexDigit(truth.Manifest.String())), 1)
			})

			before := dataKeys(t, b)
			res, err := r.GC(e.ctx, store.GCOptions{NoGrace: true})
			require.NoError(t, err)
			assert.Zero(t, res.DeletedBlobs+res.DeletedManifests, "gc acted on the cached copy")
			assert.Equal(t, before, dataKeys(t, b))
			_, err = r.VerifyAll(e.ctx, true)
			require.NoError(t, err)
			fresh, err := r.ReadCatalog(e.ctx, "run", store.CatalogOptions{FromRegistry: true})
			require.NoError(t, err)
			assert.Equal(t, truth.Manifest, fresh.Records["run"][3].Manifest)
			if tc.legacy {
				return // a legacy ref cannot tell a consistent edit of the cache; only gc and verify are immune
			}
			// ls and show read the catalog through the cache: the edited
			// copy is discarded and the true value read again.
			c, err := r.Catalog(e.ctx, "run")
			require.NoError(t, err)
			assert.Equal(t, truth.Manifest, c.Records["run"][3].Manifest)
			shown, err := c.Resolve("run", refs.Latest)
			require.NoError(t, err)
			assert.Equal(t, truth.Manifest, shown.Manifest)
			latest, err := r.Resolve(e.ctx, "run", refs.Latest)
			require.NoError(t, err)
			assert.Equal(t, truth.Manifest, latest.Manifest)
		})
	}
}

// editCachedRef changes the cached copy of the ref under key in the index
// file at ixPath (with bbolt, as a bad disk or a stray tool would), and
// with resum recomputes the SHA-256 the entry keeps of its bytes.
func editCachedRef(t *testing.T, ix *store.Index, ixPath, regID, key string, resum bool, edit func([]byte) []byte) {
	t.Helper()
	require.NoError(t, ix.Release())
	db, err := bolt.Open(ixPath, 0o644, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("catalog/" + regID))
		require.NotNil(t, bk, "no catalog cache")
		v := bk.Get([]byte(key))
		require.NotNil(t, v, "%s is not cached", key)
		var entry map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(v, &entry))
		var data []byte
		require.NoError(t, json.Unmarshal(entry["data"], &data))
		edited := edit(bytes.Clone(data))
		require.NotEqual(t, data, edited)
		entry["data"], err = json.Marshal(edited)
		require.NoError(t, err)
		if resum {
			entry["sum"], err = json.Marshal(object.Hash(edited))
			require.NoError(t, err)
		}
		nv, err := json.Marshal(entry)
		require.NoError(t, err)
		return bk.Put([]byte(key), nv)
	}))
}

// TestRetentionReadsTheRegistry: what retention removes is decided on the
// registry's refs, even when the cached copy of a legacy ref (which has no
// checksum of its own) was consistently edited to make another version best.
func TestRetentionReadsTheRegistry(t *testing.T) {
	b := newMinio(t)
	ixPath := filepath.Join(t.TempDir(), "index.db")
	ix, err := store.OpenIndex(ixPath)
	require.NoError(t, err)
	t.Cleanup(func() { ix.Close() })
	r, _, err := store.Init(context.Background(), b, store.Options{Index: ix, Workers: 4})
	require.NoError(t, err)
	e := &env{t: t, ctx: context.Background(), b: b, r: r, ix: ix}
	refRun(t, e) // eval_loss 2.0, 1.5, 1.2, 1.4: 300 is best
	for _, key := range refKeys(t, b) {
		rewriteObject(t, b, key, func(d []byte) []byte { return legacy(t, d) })
	}
	_, err = r.Catalog(e.ctx, "run")
	require.NoError(t, err)
	editCachedRef(t, ix, ixPath, r.ID(), "refs/run/v/200", true, func(d []byte) []byte {
		return replaceOnce(t, d, `"eval_loss": *1.5`, `"eval_loss": 0.5`)
	})
	plan, err := r.RetentionPlan(e.ctx, "run", retention.Policy{KeepLast: 1, KeepBest: 1})
	require.NoError(t, err)
	var kept []string
	for _, cp := range plan.Kept() {
		kept = append(kept, cp.Version)
	}
	assert.Equal(t, []string{"300", "400"}, kept)
	removed, err := r.ApplyPlan(e.ctx, "run", plan)
	require.NoError(t, err)
	assert.Equal(t, []string{"100", "200"}, removed)
}

func flipHexDigit(s string) string {
	if s[0] == '0' {
		return "1" + s[1:]
	}
	return "0" + s[1:]
}

func TestVerifyReadsTheRegistry(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			t.Run("DeletedManifest", func(t *testing.T) { testVerifyDeleted(t, nb, true) })
			t.Run("DeletedBlob", func(t *testing.T) { testVerifyDeleted(t, nb, false) })
			t.Run("ReportsEveryProblem", func(t *testing.T) { testVerifyReportsAll(t, nb) })
		})
	}
}

// testVerifyDeleted warms every per-machine cache (index, content cache), deletes a manifest or a blob from the registry, and
// expects verify to notice.
func testVerifyDeleted(t *testing.T, nb newBackendFunc, manifest bool) {
	b := nb(t)
	ix, err := store.OpenIndex(filepath.Join(t.TempDir(), "index.db"))
	require.NoError(t, err)
	t.Cleanup(func() { ix.Close() })
	cache, err := store.OpenContentCache(filepath.Join(t.TempDir(), "content"), 1<<30)
	require.NoError(t, err)
	r, _, err := store.Init(context.Background(), b, store.Options{Index: ix, Workers: 4, Cache: cache})
	require.NoError(t, err)
	e := &env{t: t, ctx: context.Background(), b: b, r: r, ix: ix}
	refRun(t, e)
	_, err = r.Pull(e.ctx, "run", "300", filepath.Join(t.TempDir(), "pulled"), store.PullOptions{Full: true})
	require.NoError(t, err)
	_, err = r.Pull(e.ctx, "run", "300", filepath.Join(t.TempDir(), "linked"), store.PullOptions{Full: true, Link: true})
	require.NoError(t, err)
	_, err = r.VerifyAll(e.ctx, true)
	require.NoError(t, err)
	rec, err := r.Resolve(e.ctx, "run", "300")
	require.NoError(t, err)
	m, err := r.Manifest(e.ctx, rec.Manifest)
	require.NoError(t, err)

	var gone string
	if manifest {
		gone = object.ManifestKey(rec.Manifest)
	} else {
		gone = object.BlobKey(m.File("model.safetensors").Chunks[0].ID)
	}
	require.NoError(t, b.Delete(e.ctx, gone))
	for _, readData := range []bool{true, false} {
		rep, err := r.VerifyAll(e.ctx, readData)
		require.ErrorIs(t, err, store.ErrVerifyFailed, "read data %v", readData)
		p := problemFor(t, rep, gone)
		require.ErrorIs(t, p.Err, backend.ErrNotFound)
		assert.Contains(t, strings.Join(p.Files, " "), "run@300")
		rep, err = r.Verify(e.ctx, []refs.Record{rec}, readData)
		require.ErrorIs(t, err, store.ErrVerifyFailed)
		problemFor(t, rep, gone)
	}
}

func testVerifyReportsAll(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	refRun(t, e)
	require.NoError(t, e.r.Tag(e.ctx, "run", "400", "prod"))
	require.NoError(t, e.r.SetPolicy(e.ctx, "run", retention.Policy{KeepLast: 2}))
	r300, err := e.r.Resolve(e.ctx, "run", "300")
	require.NoError(t, err)
	_, err = e.r.VerifyAll(e.ctx, true)
	require.NoError(t, err)

	rewriteObject(t, e.b, "refs/run/v/100", func(d []byte) []byte { return flipDigit(t, d, "eval_loss") })
	rewriteObject(t, e.b, "refs/run/v/200", func(d []byte) []byte { return flipDigit(t, d, "manifest") })
	require.NoError(t, e.b.Delete(e.ctx, "refs/run/v/400")) // prod now points nowhere
	rewriteObject(t, e.b, "refs/run/p/retention", func(d []byte) []byte { return []byte("{\"keep_last\": 2,") })
	require.NoError(t, e.b.Delete(e.ctx, object.ManifestKey(r300.Manifest)))

	want := []string{
		object.ManifestKey(r300.Manifest),
		"refs/run/p/retention",
		"refs/run/t/prod",
		"refs/run/v/100",
		"refs/run/v/200",
	}
	for _, readData := range []bool{false, true} {
		rep, err := e.r.VerifyAll(e.ctx, readData)
		require.ErrorIs(t, err, store.ErrVerifyFailed)
		assert.Equal(t, want, problemObjects(rep))
		assert.Contains(t, problemFor(t, rep, "refs/run/t/prod").Err.Error(), "points at version 400")
		assert.Contains(t, problemFor(t, rep, object.ManifestKey(r300.Manifest)).Files, "run@300")
		assert.ErrorIs(t, problemFor(t, rep, "refs/run/v/200").Err, refs.ErrCorrupt)
		assert.ErrorIs(t, problemFor(t, rep, "refs/run/p/retention").Err, refs.ErrCorrupt)
	}
}

func TestNameCollidingWithRefKinds(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"x", true},
		{"v", true},
		{"v/x", true},
		{"p/t/v", false},
		{"org/vv", true},
		{"org/v1", true},
		{"x/v/1", false},
		{"x/v", false},
		{"x/t/prod", false},
		{"x/p/retention", false},
		{"org/run/t", false},
		{"x/V/1", false}, // a case-insensitive file system folds V into v
		{"x/T", false},
	} {
		err := refs.CheckName(tc.name)
		if tc.ok {
			assert.NoError(t, err, tc.name)
			continue
		}
		require.ErrorIs(t, err, refs.ErrInvalidName, tc.name)
		assert.ErrorContains(t, err, "reserved", tc.name)
		// Already stored names stay usable for reading.
		name, ref, err := refs.Parse(tc.name+"@1", false)
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.name, name)
		assert.Equal(t, "1", ref)
	}
	for bname, nb := range backends {
		t.Run(bname, func(t *testing.T) {
			e := newEnv(t, nb)
			_, ckpts := tinyRun(t, 41, nil)
			e.push(ckpts[0], "x", store.PushOptions{Version: "1"})
			refsBefore := refKeys(t, e.b)

			_, err := e.r.Push(e.ctx, ckpts[1], store.PushOptions{Name: "x/v/1"})
			require.ErrorIs(t, err, refs.ErrInvalidName)
			assert.ErrorContains(t, err, `"x/v/1"`)
			assert.ErrorContains(t, err, "reserved")
			require.ErrorIs(t, e.r.SetPolicy(e.ctx, "x/v/1", retention.Policy{KeepLast: 1}), refs.ErrInvalidName)
			assert.Equal(t, refsBefore, refKeys(t, e.b), "a refused name left a ref")
			rec, err := e.r.Resolve(e.ctx, "x", "1")
			require.NoError(t, err)
			assert.Equal(t, "x", rec.Name)
			_, err = e.r.VerifyAll(e.ctx, true)
			require.NoError(t, err)

			// A registry written before the rule may hold such a name (here
			// y/t/a, beside no y): it stays listable, readable and removable.
			data := legacy(t, readObject(t, e.b, "refs/x/v/1"))
			data = bytes.Replace(data, []byte(`"name": "x"`), []byte(`"name": "y/t/a"`), 1)
			require.NoError(t, e.b.Put(e.ctx, "refs/y/t/a/v/1", bytes.NewReader(data), int64(len(data))))
			c, err := e.r.Catalog(e.ctx, "")
			require.NoError(t, err)
			assert.Equal(t, []string{"x", "y/t/a"}, c.Names())
			name, ref, err := refs.Parse("y/t/a@1", false)
			require.NoError(t, err)
			_, err = e.r.Pull(e.ctx, name, ref, filepath.Join(t.TempDir(), "out"), store.PullOptions{})
			require.NoError(t, err)
			require.ErrorIs(t, e.r.Tag(e.ctx, name, ref, "prod"), refs.ErrInvalidName)
			_, _, err = e.r.Remove(e.ctx, name, ref)
			require.NoError(t, err)
			assert.Equal(t, refsBefore, refKeys(t, e.b))
		})
	}
}

// TestRemoveCorruptRef: a version ref that does not verify can still be
// removed by its version (the remedy verify points at), not by latest.
func TestRemoveCorruptRef(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nb)
			refRun(t, e)
			require.NoError(t, e.r.Tag(e.ctx, "run", "400", "prod"))
			rewriteObject(t, e.b, "refs/run/v/400", func(d []byte) []byte { return flipDigit(t, d, "manifest") })
			_, _, err := e.r.Remove(e.ctx, "run", refs.Latest)
			require.ErrorIs(t, err, refs.ErrCorrupt)
			_, _, err = e.r.Remove(e.ctx, "run", "prod")
			require.ErrorIs(t, err, refs.ErrCorrupt)
			assert.ErrorContains(t, err, "version 400")
			rec, tags, err := e.r.Remove(e.ctx, "run", "400")
			require.NoError(t, err)
			assert.Equal(t, "400", rec.Version)
			assert.Equal(t, []string{"prod"}, tags)
			_, err = e.r.VerifyAll(e.ctx, true)
			require.NoError(t, err)
			latest, err := e.r.Resolve(e.ctx, "run", refs.Latest)
			require.NoError(t, err)
			assert.Equal(t, "300", latest.Version)
		})
	}
}
