package store_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/synth"
	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/object"
)

// newDeltaEnv is an env whose registry handle codes deltas.
func newDeltaEnv(t *testing.T, nb newBackendFunc) *env {
	t.Helper()
	e := newEnv(t, nb)
	r, err := store.Open(e.ctx, e.b, store.Options{Index: e.ix, Workers: 4, Deltas: true})
	require.NoError(t, err)
	e.r = r
	return e
}

// assertRunPulls checks, as another machine with no caches would see it,
// that run@100, run@200, ... pull byte-identical to dirs and that verify
// reads everything back.
func assertRunPulls(t *testing.T, e *env, dirs []string) {
	t.Helper()
	other := e.withoutIndex()
	for i, d := range dirs {
		assert.Equal(t, testutil.ReadTree(t, d), pullTree(t, other, "run", itoa(int64(100*(i+1)))))
	}
	verifyAll(t, other)
}

// refLen is the content length of blob id, from its header.
func refLen(t *testing.T, e *env, id object.ID) int {
	t.Helper()
	rc, err := e.b.Get(e.ctx, object.BlobKey(id), 0, object.HeaderSize)
	require.NoError(t, err)
	defer rc.Close()
	hdr, err := io.ReadAll(rc)
	require.NoError(t, err)
	h, err := object.ParseHeader(hdr)
	require.NoError(t, err)
	return h.ContentLen
}

func formatVersion(t *testing.T, b backend.Backend) int {
	t.Helper()
	rc, err := b.Get(context.Background(), store.FormatKey, 0, -1)
	require.NoError(t, err)
	defer rc.Close()
	var f store.Format
	require.NoError(t, json.NewDecoder(rc).Decode(&f))
	return f.Version
}

// listKeys lists the keys under prefix.
func listKeys(t *testing.T, b backend.Backend, prefix string) []string {
	t.Helper()
	var keys []string
	require.NoError(t, b.List(context.Background(), prefix, func(oi backend.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}))
	return keys
}

// storedCodec reads the codec byte of blob id.
func storedCodec(t *testing.T, b backend.Backend, id object.ID) object.Codec {
	t.Helper()
	rc, err := b.Get(context.Background(), object.BlobKey(id), 0, object.HeaderSize)
	require.NoError(t, err)
	defer rc.Close()
	hdr, err := io.ReadAll(rc)
	require.NoError(t, err)
	h, err := object.ParseHeader(hdr)
	require.NoError(t, err)
	return h.Codec
}

func pullTree(t *testing.T, r *store.Registry, name, version string) map[string][]byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	_, err := r.Pull(context.Background(), name, version, out, store.PullOptions{Full: true})
	require.NoError(t, err)
	return testutil.ReadTree(t, out)
}

func TestDeltaBlobs(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			t.Run("PushPullRoundTrip", func(t *testing.T) { testDeltaRoundTrip(t, nb) })
			t.Run("OffByDefault", func(t *testing.T) { testDeltaOff(t, nb) })
			t.Run("CorruptReferenceNamed", func(t *testing.T) { testDeltaCorruptReference(t, nb) })
			t.Run("GCKeepsLiveReference", func(t *testing.T) { testDeltaGCKeeps(t, nb) })
			t.Run("GCReencodesWhenReferenceDeleted", func(t *testing.T) { testDeltaGCReencodes(t, nb) })
			t.Run("InterruptedReplaceFinished", func(t *testing.T) { testDeltaRescue(t, nb) })
			t.Run("NeverAgainstRescueCopy", func(t *testing.T) { testDeltaNeverAgainstRescueCopy(t, nb) })
			t.Run("DanglingDeltaRepairedByPush", func(t *testing.T) { testDeltaDanglingRepaired(t, nb) })
			t.Run("TorchZipStorages", func(t *testing.T) { testDeltaTorchZip(t, nb) })
			t.Run("StatCachedFoldersCodedAlike", func(t *testing.T) { testStatCachedCodedAlike(t, nb) })
			t.Run("InterruptedFormatRaise", func(t *testing.T) { testDeltaFormatRaise(t, nb) })
			t.Run("ReferenceDeletedDuringPut", func(t *testing.T) { testDeltaReferenceDeletedDuringPut(t, nb) })
			t.Run("ConcurrentPushRetentionGC", func(t *testing.T) { testDeltaGCStress(t, nb) })
			t.Run("CopyWritesStandalone", func(t *testing.T) { testDeltaCopy(t, nb) })
		})
	}
}

func testDeltaRoundTrip(t *testing.T, nb newBackendFunc) {
	e := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 1, 3)
	first := e.push(dirs[0], "run", store.PushOptions{})
	assert.Zero(t, first.DeltaBlobs, "nothing to code against")
	assert.Equal(t, 1, formatVersion(t, e.b), "no delta, no format raise")
	for _, d := range dirs[1:] {
		res := e.push(d, "run", store.PushOptions{})
		assert.Equal(t, 2, res.DeltaBlobs, "both big tensors are deltas")
		assert.Less(t, res.NewStored, first.NewStored/2)
	}
	assert.Equal(t, store.DeltaFormatVersion, formatVersion(t, e.b))
	// Depth 1: the third checkpoint codes against the first (the second's
	// chunks are deltas), so every edge points at a blob of the first.
	edges := listKeys(t, e.b, "deltas/")
	assert.Len(t, edges, 4)
	m1, err := e.r.Manifest(e.ctx, first.Record.Manifest)
	require.NoError(t, err)
	firstBlobs := map[string]bool{}
	for _, id := range m1.BlobIDs() {
		firstBlobs[id.String()] = true
		assert.NotEqual(t, object.CodecDelta, storedCodec(t, e.b, id))
	}
	for _, k := range edges {
		assert.True(t, firstBlobs[strings.Split(k, "/")[2]], "edge %s names a reference outside the first checkpoint", k)
	}
	// Another machine, no caches: byte-identical pulls, verify reads all.
	assertRunPulls(t, e, dirs)
}

func testDeltaOff(t *testing.T, nb newBackendFunc) {
	e := newEnv(t, nb)
	dirs := testutil.DriftingRun(t, 2, 2)
	e.push(dirs[0], "run", store.PushOptions{})
	res := e.push(dirs[1], "run", store.PushOptions{})
	assert.Zero(t, res.DeltaBlobs)
	assert.Equal(t, 1, formatVersion(t, e.b))
	assert.Empty(t, listKeys(t, e.b, "deltas/"))
}

func testDeltaCorruptReference(t *testing.T, nb newBackendFunc) {
	e := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 3, 2)
	e.push(dirs[0], "run", store.PushOptions{})
	e.push(dirs[1], "run", store.PushOptions{})
	edges := listKeys(t, e.b, "deltas/")
	require.NotEmpty(t, edges)
	refID, err := object.ParseID(strings.Split(edges[0], "/")[2])
	require.NoError(t, err)
	corruptObject(t, e.b, object.BlobKey(refID))

	out := filepath.Join(t.TempDir(), "out")
	_, err = e.withoutIndex().Pull(e.ctx, "run", "200", out, store.PullOptions{})
	require.ErrorIs(t, err, store.ErrBadReference)
	assert.Contains(t, err.Error(), "reference blob "+refID.String())
	_, err = e.withoutIndex().Verify(e.ctx, allRecords(t, e.r), true)
	require.ErrorIs(t, err, store.ErrVerifyFailed)

	// A reference replaced by a well-formed object of other content (it
	// decodes; only hashes tell): a pull, which decodes against the
	// reference unhashed, still names the reference, not the delta.
	other := object.Encode(nil, make([]byte, refLen(t, e, refID)), object.EncodeHint{})
	require.NoError(t, e.b.Delete(e.ctx, object.BlobKey(refID)))
	require.NoError(t, e.b.Put(e.ctx, object.BlobKey(refID), strings.NewReader(string(other)), int64(len(other))))
	_, err = e.withoutIndex().Pull(e.ctx, "run", "200", filepath.Join(t.TempDir(), "out2"), store.PullOptions{})
	require.ErrorIs(t, err, store.ErrBadReference)
	assert.Contains(t, err.Error(), "reference blob "+refID.String())

	// Without reading data, verify still finds a delta whose reference
	// is gone, and names both.
	require.NoError(t, e.b.Delete(e.ctx, object.BlobKey(refID)))
	rep, err := e.withoutIndex().Verify(e.ctx, allRecords(t, e.r)[1:], false)
	require.ErrorIs(t, err, store.ErrVerifyFailed)
	require.NotEmpty(t, rep.Problems)
	found := false
	for _, p := range rep.Problems {
		if strings.Contains(p.String(), "reference blob "+refID.String()) && strings.HasPrefix(p.Object, "blobs/") {
			found = true
		}
	}
	assert.True(t, found, "problems: %v", rep.Problems)
}

func testDeltaGCKeeps(t *testing.T, nb newBackendFunc) {
	e := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 4, 2)
	e.push(dirs[0], "run", store.PushOptions{})
	e.push(dirs[1], "run", store.PushOptions{})
	res, err := e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err)
	assert.Zero(t, res.DeletedBlobs)
	assert.Zero(t, res.Reencoded)
	assert.Equal(t, 2, res.DeltaBlobs)
	for i, d := range dirs {
		assert.Equal(t, testutil.ReadTree(t, d), pullTree(t, e.withoutIndex(), "run", itoa(int64(100*(i+1)))))
	}
}

func testDeltaGCReencodes(t *testing.T, nb newBackendFunc) {
	e := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 5, 3)
	first := e.push(dirs[0], "run", store.PushOptions{})
	e.push(dirs[1], "run", store.PushOptions{})
	e.push(dirs[2], "run", store.PushOptions{})
	m1, err := e.r.Manifest(e.ctx, first.Record.Manifest)
	require.NoError(t, err)
	_, _, err = e.r.Remove(e.ctx, "run", "100")
	require.NoError(t, err)

	// du: the first checkpoint's tensor chunks are held only as
	// references of the others' deltas, not unreferenced.
	u, err := e.r.Usage(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, u.DeltaReferenceObjects)
	assert.Positive(t, u.DeltaReferences)
	assert.Positive(t, u.Unreferenced, "the first checkpoint's header chunk and manifest")

	dry, err := e.r.GC(e.ctx, store.GCOptions{NoGrace: true, DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, 4, dry.Reencoded)
	res, err := e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err)
	assert.Equal(t, 4, res.Reencoded)
	assert.Equal(t, 2, res.Rekeyed, "one keyframe per tensor, the other checkpoint's chunk a delta against it")
	assert.Equal(t, dry.DeletedBlobs, res.DeletedBlobs)
	// Every blob only the deleted checkpoint had is gone, the references
	// included.
	for _, f := range m1.Files {
		if f.Path != "model.safetensors" {
			continue
		}
		for _, c := range f.Chunks[1:] {
			_, err := e.b.Stat(e.ctx, object.BlobKey(c.ID))
			require.ErrorIs(t, err, backend.ErrNotFound, "reference %s", c.ID)
		}
	}
	// The edges left name the new keyframes: standalone blobs of a live
	// checkpoint, each the reference of a delta of the other one.
	keyframeOwner := ""
	edges := listKeys(t, e.b, "deltas/")
	require.Len(t, edges, 2)
	for _, k := range edges {
		parts := strings.Split(k, "/")
		ref, err := object.ParseID(parts[2])
		require.NoError(t, err)
		dep, err := object.ParseID(parts[3])
		require.NoError(t, err)
		assert.NotEqual(t, object.CodecDelta, storedCodec(t, e.b, ref), "keyframes are standalone")
		assert.Equal(t, object.CodecDelta, storedCodec(t, e.b, dep))
		keyframeOwner = ownerOf(t, e.r, ref)
	}
	assert.Empty(t, listKeys(t, e.b, "rescue/"))
	u, err = e.r.Usage(e.ctx)
	require.NoError(t, err)
	assert.Zero(t, u.DeltaReferences+u.Unreferenced)
	plain := newEnv(t, nb)
	plain.push(dirs[1], "run", store.PushOptions{})
	plain.push(dirs[2], "run", store.PushOptions{})
	pu, err := plain.r.Usage(plain.ctx)
	require.NoError(t, err)
	assert.Less(t, u.Stored, pu.Stored*3/4, "the two checkpoints left cost less than stored without deltas")
	other := e.withoutIndex()
	for i, d := range dirs[1:] {
		assert.Equal(t, testutil.ReadTree(t, d), pullTree(t, other, "run", itoa(int64(100*(i+2)))))
	}
	verifyAll(t, other)
	again, err := e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err)
	assert.Zero(t, again.DeletedBlobs+again.Reencoded)

	// The checkpoint holding the keyframes goes too: the last deltas, alone
	// in their group, are re-encoded standalone.
	require.NotEmpty(t, keyframeOwner)
	_, _, err = e.r.Remove(e.ctx, "run", keyframeOwner)
	require.NoError(t, err)
	res, err = e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Reencoded)
	assert.Zero(t, res.Rekeyed)
	assert.Empty(t, listKeys(t, e.b, "deltas/"))
	assert.Empty(t, listKeys(t, e.b, "rescue/"))
	left := map[string]int{"200": 1, "300": 2}
	delete(left, keyframeOwner)
	for v, i := range left {
		assert.Equal(t, testutil.ReadTree(t, dirs[i]), pullTree(t, e.withoutIndex(), "run", v))
	}
	verifyAll(t, e.withoutIndex())
}

// ownerOf is the version of the one checkpoint whose manifest holds blob id.
func ownerOf(t *testing.T, r *store.Registry, id object.ID) string {
	t.Helper()
	owner := ""
	for _, rec := range allRecords(t, r) {
		m, err := r.Manifest(context.Background(), rec.Manifest)
		require.NoError(t, err)
		for _, b := range m.BlobIDs() {
			if b == id {
				require.Empty(t, owner, "blob %s in two checkpoints", id)
				owner = rec.Version
			}
		}
	}
	return owner
}

// testDeltaNeverAgainstRescueCopy: a blob found only as its rescue copy is
// being replaced in place, and gc's re-keying replaces a delta's old
// reference... by a delta against a new keyframe. A push that coded
// against the rescue copy would, once the replacement lands, have made a
// chain two deep (undecodable): it must never code against a rescue copy.
func testDeltaNeverAgainstRescueCopy(t *testing.T, nb newBackendFunc) {
	e := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 12, 3)
	first := e.push(dirs[0], "run", store.PushOptions{})
	second := e.push(dirs[1], "run", store.PushOptions{})
	m1, err := e.r.Manifest(e.ctx, first.Record.Manifest)
	require.NoError(t, err)
	m2, err := e.r.Manifest(e.ctx, second.Record.Manifest)
	require.NoError(t, err)
	v1, err := os.ReadFile(filepath.Join(dirs[0], "model.safetensors"))
	require.NoError(t, err)
	v2, err := os.ReadFile(filepath.Join(dirs[1], "model.safetensors"))
	require.NoError(t, err)
	// Every reference of the second checkpoint's deltas is mid-replacement:
	// only its rescue copy is there. What replaces it is a delta (against
	// the second checkpoint's chunk of the same extent).
	replacement := map[string][]byte{}
	c1, c2 := m1.File("model.safetensors").Chunks, m2.File("model.safetensors").Chunks
	for _, k := range listKeys(t, e.b, "deltas/") {
		ref, err := object.ParseID(strings.Split(k, "/")[2])
		require.NoError(t, err)
		for i, c := range c1 {
			if c.ID != ref || replacement[object.BlobKey(ref)] != nil {
				continue
			}
			content, other := v1[c.Offset:c.Offset+c.Size], v2[c2[i].Offset:c2[i].Offset+c2[i].Size]
			delta, err := object.EncodeDelta(nil, content, other, c2[i].ID, 2, 1<<30)
			require.NoError(t, err)
			replacement[object.BlobKey(ref)] = delta
			rc, err := e.b.Get(e.ctx, object.BlobKey(ref), 0, -1)
			require.NoError(t, err)
			data, err := io.ReadAll(rc)
			require.NoError(t, err)
			require.NoError(t, rc.Close())
			rescue := "rescue/" + ref.String()[:2] + "/" + ref.String()
			require.NoError(t, e.b.Put(e.ctx, rescue, strings.NewReader(string(data)), int64(len(data))))
			require.NoError(t, e.b.Delete(e.ctx, object.BlobKey(ref)))
		}
	}
	require.Len(t, replacement, 2)
	// The replacement lands while the push is between reading its
	// reference and putting its delta (its edge is the sign).
	hooked := &hookBackend{Backend: e.b}
	var mu sync.Mutex
	hooked.beforePut = func(key string) {
		mu.Lock()
		defer mu.Unlock()
		if parts := strings.Split(key, "/"); parts[0] == "deltas" && len(parts) == 4 {
			bk := "blobs/" + parts[1] + "/" + parts[2]
			if obj := replacement[bk]; obj != nil {
				require.NoError(t, e.b.Put(e.ctx, bk, strings.NewReader(string(obj)), int64(len(obj))))
				delete(replacement, bk)
			}
		}
	}
	r, err := store.Open(e.ctx, hooked, store.Options{Workers: 4, Deltas: true})
	require.NoError(t, err)
	_, err = r.Push(e.ctx, dirs[2], store.PushOptions{Name: "run"})
	require.NoError(t, err)
	assert.Len(t, replacement, 2, "no push coded against a rescue copy")
	assert.Equal(t, testutil.ReadTree(t, dirs[2]), pullTree(t, e.withoutIndex(), "run", "300"))
}

// testDeltaDanglingRepaired: a push killed after putting its delta and
// before checking its reference again, while a gc deleted the reference,
// leaves a delta against a missing reference that no ref reaches. A later
// push of the same content (another machine, no caches) must not publish
// a ref to it: it replaces the blob by its standalone coding. A blob whose
// header is damaged is stored again the same way.
func testDeltaDanglingRepaired(t *testing.T, nb newBackendFunc) {
	e := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 13, 2)
	first := e.push(dirs[0], "run", store.PushOptions{})
	second := e.push(dirs[1], "run", store.PushOptions{})
	require.Equal(t, 2, second.DeltaBlobs)
	// The killed push's state: its blobs are there, its ref is not; the
	// gc deleted the first checkpoint, references included.
	_, _, err := e.r.Remove(e.ctx, "run", "200")
	require.NoError(t, err)
	_, _, err = e.r.Remove(e.ctx, "run", "100")
	require.NoError(t, err)
	edges := listKeys(t, e.b, "deltas/")
	require.Len(t, edges, 2)
	for _, k := range edges {
		ref, err := object.ParseID(strings.Split(k, "/")[2])
		require.NoError(t, err)
		require.NoError(t, e.b.Delete(e.ctx, object.BlobKey(ref)))
	}
	// And one blob the new push shares with the first has a damaged header.
	m1, err := e.r.Manifest(e.ctx, first.Record.Manifest)
	require.NoError(t, err)
	m2, err := e.r.Manifest(e.ctx, second.Record.Manifest)
	require.NoError(t, err)
	shared := map[object.ID]bool{}
	for _, id := range m1.BlobIDs() {
		shared[id] = true
	}
	var damaged object.ID
	for _, id := range m2.BlobIDs() {
		if shared[id] && storedCodec(t, e.b, id) != object.CodecDelta {
			damaged = id
			break
		}
	}
	require.False(t, damaged.IsZero())
	rc, err := e.b.Get(e.ctx, object.BlobKey(damaged), 0, -1)
	require.NoError(t, err)
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	data[0] ^= 0xff
	require.NoError(t, e.b.Delete(e.ctx, object.BlobKey(damaged)))
	require.NoError(t, e.b.Put(e.ctx, object.BlobKey(damaged), strings.NewReader(string(data)), int64(len(data))))

	res, err := e.withoutIndex().Push(e.ctx, dirs[1], store.PushOptions{Name: "run", Version: "201"})
	require.NoError(t, err)
	assert.Equal(t, 3, res.RepairedBlobs)
	assert.Equal(t, testutil.ReadTree(t, dirs[1]), pullTree(t, e.withoutIndex(), "run", "201"))
	verifyAll(t, e.withoutIndex())
}

// testDeltaTorchZip: the storages of pytorch_model.bin (torch.save zip)
// are delta-coded like safetensors tensors: a drifting fp32 storage is
// stored as a delta against the previous version's, pulls byte-identical.
func testDeltaTorchZip(t *testing.T, nb newBackendFunc) {
	e := newDeltaEnv(t, nb)
	const n = 1 << 19 // 2 MiB of fp32: chunks of its own
	w := normalF32(21, n)
	r := rand.New(rand.NewPCG(21, 2))
	var dirs []string
	for step := range 3 {
		if step > 0 {
			for i := 0; i < n; i += 8 {
				v := math.Float32frombits(binary.LittleEndian.Uint32(w[4*i:]))
				binary.LittleEndian.PutUint32(w[4*i:], math.Float32bits(v+float32(r.NormFloat64()*1e-4)))
			}
		}
		dirs = append(dirs, torchFolder(t, []synth.TorchTensor{
			{Name: "w", StorageType: "FloatStorage", Shape: []int64{n}, Data: slices.Clone(w)},
			f32Tensor("frozen", 22, 1<<18),
		}))
	}
	first := e.push(dirs[0], "run", store.PushOptions{Version: "100"})
	for i, d := range dirs[1:] {
		res := e.push(d, "run", store.PushOptions{Version: itoa(int64(100 * (i + 2)))})
		assert.Equal(t, 1, res.DeltaBlobs, "checkpoint %d: the drifting storage is a delta", i+2)
		assert.Less(t, res.NewStored, first.NewStored/2)
	}
	assertRunPulls(t, e, dirs)
}

// testStatCachedCodedAlike: folders this machine pushed before (its stat
// cache knows their chunks, so their files are not read up front) pushed
// into a second registry are stored exactly as well as in the first:
// plane-coded by element width, and delta-coded where that pays.
func testStatCachedCodedAlike(t *testing.T, nb newBackendFunc) {
	e := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 14, 2)
	want := []*store.PushResult{e.push(dirs[0], "run", store.PushOptions{}), e.push(dirs[1], "run", store.PushOptions{})}

	second, created, err := store.Init(e.ctx, nb(t), store.Options{Index: e.ix, Workers: 4, Deltas: true})
	require.NoError(t, err)
	require.True(t, created)
	for i, d := range dirs {
		res, err := second.Push(e.ctx, d, store.PushOptions{Name: "run"})
		require.NoError(t, err)
		assert.Equal(t, want[i].DeltaBlobs, res.DeltaBlobs, "checkpoint %d", i+1)
		assert.InEpsilon(t, want[i].NewStored, res.NewStored, 0.02, "checkpoint %d: stored as well as in the first registry", i+1)
	}
}

func testDeltaRescue(t *testing.T, nb newBackendFunc) {
	e := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 6, 2)
	e.push(dirs[0], "run", store.PushOptions{})
	e.push(dirs[1], "run", store.PushOptions{})
	// A replacement in place killed between deleting the blob and creating
	// it again: the blob is missing, its rescue copy is there.
	edges := listKeys(t, e.b, "deltas/")
	require.NotEmpty(t, edges)
	dep, err := object.ParseID(strings.Split(edges[0], "/")[3])
	require.NoError(t, err)
	m, err := e.r.Manifest(e.ctx, allRecords(t, e.r)[1].Manifest)
	require.NoError(t, err)
	var obj []byte
	for _, c := range m.File("model.safetensors").Chunks {
		if c.ID == dep {
			data, err := os.ReadFile(filepath.Join(dirs[1], "model.safetensors"))
			require.NoError(t, err)
			obj = object.Encode(nil, data[c.Offset:c.Offset+c.Size], object.EncodeHint{ElemSize: 2})
		}
	}
	require.NotNil(t, obj)
	rescue := "rescue/" + dep.String()[:2] + "/" + dep.String()
	require.NoError(t, e.b.Put(e.ctx, rescue, strings.NewReader(string(obj)), int64(len(obj))))
	require.NoError(t, e.b.Delete(e.ctx, object.BlobKey(dep)))

	other := e.withoutIndex()
	assert.Equal(t, testutil.ReadTree(t, dirs[1]), pullTree(t, other, "run", "200"), "readers fall back to the rescue copy")
	verifyAll(t, other)
	_, err = other.Verify(e.ctx, allRecords(t, other), false)
	require.NoError(t, err, "a stat finds the rescue copy")
	_, err = e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err)
	_, err = e.b.Stat(e.ctx, object.BlobKey(dep))
	require.NoError(t, err, "gc restores the blob")
	assert.Equal(t, testutil.ReadTree(t, dirs[1]), pullTree(t, other, "run", "200"))
}

func testDeltaFormatRaise(t *testing.T, nb newBackendFunc) {
	e := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 7, 2)
	e.push(dirs[0], "run", store.PushOptions{})
	e.push(dirs[1], "run", store.PushOptions{})
	// Killed between deleting the format file and creating it again.
	require.NoError(t, e.b.Delete(e.ctx, store.FormatKey))
	r, err := store.Open(e.ctx, e.b, store.Options{})
	require.NoError(t, err)
	assert.Equal(t, e.r.ID(), r.ID())
	assert.Equal(t, store.DeltaFormatVersion, formatVersion(t, e.b))
}

// testDeltaReferenceDeletedDuringPut: a gc deletes the reference after the
// push read it and before the delta blob is put (the gc had not seen the
// edge). The push notices and replaces its blob by the standalone coding.
func testDeltaReferenceDeletedDuringPut(t *testing.T, nb newBackendFunc) {
	e := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 9, 2)
	e.push(dirs[0], "run", store.PushOptions{})
	hooked := &hookBackend{Backend: e.b}
	var mu sync.Mutex
	refOf := map[string]string{} // delta blob key -> its reference's key
	var deleted []object.ID
	hooked.beforePut = func(key string) {
		mu.Lock()
		defer mu.Unlock()
		if parts := strings.Split(key, "/"); parts[0] == "deltas" && len(parts) == 4 {
			dep, err := object.ParseID(parts[3])
			require.NoError(t, err)
			refOf[object.BlobKey(dep)] = "blobs/" + parts[1] + "/" + parts[2]
		} else if ref, ok := refOf[key]; ok {
			delete(refOf, key)
			require.NoError(t, e.b.Delete(e.ctx, ref))
			id, err := object.ParseID(parts[2])
			require.NoError(t, err)
			deleted = append(deleted, id)
		}
	}
	r, err := store.Open(e.ctx, hooked, store.Options{Workers: 4, Deltas: true})
	require.NoError(t, err)
	_, err = r.Push(e.ctx, dirs[1], store.PushOptions{Name: "run"})
	require.NoError(t, err)
	require.Len(t, deleted, 2)
	for _, id := range deleted {
		assert.NotEqual(t, object.CodecDelta, storedCodec(t, e.b, id), "blob %s still a delta against a deleted reference", id)
	}
	assert.Empty(t, listKeys(t, e.b, "rescue/"))
	assert.Equal(t, testutil.ReadTree(t, dirs[1]), pullTree(t, e.withoutIndex(), "run", "200"))
}

// testDeltaGCStress: pushers code deltas against their NAME's previous
// version while retention keeps only the last version and gc runs without
// grace, over and over: every surviving checkpoint verifies and pulls
// byte-identical.
func testDeltaGCStress(t *testing.T, nb newBackendFunc) {
	if testing.Short() {
		t.Skip("stress test skipped in -short mode")
	}
	e := newDeltaEnv(t, nb)
	pool := testutil.DriftingRun(t, 10, 6)
	for _, p := range pool {
		age(t, p)
	}
	const pushers = 3
	deadline := time.Now().Add(8 * time.Second)
	var pushes, gcs, deltas, reencoded, rekeyed atomic.Int64
	// gc runs once per push (it would otherwise hold its lock most of the
	// time and starve the pushers' publishing on a fast backend).
	pushed := make(chan struct{}, 1)
	g, gctx := errgroup.WithContext(e.ctx)
	for i := range pushers {
		g.Go(func() error {
			r, err := store.Open(gctx, e.b, store.Options{Workers: 2, Deltas: true})
			if err != nil {
				return err
			}
			for n := 0; time.Now().Before(deadline); n++ {
				src := (n + i) % len(pool)
				res, err := r.Push(gctx, pool[src], store.PushOptions{Name: fmt.Sprintf("stress-%d", i), Version: fmt.Sprint(n*10 + src)})
				if err != nil {
					return fmt.Errorf("pusher %d: %w", i, err)
				}
				pushes.Add(1)
				deltas.Add(int64(res.DeltaBlobs))
				select {
				case pushed <- struct{}{}:
				default:
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		r, err := store.Open(gctx, e.b, store.Options{Workers: 2})
		if err != nil {
			return err
		}
		timeout := time.NewTimer(time.Until(deadline))
		defer timeout.Stop()
		for {
			select {
			case <-pushed:
			case <-timeout.C:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
			// The last two: a deleted keyframe's deltas are re-keyed.
			if err := retainLast(gctx, r, 2); err != nil {
				return err
			}
			res, err := r.GC(gctx, store.GCOptions{NoGrace: true})
			if err != nil {
				return fmt.Errorf("gc: %w", err)
			}
			gcs.Add(1)
			reencoded.Add(int64(res.Reencoded))
			rekeyed.Add(int64(res.Rekeyed))
		}
	})
	require.NoError(t, g.Wait())
	t.Logf("%d pushes (%d delta blobs), %d retention+gc rounds (%d re-encoded, %d of them against a new keyframe)", pushes.Load(), deltas.Load(), gcs.Load(), reencoded.Load(), rekeyed.Load())
	require.Positive(t, gcs.Load())
	require.Positive(t, deltas.Load())

	verifyAll(t, e.withoutIndex())
	for _, rec := range allRecords(t, e.r) {
		var v int
		_, err := fmt.Sscan(rec.Version, &v)
		require.NoError(t, err)
		assert.Equal(t, testutil.ReadTree(t, pool[v%10]), pullTree(t, e.withoutIndex(), rec.Name, rec.Version), "%s@%s", rec.Name, rec.Version)
	}
	// A last gc with nothing running leaves no delta against a missing
	// reference and no rescue copy.
	_, err := e.r.GC(e.ctx, store.GCOptions{NoGrace: true})
	require.NoError(t, err)
	assert.Empty(t, listKeys(t, e.b, "rescue/"))
	verifyAll(t, e.withoutIndex())
}

// testDeltaCopy: a copy to another registry writes delta blobs standalone
// (the destination need not hold their references): the destination pulls
// byte-identical and stays at format version 1.
func testDeltaCopy(t *testing.T, nb newBackendFunc) {
	src := newDeltaEnv(t, nb)
	dirs := testutil.DriftingRun(t, 11, 2)
	src.push(dirs[0], "run", store.PushOptions{})
	src.push(dirs[1], "run", store.PushOptions{})
	dst := newEnv(t, newMem)
	_, err := src.r.CopyTo(src.ctx, dst.r, []store.CopySpec{{Name: "run", Ref: "200"}}, store.CopyOptions{ServerSide: true})
	require.NoError(t, err)
	assert.Equal(t, testutil.ReadTree(t, dirs[1]), pullTree(t, dst.withoutIndex(), "run", "200"))
	assert.Equal(t, 1, formatVersion(t, dst.b))
	for _, k := range listKeys(t, dst.b, "blobs/") {
		id, err := object.ParseID(k[len(k)-64:])
		require.NoError(t, err)
		assert.NotEqual(t, object.CodecDelta, storedCodec(t, dst.b, id), k)
	}
	verifyAll(t, dst.withoutIndex())
}
