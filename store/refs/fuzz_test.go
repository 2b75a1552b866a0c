package refs

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store/backend"
)

// FuzzParseRef: accepted names and refs always make valid object keys that
// parse back to themselves.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"run@100", "org/run@best", "a//b@1", "../x@1", "x@", "x@tag.v1", "a/v/b@v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, ref, err := Parse(s, true)
		if err != nil || ref == "" || ref == Latest || ref == Best {
			return
		}
		key := VersionKey(name, ref)
		require.NoError(t, backend.CheckKey(key))
		n, kind, last, ok := ParseKey(key)
		require.True(t, ok)
		require.Equal(t, name, n)
		require.Equal(t, KindVersion, kind)
		require.Equal(t, ref, last)
	})
}
