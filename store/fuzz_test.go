package store

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeObject: any bytes under any ID either decode to content that
// hashes to the ID, or fail; never a panic, never an allocation past the
// declared-size cap.
func FuzzDecodeObject(f *testing.F) {
	for _, content := range [][]byte{nil, []byte("hello"), []byte(strings.Repeat("tokenizer ", 100))} {
		id := Hash(content)
		f.Add(EncodeObject(nil, content, EncodeHint{}), id[:])
		f.Add(EncodeObject(nil, content, EncodeHint{Text: true}), id[:])
	}
	f.Add([]byte("CKPT\x01\x01\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff"), make([]byte, 32))
	f.Fuzz(func(t *testing.T, obj, idBytes []byte) {
		var id ID
		copy(id[:], idBytes)
		out, err := DecodeObject(nil, obj, id)
		if err == nil {
			require.Equal(t, id, Hash(out))
		}
	})
}

// FuzzDecodeManifest: an accepted manifest has only safe paths and chunks
// that cover each file exactly.
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"version":1,"files":[{"path":"config.json","size":3,"mode":420,"role":"config","digest":"x","chunks":[{"id":"` + strings.Repeat("ab", 32) + `","offset":0,"size":3}]}]}`))
	f.Add([]byte(`{"version":1,"files":[{"path":"../x","size":0,"mode":420,"role":"config","digest":"x","chunks":[]}]}`))
	f.Add([]byte(`{"version":1,"files":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeManifest(data)
		if err != nil {
			return
		}
		for _, file := range m.Files {
			require.NoError(t, CheckRelPath(file.Path))
			var off int64
			for _, c := range file.Chunks {
				require.Equal(t, off, c.Offset)
				off += c.Size
			}
			require.Equal(t, file.Size, off)
		}
	})
}

// FuzzParseRef: accepted names and refs always make valid object keys that
// parse back to themselves.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"run@100", "org/run@best", "a//b@1", "../x@1", "x@", "x@tag.v1", "a/v/b@v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, ref, err := ParseRef(s, true)
		if err != nil || ref == "" || ref == RefLatest || ref == RefBest {
			return
		}
		key := versionKey(name, ref)
		require.NoError(t, CheckKey(key))
		n, kind, last, ok := parseRefKey(key)
		require.True(t, ok)
		require.Equal(t, name, n)
		require.Equal(t, refKindVersion, kind)
		require.Equal(t, ref, last)
	})
}
