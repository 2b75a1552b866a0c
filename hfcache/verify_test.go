package hfcache

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sameBytes is a Verifier that accepts exactly want, stopping at the first
// byte that differs. reads counts the bytes it was given.
type sameBytes struct {
	want  []byte
	off   int
	reads *int
}

var errDiffers = errors.New("differs")

func (s *sameBytes) Write(p []byte) (int, error) {
	*s.reads += len(p)
	if s.off+len(p) > len(s.want) || !bytes.Equal(p, s.want[s.off:s.off+len(p)]) {
		return 0, errDiffers
	}
	s.off += len(p)
	return len(p), nil
}

func (s *sameBytes) Verified() bool { return s.off == len(s.want) }

func randomBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{seed})
	_, _ = r.Read(b)
	return b
}

// verifiedSource is a file without a known SHA-256 that recognizes its
// content with a sameBytes.
func verifiedSource(path string, data []byte, calls, reads *int) FileSource {
	return FileSource{
		Path: path, Size: int64(len(data)), Content: counted{BytesContent(data), calls},
		Verify: func() Verifier { return &sameBytes{want: data, reads: reads} },
	}
}

// TestWriteSnapshotVerify: a file without a known SHA-256 but with a
// Verifier is found among the blobs already in the cache (the one its
// snapshot links to, or any other of its size) and not written again; a
// blob that hashes to its name but is not the file's content is never
// reused for it, even where the snapshot links to it.
func TestWriteSnapshotVerify(t *testing.T) {
	weights := randomBytes(1, 1<<20+7)

	t.Run("a rerun reads the linked blob once and writes nothing", func(t *testing.T) {
		cache := t.TempDir()
		var calls, reads int
		require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", []FileSource{verifiedSource("model.safetensors", weights, &calls, &reads)}))
		assert.Equal(t, 1, calls)
		assert.Zero(t, reads, "nothing to verify in an empty cache")
		require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", []FileSource{verifiedSource("model.safetensors", weights, &calls, &reads)}))
		assert.Equal(t, 1, calls, "the content is not produced again")
		assert.Equal(t, len(weights), reads, "the linked blob is read once")
	})

	t.Run("a blob of another snapshot with the same content is reused", func(t *testing.T) {
		cache := t.TempDir()
		var calls, reads int
		other := randomBytes(2, len(weights)) // same size, other content: a candidate that does not verify
		require.NoError(t, WriteSnapshot(cache, testRepo, otherRevision, "old", []FileSource{
			verifiedSource("a.safetensors", other, &calls, &reads),
			verifiedSource("b.safetensors", weights, &calls, &reads),
		}))
		calls, reads = 0, 0
		require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", []FileSource{verifiedSource("model.safetensors", weights, &calls, &reads)}))
		assert.Zero(t, calls, "found among the blobs: not fetched again")
		assert.LessOrEqual(t, reads, len(weights)+64<<10, "the other blob of that size is given up at its first differing read")
		snap, err := FindSnapshot(cache, testRepo, "main")
		require.NoError(t, err)
		require.Len(t, snap.Files, 1)
		assert.Equal(t, filepath.Join(realBlobsDir(t, cache, testFolder), sha256Hex(weights)), snap.Files[0].Blob)
	})

	t.Run("a linked blob of other content is not reused", func(t *testing.T) {
		cache := t.TempDir()
		var calls, reads int
		wrong := randomBytes(3, len(weights))
		// A snapshot whose link points at a blob that is intact (it hashes
		// to its name) but holds other content, as a hostile or confused
		// writer could leave it.
		require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", []FileSource{verifiedSource("model.safetensors", wrong, &calls, &reads)}))
		calls, reads = 0, 0
		require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", []FileSource{verifiedSource("model.safetensors", weights, &calls, &reads)}))
		assert.Equal(t, 1, calls, "the content is written, the wrong blob not trusted")
		got, err := os.ReadFile(filepath.Join(cache, testFolder, "snapshots", testRevision, "model.safetensors"))
		require.NoError(t, err)
		assert.Equal(t, weights, got)

		// Without a Verifier the linked blob is trusted once it hashes to
		// its name: the behavior a Verifier exists to tighten.
		calls = 0
		src := FileSource{Path: "model.safetensors", Size: int64(len(wrong)), Content: counted{BytesContent(wrong), &calls}}
		require.NoError(t, WriteSnapshot(cache, testRepo, otherRevision, "main", []FileSource{src}))
		assert.Equal(t, 1, calls)
		require.NoError(t, WriteSnapshot(cache, testRepo, otherRevision, "main", []FileSource{{Path: "model.safetensors", Size: int64(len(wrong)), Content: counted{BytesContent(weights), &calls}}}))
		assert.Equal(t, 1, calls, "without a Verifier, the linked blob is taken as it is")
	})

	t.Run("a blob that does not hash to its name is not reused", func(t *testing.T) {
		cache := t.TempDir()
		var calls, reads int
		require.NoError(t, WriteSnapshot(cache, testRepo, testRevision, "main", []FileSource{verifiedSource("model.safetensors", weights, &calls, &reads)}))
		// The right content under another SHA-256 name of the same size.
		misnamed := filepath.Join(cache, testFolder, "blobs", sha256Hex([]byte("not this")))
		require.NoError(t, os.WriteFile(misnamed, weights, 0o644))
		require.NoError(t, os.Remove(filepath.Join(cache, testFolder, "blobs", sha256Hex(weights))))
		calls = 0
		require.NoError(t, WriteSnapshot(cache, testRepo, otherRevision, "main", []FileSource{verifiedSource("model.safetensors", weights, &calls, &reads)}))
		assert.Equal(t, 1, calls, "a blob is reused only under its own SHA-256")
		_, err := os.Stat(filepath.Join(cache, testFolder, "blobs", sha256Hex(weights)))
		require.NoError(t, err)
	})
}
