package refs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/object"
)

// TestRecordHFOrigin: the Hugging Face origin of an imported checkpoint is
// stored as the member "hf", covered by the ref checksum like every other
// member (a changed repo or commit, or a dropped origin, is a corrupt ref),
// and a record without one is written without the member, as before.
func TestRecordHFOrigin(t *testing.T) {
	const key = "refs/gpt2/v/a1b2c3d4e5f6"
	rec := Record{
		Name: "gpt2", Version: "a1b2c3d4e5f6", Manifest: object.Hash([]byte("m")),
		Pushed: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Files: 3, Logical: 100,
		HF: &HFOrigin{Repo: "openai-community/gpt2", Revision: "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2"},
	}
	data, err := Encode(rec)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"hf": {`)

	got, err := DecodeRecord(key, data)
	require.NoError(t, err)
	assert.Equal(t, rec.HF, got.HF)
	assert.Equal(t, "openai-community/gpt2@a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2", got.HF.String())

	// The checksum covers the member, as a stranger computes it from the
	// document's rules alone.
	canon := independentCanonical(t, data)
	assert.Contains(t, string(canon), `"hf":{"repo":"openai-community/gpt2","revision":"a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2"}`)
	sum := sha256.Sum256(canon)
	assert.Contains(t, string(data), `"checksum": "sha256:`+hex.EncodeToString(sum[:])+`"`)

	for name, edit := range map[string]func([]byte) []byte{
		"another repo": func(d []byte) []byte {
			return bytes.Replace(d, []byte("openai-community/gpt2"), []byte("openai-community/gpt3"), 1)
		},
		"another commit": func(d []byte) []byte {
			return bytes.Replace(d, []byte(`"revision": "a1b2`), []byte(`"revision": "b1b2`), 1)
		},
		"origin dropped": func(d []byte) []byte {
			var m map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(d, &m))
			delete(m, "hf")
			out, err := json.Marshal(m)
			require.NoError(t, err)
			return out
		},
	} {
		t.Run(name, func(t *testing.T) {
			edited := edit(bytes.Clone(data))
			require.NotEqual(t, data, edited)
			_, err := DecodeRecord(key, edited)
			require.ErrorIs(t, err, ErrCorrupt)
			assert.ErrorContains(t, err, "checksum mismatch")
		})
	}

	plain := rec
	plain.HF = nil
	data, err = Encode(plain)
	require.NoError(t, err)
	assert.NotContains(t, string(data), `"hf"`, "a record without an origin has no hf member")
	got, err = DecodeRecord(key, data)
	require.NoError(t, err)
	assert.Nil(t, got.HF)
}
