package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/internal/testutil"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// Hostile registry content against the readers' memory bounds: objects
// whose payload expands past what their header declares, headers that
// disagree with the manifest, payloads longer than any codec needs.

// allocated returns the bytes the Go heap allocated while f ran.
func allocated(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

const (
	mib = 1 << 20
	gib = 1 << 30
	// maxBlob is the largest content a blob may declare: a safetensors
	// header chunk (8 + the largest header).
	maxBlob = 8 + layout.MaxSafetensorsHeader
)

// zstdZeros is a hand-made zstd frame whose blocks decode to total zero
// bytes: RLE blocks of 128 KiB, 4 bytes each, so 1 GiB takes 33 KB. Its
// header declares the content size fcs, or none when fcs < 0; first, if
// not 0, is the value of the first byte (a raw block of one byte).
func zstdZeros(fcs, total int64, first byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0xFD2FB528)
	if fcs < 0 {
		b = append(b, 0x00, 7<<3) // no content size; window 128 KiB
	} else {
		b = append(b, 0xC0, 7<<3) // 8-byte content size; window 128 KiB
		b = binary.LittleEndian.AppendUint64(b, uint64(fcs))
	}
	blocks := 0
	block := func(kind, size uint32, last bool, data ...byte) {
		blocks++
		h := size<<3 | kind<<1
		if last {
			h |= 1
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16))
		b = append(b, data...)
	}
	left := total
	if first != 0 {
		left--
		block(0, 1, left == 0, first)
	}
	for left > 0 || blocks == 0 {
		n := min(left, 128<<10)
		left -= n
		block(1, uint32(n), left == 0, 0)
	}
	return b
}

// storedObject is a stored object with the given codec, declared content
// length and payload.
func storedObject(codec object.Codec, declared int64, payload []byte) []byte {
	h := []byte{'C', 'K', 'P', 'T', 1, byte(codec), 0, 0}
	if codec == object.CodecPlanes {
		h[6] = 1
	}
	h = binary.LittleEndian.AppendUint64(h, uint64(declared))
	return append(h, payload...)
}

// planesConst is a planes payload (store/planes, version 1) declaring n
// bytes of one repeated byte: one constant plane of one-byte elements.
func planesConst(n int64) []byte {
	b := []byte{1, 1, 0, 17}
	b = binary.AppendUvarint(b, uint64(n))
	return append(b, 1, 1, 1, 0) // one plane: method constant, length 1, byte 0
}

func zeroID(n int64) object.ID { return object.Hash(make([]byte, n)) }

// TestDecodeObjectStopsAtDeclaredSize: a payload that decodes to far more
// than its header declares is refused, and decoding it allocates no more
// than the declared size (plus the decoder's own scratch).
func TestDecodeObjectStopsAtDeclaredSize(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("allocation bounds are asserted by the run without -race")
	}
	const declared = 8 * mib
	want := zeroID(declared)
	cases := []struct {
		name    string
		payload []byte
		codec   object.Codec
	}{
		{"zstd frame of 1 GiB of zeros with no content size", zstdZeros(-1, gib, 0), object.CodecZstd},
		{"zstd frame declaring 1 GiB", zstdZeros(gib, gib, 0), object.CodecZstd},
		{"zstd frame declaring 8 MiB that holds 1 GiB", zstdZeros(declared, gib, 0), object.CodecZstd},
		{"zstd frame of 8 MiB followed by a frame of 1 GiB", append(zstdZeros(declared, declared, 0), zstdZeros(-1, gib, 0)...), object.CodecZstd},
		{"zstd frame declaring 8 MiB whose blocks hold less", zstdZeros(declared, declared/2, 0), object.CodecZstd},
		{"planes declaring 1 GiB", planesConst(gib), object.CodecPlanes},
		{"raw payload longer than declared", make([]byte, declared+mib), object.CodecRaw},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Less(t, len(c.payload), 2*declared)
			obj := storedObject(c.codec, declared, c.payload)
			var err error
			n := allocated(func() { _, err = object.Decode(nil, obj, want) })
			require.ErrorIs(t, err, object.ErrCorrupt)
			assert.LessOrEqual(t, n, uint64(declared+mib), "allocated %d MiB", n/mib)
		})
	}
	t.Run("the same content, stored honestly, decodes within the same bound", func(t *testing.T) {
		for _, obj := range [][]byte{
			storedObject(object.CodecZstd, declared, zstdZeros(declared, declared, 0)),
			object.Encode(nil, make([]byte, declared), object.EncodeHint{}),
			storedObject(object.CodecPlanes, declared, planesConst(declared)),
		} {
			var out []byte
			var err error
			n := allocated(func() { out, err = object.Decode(nil, obj, want) })
			require.NoError(t, err)
			require.Len(t, out, declared)
			assert.LessOrEqual(t, n, uint64(declared+mib), "allocated %d MiB", n/mib)
		}
	})
}

// TestObjectHeaderSizeCaps: a blob header may declare at most the largest
// chunk a writer produces, a safetensors header chunk.
func TestObjectHeaderSizeCaps(t *testing.T) {
	_, err := object.ParseHeader(storedObject(object.CodecRaw, maxBlob, nil))
	require.NoError(t, err)
	_, err = object.ParseHeader(storedObject(object.CodecRaw, maxBlob+1, nil))
	require.ErrorIs(t, err, object.ErrCorrupt)

	// A manifest chunk larger than any blob is refused with the manifest.
	m := manifest.Manifest{Version: 1, Files: []manifest.File{{
		Path: "a.bin", Size: maxBlob + 1, Mode: 0o644, Role: "other", Digest: "x",
		Chunks: []manifest.Chunk{{ID: zeroID(1), Offset: 0, Size: maxBlob + 1}},
	}}}
	data, err := json.Marshal(&m)
	require.NoError(t, err)
	_, err = manifest.Decode(data)
	require.Error(t, err)
}

// hostileRegistry writes, with the backend's own puts, a registry whose
// version NAME@1 records files (role "other") made of the given chunks, and
// the given objects under their keys.
func hostileRegistry(t *testing.T, b backend.Backend, files []manifest.File, objects map[string][]byte) *store.Registry {
	t.Helper()
	ctx := context.Background()
	r, _, err := store.Init(ctx, b, store.Options{Workers: 8})
	require.NoError(t, err)
	for key, obj := range objects {
		require.NoError(t, b.Put(ctx, key, bytes.NewReader(obj), int64(len(obj))))
	}
	m := manifest.Manifest{Version: 1, Files: files}
	data, mid, err := m.Encode()
	require.NoError(t, err)
	obj := object.Encode(nil, data, object.EncodeHint{Text: true})
	require.NoError(t, b.Put(ctx, object.ManifestKey(mid), bytes.NewReader(obj), int64(len(obj))))
	var logical int64
	for _, f := range files {
		logical += f.Size
	}
	rec, err := json.Marshal(refs.Record{Name: "hostile", Version: "1", Manifest: mid, Files: len(files), Logical: logical})
	require.NoError(t, err)
	require.NoError(t, b.Put(ctx, "refs/hostile/v/1", bytes.NewReader(rec), int64(len(rec))))
	return r
}

// oneChunkFile is a file of size bytes stored as blob id.
func oneChunkFile(path string, id object.ID, size int64) manifest.File {
	return manifest.File{
		Path: path, Size: size, Mode: 0o644, Role: "other", Digest: "sha256:" + id.String(),
		Chunks: []manifest.Chunk{{ID: id, Offset: 0, Size: size}},
	}
}

// TestReadersBoundBlobsByManifestSize: pull, verify --read-data and
// ReadRange know each chunk's size from the manifest. A blob whose header
// declares another size is refused before it is decoded, and no more of a
// blob is read than its codec may need for that size; either way they
// allocate little, whatever the blob holds.
func TestReadersBoundBlobsByManifestSize(t *testing.T) {
	const size = 1024
	big := int64(64 * mib)
	cases := []struct {
		name string
		id   object.ID
		obj  []byte
	}{
		// A valid blob of 64 MiB of zeros, referenced as 1 KiB.
		{"header declares more than the manifest", zeroID(big), storedObject(object.CodecZstd, big, zstdZeros(big, big, 0))},
		{"raw payload far longer than declared", zeroID(size), storedObject(object.CodecRaw, size, make([]byte, 32*mib))},
		{"zstd payload far longer than any encoder needs", zeroID(size), storedObject(object.CodecZstd, size, append(zstdZeros(size, size, 0), make([]byte, 32*mib)...))},
	}
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ctx := context.Background()
					file := oneChunkFile("a.bin", c.id, size)
					r := hostileRegistry(t, nb(t), []manifest.File{file}, map[string][]byte{object.BlobKey(c.id): c.obj})
					rec, err := r.Resolve(ctx, "hostile", "1")
					require.NoError(t, err)
					const bound = 8 * mib

					n := allocated(func() {
						_, err = r.Pull(ctx, "hostile", "1", filepath.Join(t.TempDir(), "out"), store.PullOptions{Full: true, AllowIncomplete: true})
					})
					require.ErrorContains(t, err, c.id.String())
					assert.LessOrEqual(t, n, uint64(bound), "pull allocated %d MiB", n/mib)

					var rep *store.VerifyReport
					n = allocated(func() { rep, err = r.Verify(ctx, []refs.Record{rec}, true) })
					require.ErrorIs(t, err, store.ErrVerifyFailed)
					require.Len(t, rep.Problems, 1)
					assert.Equal(t, object.BlobKey(c.id), rep.Problems[0].Object)
					assert.LessOrEqual(t, n, uint64(bound), "verify allocated %d MiB", n/mib)

					n = allocated(func() { _, err = r.ReadRange(ctx, &file, 0, size) })
					require.ErrorContains(t, err, c.id.String())
					assert.LessOrEqual(t, n, uint64(bound), "ReadRange allocated %d MiB", n/mib)
				})
			}
		})
	}
}

// TestManifestReadBoundedByItsCap: a manifest object that declares more
// than a manifest may hold is refused from its header.
func TestManifestReadBoundedByItsCap(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			b := nb(t)
			r, _, err := store.Init(ctx, b, store.Options{Workers: 8})
			require.NoError(t, err)
			n := int64(80 * mib)
			id := zeroID(n)
			obj := storedObject(object.CodecZstd, n, zstdZeros(n, n, 0))
			require.NoError(t, b.Put(ctx, object.ManifestKey(id), bytes.NewReader(obj), int64(len(obj))))
			a := allocated(func() { _, err = r.Manifest(ctx, id) })
			require.ErrorContains(t, err, id.String())
			assert.LessOrEqual(t, a, uint64(8*mib), "allocated %d MiB", a/mib)
		})
	}
}

// TestManifestCapOnBothSides: a writer refuses to record a manifest larger
// than readers accept, and a reader refuses one.
func TestManifestCapOnBothSides(t *testing.T) {
	const manifestCap = 64 * mib
	huge := strings.Repeat("x", manifestCap)
	m := manifest.Manifest{Version: 1, Files: []manifest.File{{
		Path: "model.safetensors", Size: 8, Mode: 0o644, Role: "weights", Digest: "sha256:" + zeroID(8).String(),
		Chunks:      []manifest.Chunk{{ID: zeroID(8), Offset: 0, Size: 8}},
		Safetensors: &manifest.SafetensorsInfo{DataOffset: 8, Metadata: map[string]string{"note": huge}},
	}}}
	_, _, err := m.Encode()
	require.ErrorContains(t, err, "over the limit")

	data, err := json.Marshal(&m)
	require.NoError(t, err)
	_, err = manifest.Decode(data)
	require.ErrorContains(t, err, "over the limit")
}
